"""Fidelity: how close a variant's outputs stay to fp32 on the same inputs."""

from __future__ import annotations

from typing import Any

from quantbench.results import Fidelity


def compare(ref: Any, out: Any, is_classifier: bool) -> Fidelity:
    """Cosine similarity (mean over samples), max abs error and top-1 agreement.

    Example::

        >>> import torch
        >>> compare(torch.ones(2, 3), torch.ones(2, 3), True).cosine
        1.0
    """
    import torch

    ref = ref.detach().float()
    out = out.detach().float()
    if ref.shape != out.shape:
        return Fidelity(
            None, None, None, note=f"output shape {tuple(out.shape)} != fp32 {tuple(ref.shape)}"
        )
    max_abs = float((ref - out).abs().max()) if ref.numel() else 0.0
    r = ref.reshape(ref.shape[0], -1)
    o = out.reshape(out.shape[0], -1)
    note = None
    norms = r.norm(dim=1)
    if bool((norms == 0).all()):
        cosine = None
        note = "fp32 outputs are all zero (degenerate random weights): cosine is undefined"
    else:
        keep = norms > 0
        cos = torch.nn.functional.cosine_similarity(r[keep], o[keep], dim=1, eps=1e-12)
        cosine = min(1.0, max(-1.0, float(cos.mean())))  # fp rounding can exceed 1
    top1 = None
    if is_classifier:
        top1 = float((ref.argmax(-1) == out.argmax(-1)).float().mean())
    return Fidelity(cosine=cosine, max_abs_err=max_abs, top1_agreement=top1, note=note)
