"""GPTQ for ONNX MatMul weights: calibration Hessians from an onnxruntime session and
the blockwise solve of Frantar et al. (2022), written out as ``MatMulNBits`` tensors.

onnxruntime ships a GPTQ (``GPTQWeightOnlyQuantConfig``) whose error feedback reads the
lower triangle of the upper Cholesky factor (``Hinv1[i:, i]``, ``Hinv[i2:, i1:i2]``): all
zeros, so its weights are exactly round-to-nearest's (on all-MiniLM-L6-v2, mean cosine
0.9761 both). This is the published algorithm with the feedback where it belongs, in
torch; its output is checked against round-to-nearest in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Quantized:
    """One weight (K, N) quantized along K in blocks, in ``MatMulNBits``'s layout:
    ``packed`` (N, blocks, block_size / 2) uint8, low nibble first; ``scales``
    (N, blocks) float32; ``zero_points`` (N, ceil(blocks / 2)) uint8 or None."""

    packed: Any
    scales: Any
    zero_points: Any


def hessians(
    path: Path, tensors: list[str], batches: list[tuple[Any, ...]], input_names: list[str]
) -> dict[str, Any]:
    """``2/n * sum(x x^T)`` of each named graph tensor over the calibration batches.

    Rows at padded positions (where a text model's attention mask is 0) are left out:
    they never reach a pooled output.
    """
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch

    model = onnx.load(str(path))
    outputs = {o.name for o in model.graph.output}
    for name in tensors:
        if name not in outputs:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, 1, None))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    sums: dict[str, Any] = {}
    rows: dict[str, int] = {}
    for batch in batches:
        feeds = {n: t.detach().numpy() for n, t in zip(input_names, batch, strict=True)}
        mask = feeds.get("attention_mask")
        for name, x in zip(tensors, sess.run(tensors, feeds), strict=True):
            x = np.asarray(x, dtype=np.float32)
            if mask is not None and x.ndim == 3 and x.shape[:2] == mask.shape:
                x = x[mask.astype(bool)]
            x = torch.from_numpy(x.reshape(-1, x.shape[-1])).double()
            sums[name] = sums.get(name, 0) + x.T @ x
            rows[name] = rows.get(name, 0) + x.shape[0]
    return {n: 2 * sums[n] / max(rows[n], 1) for n in tensors}


def _params(w: Any, symmetric: bool, maxq: int) -> tuple[Any, Any]:
    """Scale and zero point per row of ``w`` (N, group), as onnxruntime computes them:
    asymmetric ranges include 0; symmetric ones map the extreme weight to -8."""
    import torch

    if symmetric:
        lo, hi = w.min(dim=1).values, w.max(dim=1).values
        extreme = torch.where(hi.abs() > lo.abs(), hi, lo)
        scale = extreme / -((maxq + 1) // 2)
        zero = torch.full_like(scale, (maxq + 1) // 2)
    else:
        lo = w.min(dim=1).values.clamp(max=0)
        hi = w.max(dim=1).values.clamp(min=0)
        scale = (hi - lo) / maxq
        zero = torch.where(scale == 0, (maxq + 1) // 2, (-lo / scale).round().clamp(0, maxq))
    return torch.where(scale == 0, torch.ones_like(scale), scale), zero


def gptq(
    weight: Any,
    hessian: Any,
    block_size: int,
    symmetric: bool = False,
    bits: int = 4,
    percdamp: float = 0.01,
) -> tuple[Any, Any, Any]:
    """Quantize ``weight`` (K, N), the B of ``x @ B``, in blocks of ``block_size`` along K.

    Returns ``(q, scales, zero_points)``: q (N, K) integers in [0, 2^bits), scales and
    zero points (N, ceil(K / block_size)); ``scale * (q - zero)`` approximates B^T.
    ``hessian`` None is plain round-to-nearest.
    """
    import torch

    threads = torch.get_num_threads()
    # a column at a time: small ops that only lose time to a thread pool's wake-ups
    # (12x slower with 2 threads on a busy 2-core machine)
    torch.set_num_threads(1)
    try:
        return _gptq(torch, weight, hessian, block_size, symmetric, bits, percdamp)
    finally:
        torch.set_num_threads(threads)


def _gptq(
    torch: Any, weight: Any, hessian: Any, block_size: int, symmetric: bool, bits: int,
    percdamp: float,
) -> tuple[Any, Any, Any]:  # fmt: skip
    maxq = 2**bits - 1
    w = torch.as_tensor(weight).double().T.clone()  # (N, K): columns are input channels
    n, k = w.shape
    if hessian is None:
        h = torch.eye(k, dtype=torch.float64)
    else:
        h = torch.as_tensor(hessian).double().clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    h += percdamp * torch.mean(torch.diag(h)) * torch.eye(k, dtype=torch.float64)
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    blocks = -(-k // block_size)
    q = torch.zeros((n, k), dtype=torch.uint8)
    scales = torch.zeros((n, blocks), dtype=torch.float64)
    zeros = torch.zeros((n, blocks), dtype=torch.float64)
    lazy = max(128, block_size)  # a multiple of block_size: groups never straddle
    for i1 in range(0, k, lazy):
        i2 = min(i1 + lazy, k)
        w1 = w[:, i1:i2].clone()
        err = torch.zeros_like(w1)
        h1 = hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            if col % block_size == 0:  # this group's range, after the feedback so far
                s, z = _params(w1[:, i : i + block_size], symmetric, maxq)
                scales[:, col // block_size], zeros[:, col // block_size] = s, z
            c = w1[:, i]
            qi = torch.clamp(torch.round(c / s) + z, 0, maxq)
            q[:, col] = qi.to(torch.uint8)
            e = (c - s * (qi - z)) / h1[i, i]
            w1[:, i:] -= e.unsqueeze(1) @ h1[i, i:].unsqueeze(0)
            err[:, i] = e
        w[:, i2:] -= err @ hinv[i1:i2, i2:]
    return q, scales.float(), zeros.to(torch.uint8)


def pack(q: Any, scales: Any, zeros: Any, block_size: int, symmetric: bool) -> Quantized:
    """``MatMulNBits`` 4-bit tensors from :func:`gptq`'s output."""
    import numpy as np

    q = np.asarray(q, dtype=np.uint8)
    n, k = q.shape
    blocks = scales.shape[1]
    padded = np.zeros((n, blocks * block_size), dtype=np.uint8)
    padded[:, :k] = q
    if not symmetric:  # padding dequantizes to 0 either way; keep it at the zero point
        padded[:, k:] = np.repeat(np.asarray(zeros), block_size, axis=1)[:, k:]
    padded = padded.reshape(n, blocks, block_size)
    packed = padded[..., 0::2] | (padded[..., 1::2] << 4)
    zp = None
    if not symmetric:
        z = np.asarray(zeros, dtype=np.uint8)
        if blocks % 2:
            z = np.concatenate([z, np.full((n, 1), 8, dtype=np.uint8)], axis=1)
        zp = z[:, 0::2] | (z[:, 1::2] << 4)
    return Quantized(packed, np.asarray(scales, dtype=np.float32), zp)
