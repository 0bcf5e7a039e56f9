"""Fidelity: how close a variant's outputs stay to fp32 on the same inputs.

Outputs that are not finite (NaN or inf) are never compared: a cosine or a top-1
agreement of NaN outputs is a number that means nothing (torch's argmax of all-NaN rows
agrees 100%). :func:`compare` says instead whose outputs were not finite.
"""

from __future__ import annotations

from typing import Any

from quantbench.results import Fidelity


def nonfinite(out: Any) -> tuple[int, int]:
    """(values that are NaN or inf, all values) of a model's outputs: a tensor, a numpy
    array, or tuples / lists / dicts of them (other values count as neither).

    Example::

        >>> import torch
        >>> nonfinite(torch.tensor([1.0, float("nan"), float("inf")]))
        (2, 3)
    """
    import torch

    if isinstance(out, torch.Tensor):
        if not (out.is_floating_point() or out.is_complex()):
            return 0, out.numel()
        return int((~torch.isfinite(out)).sum()), out.numel()
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        bad = total = 0
        for item in out:
            b, n = nonfinite(item)
            bad, total = bad + b, total + n
        return bad, total
    if hasattr(out, "dtype") and hasattr(out, "size"):  # numpy
        import numpy as np

        arr = np.asarray(out)
        if arr.dtype.kind not in "fc":
            return 0, int(arr.size)
        return int((~np.isfinite(arr)).sum()), int(arr.size)
    return 0, 0


def nonfinite_text(out: Any) -> str | None:
    """ "N of M values are NaN/inf" for outputs that are not all finite, else None."""
    bad, total = nonfinite(out)
    if not bad:
        return None
    return f"{bad} of {total} output values are NaN/inf"


def compare(ref: Any, out: Any, is_classifier: bool) -> Fidelity:
    """Cosine similarity (mean over samples), max abs error and top-1 agreement; when
    either side is not finite, none of them, and ``nonfinite`` says whose.

    Example::

        >>> import torch
        >>> round(compare(torch.ones(2, 3), torch.ones(2, 3), True).cosine, 6)
        1.0
        >>> compare(torch.ones(2, 3), torch.full((2, 3), float("nan")), True).nonfinite
        'variant'
    """
    import torch

    ref = ref.detach().float()
    out = out.detach().float()
    if ref.shape != out.shape:
        return Fidelity(
            None, None, None, note=f"output shape {tuple(out.shape)} != fp32 {tuple(ref.shape)}"
        )
    bad_ref, bad_out = nonfinite_text(ref), nonfinite_text(out)
    if bad_ref or bad_out:
        if bad_ref and bad_out:
            which, note = "both", f"outputs not finite: {bad_out}, and fp32's too ({bad_ref})"
        elif bad_ref:
            which = "fp32"
            note = f"fp32 outputs not finite ({bad_ref}): nothing to compare with"
        else:
            which, note = "variant", f"outputs not finite: {bad_out} (fp32's are finite)"
        return Fidelity(None, None, None, note=note, nonfinite=which)
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
