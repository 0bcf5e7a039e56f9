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
    """(input_ids, attention_mask) -> logits (classifiers) or last hidden state."""

    def __init__(self, model: Any, is_classifier: bool) -> None:
        super().__init__()
        self.model = model
        self.is_classifier = is_classifier

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return out.logits if self.is_classifier else out.last_hidden_state


class ImageModel(torch.nn.Module):
    """pixel_values -> logits, for Hugging Face image classifiers."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits
