"""Task metrics on real data: classification accuracy and embedding fidelity.

Example::

    >>> import torch
    >>> logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    >>> classification_metrics(logits, torch.tensor([0, 0]))["top1"]
    0.5
"""

from __future__ import annotations

import math
import warnings
from typing import Any


class NonFiniteOutputs(ValueError):
    """A model's outputs hold NaN or inf: no metric of them means anything (the argmax of
    a NaN row is an index all the same), so none is computed."""


def check_finite(x: Any, whose: str = "outputs") -> None:
    """Raise :class:`NonFiniteOutputs` when tensor ``x`` holds NaN or inf.

    Example::

        >>> import torch
        >>> check_finite(torch.tensor([1.0, float("nan")]))
        Traceback (most recent call last):
        ...
        quantbench.measure.accuracy.NonFiniteOutputs: outputs not finite: 1 of 2 values are NaN/inf
    """
    import torch

    x = _as_tensor(x)
    if x.is_floating_point():
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            raise NonFiniteOutputs(f"{whose} not finite: {bad} of {x.numel()} values are NaN/inf")


def _as_tensor(x: Any) -> Any:
    import torch

    return x.detach().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(x)


def classification_metrics(logits: Any, labels: Any) -> dict[str, float]:
    """Top-1, top-5 (only with at least 5 classes) and macro F1 of ``logits`` (N, C).

    Example::

        >>> import torch
        >>> m = classification_metrics(torch.eye(3), torch.tensor([0, 1, 1]))
        >>> round(m["top1"], 3), m["n"]
        (0.667, 3)
    """
    import torch
    from sklearn.metrics import f1_score

    logits = _as_tensor(logits).float()
    check_finite(logits)
    labels = _as_tensor(labels).long().reshape(-1)
    if logits.dim() != 2 or logits.shape[0] != labels.shape[0]:
        raise ValueError(
            f"logits must be (N, C) with N = {labels.shape[0]} labels, got {tuple(logits.shape)}"
        )
    n = int(labels.shape[0])
    if n == 0:
        raise ValueError("no examples to score")
    preds = logits.argmax(dim=1)
    out: dict[str, float] = {"top1": float((preds == labels).float().mean())}
    if logits.shape[1] >= 5:
        top5 = logits.topk(5, dim=1).indices
        out["top5"] = float((top5 == labels[:, None]).any(dim=1).float().mean())
    out["macro_f1"] = float(
        f1_score(labels.numpy(), preds.to(torch.long).numpy(), average="macro", zero_division=0)
    )
    out["n"] = n
    return out


def embedding_fidelity(ref: Any, got: Any) -> dict[str, float | None]:
    """How well ``got`` embeddings (N, H) keep ``ref``'s: per-row cosine, and whether
    retrieval ranking survives (Spearman correlation of the pairwise cosine similarities).

    ``spearman`` needs at least 3 rows (None otherwise, or when it is undefined).

    Example::

        >>> import torch
        >>> e = torch.randn(4, 8)
        >>> embedding_fidelity(e, e)["spearman"]
        1.0
    """
    import torch
    from scipy.stats import spearmanr

    check_finite(ref, "fp32 outputs")
    check_finite(got)
    ref = _as_tensor(ref).double()
    got = _as_tensor(got).double()
    if ref.shape != got.shape or ref.dim() != 2:
        raise ValueError(
            f"embeddings must both be (N, H), got {tuple(ref.shape)} and {tuple(got.shape)}"
        )
    n = int(ref.shape[0])
    if n == 0:
        raise ValueError("no embeddings to compare")
    cos = torch.nn.functional.cosine_similarity(ref, got, dim=1, eps=1e-12)
    out: dict[str, float | None] = {
        "mean_cosine": min(1.0, float(cos.mean())),
        "min_cosine": min(1.0, float(cos.min())),
        "spearman": None,
        "n": n,
    }
    if n >= 3:
        iu = torch.triu_indices(n, n, offset=1)

        def pairwise(e: Any) -> Any:
            unit = torch.nn.functional.normalize(e, dim=1, eps=1e-12)
            return (unit @ unit.T)[iu[0], iu[1]].numpy()

        with warnings.catch_warnings():  # constant input: undefined, reported as None
            warnings.simplefilter("ignore")
            rho = spearmanr(pairwise(ref), pairwise(got)).statistic
        if not math.isnan(float(rho)):
            out["spearman"] = float(rho)
    return out


def relative(value: float | None, baseline: float | None) -> float | None:
    """``value / baseline``; None if either is missing or the baseline is 0.

    Example::

        >>> relative(0.45, 0.5), relative(None, 0.5), relative(0.3, 0)
        (0.9, None, None)
    """
    if value is None or baseline is None or baseline == 0:
        return None
    return value / baseline
