"""Positional-tensor wrappers around transformers models.

transformers 5 models take keywords (``torch.onnx.export(model, (ids, mask))`` fails
with "got multiple values for argument"); these wrappers take positional tensors and
return one tensor, which keeps timing, FX, export and pickling uniform. They live at
module level so that saved artifacts (``torch.save(module)``) can be loaded again.
"""

from __future__ import annotations

from typing import Any

import torch


class TextModel(torch.nn.Module):
    """(input_ids, attention_mask) -> logits (classifiers), a pooled sentence embedding
    (``pooling``: ``mean``, ``cls`` or ``max``, optionally ``-normalized``, as the
    sentence-transformers directory says), or the last hidden state."""

    def __init__(self, model: Any, is_classifier: bool, pooling: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.is_classifier = is_classifier
        self.pooling = pooling

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        if attention_mask is None:  # as transformers: no mask means every token counts
            attention_mask = torch.ones_like(input_ids)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        if self.is_classifier:
            return out.logits
        hidden = out.last_hidden_state
        if not self.pooling:
            return hidden
        mode = self.pooling.removesuffix("-normalized")
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        if mode == "cls":
            emb = hidden[:, 0]
        elif mode == "max":
            emb = hidden.masked_fill(mask == 0, -1e9).amax(dim=1)
        else:
            emb = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        if self.pooling.endswith("-normalized"):
            emb = torch.nn.functional.normalize(emb, dim=-1)
        return emb


class ImageModel(torch.nn.Module):
    """pixel_values -> logits, for Hugging Face image classifiers."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits
