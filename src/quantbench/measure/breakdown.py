"""Where a shipped artifact's bytes go: int8 weights, quantization parameters, biases,
tensors left unquantized, and the container (serialisation records, the graph itself).

The size quantbench reports is the shipped file's (``torch.save`` of the state_dict, the
``.onnx`` or the ``.pt2`` file). On small networks the part that is *not* int8 weights
decides the ratio to fp32: per-channel scales and zero points, biases, and the file
format's per-tensor records. :func:`breakdown` splits a file (or a state_dict) into
those parts; ``container`` is what is left of the size once every tensor is counted.

Roles come from the structure, not from names: in a torch state_dict a quantized tensor
carries its own scales and zero points; in ONNX and ``.pt2`` graphs the inputs of the
dequantize nodes are the scales and zero points, and the third input of a Conv / Gemm /
linear is its bias.

Example::

    >>> from quantbench.measure.breakdown import breakdown
    >>> breakdown("model.onnx").as_dict()                  # doctest: +SKIP
    {'total': 2623257, 'int8_weights': 2202560, 'qparams': 222187, 'biases': 68264, ...}
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_INT8 = {"int8", "uint8", "qint8", "quint8"}
PARTS = ("int8_weights", "qparams", "biases", "unquantized", "container")


@dataclass
class Breakdown:
    """Bytes of one artifact by role; the parts add up to ``total``."""

    total: int
    int8_weights: int = 0  # 8-bit weight tensors
    qparams: int = 0  # scales and zero points (per channel, per tensor, activations')
    biases: int = 0  # float32 or int32 biases
    unquantized: int = 0  # other tensors: layers kept float, BatchNorm, shape constants
    container: int = 0  # the format's own bytes: records, names, the graph

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def not_int8(self) -> int:
        return self.total - self.int8_weights


def _nbytes(t: Any) -> int:
    return int(t.numel()) * int(t.element_size())


def _dtype(t: Any) -> str:
    return str(t.dtype).replace("torch.", "")


def _finish(b: Breakdown) -> Breakdown:
    b.container = b.total - (b.int8_weights + b.qparams + b.biases + b.unquantized)
    return b


def _add_tensor(b: Breakdown, t: Any, role: str | None) -> None:
    """Count a plain or quantized torch tensor in ``b`` (``role`` from its place)."""
    import torch

    if t.is_quantized:
        b.int8_weights += int(t.numel())  # one byte per element
        if t.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            b.qparams += _nbytes(t.q_per_channel_scales()) + _nbytes(t.q_per_channel_zero_points())
        return  # per-tensor scale / zero point are pickled numbers: container
    if role == "bias":
        b.biases += _nbytes(t)
    elif role == "qparam":
        b.qparams += _nbytes(t)
    elif _dtype(t) in _INT8 and t.dim() >= 2:
        b.int8_weights += _nbytes(t)
    else:
        b.unquantized += _nbytes(t)


def state_dict_breakdown(state: dict[str, Any]) -> Breakdown:
    """A torch state_dict (eager, FX-quantized) as ``torch.save`` writes it."""
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    b = Breakdown(total=buf.tell())

    def walk(key: str, v: Any, pos: int | None = None) -> None:
        if isinstance(v, torch.Tensor):
            leaf = key.rsplit(".", 1)[-1]
            role = None
            if leaf == "bias" or (leaf == "_packed_params" and pos == 1):  # (weight, bias)
                role = "bias"
            elif leaf in ("scale", "zero_point") or leaf.endswith(("_scale_0", "_zero_point_0")):
                role = "qparam"
            _add_tensor(b, v, role)
        elif isinstance(v, (tuple, list)):
            for i, x in enumerate(v):
                walk(key, x, i)

    for k, v in state.items():
        walk(k, v)
    return _finish(b)


def onnx_breakdown(path: str | Path) -> Breakdown:
    """An ``.onnx`` file: initializers by the role the graph gives them."""
    import onnx
    from onnx import numpy_helper

    from quantbench import fileformat

    path = Path(path)
    with fileformat.expecting(path, "an ONNX model"):
        m = onnx.load(str(path), load_external_data=False)
    if not m.HasField("graph") or not m.graph.node:
        raise fileformat.not_a(path, "an ONNX model", "no graph in it")
    g = m.graph
    roles: dict[str, str] = {}
    for n in g.node:
        if n.op_type in ("DequantizeLinear", "QuantizeLinear"):
            for i in n.input[1:]:
                roles[i] = "qparam"
        elif n.op_type in ("Conv", "Gemm", "ConvTranspose") and len(n.input) > 2:
            roles.setdefault(n.input[2], "bias")
    producer = {o: n for n in g.node for o in n.output}
    for n in g.node:  # a bias dequantized on the way (QDQ): its int32 tensor is the bias
        if n.op_type in ("Conv", "Gemm", "ConvTranspose") and len(n.input) > 2:
            src = producer.get(n.input[2])
            if src is not None and src.op_type == "DequantizeLinear":
                roles[src.input[0]] = "bias"
    b = Breakdown(total=path.stat().st_size)
    for init in g.initializer:
        arr = numpy_helper.to_array(init)
        role = roles.get(init.name)
        if role == "qparam":
            b.qparams += arr.nbytes
        elif role == "bias":
            b.biases += arr.nbytes
        elif arr.dtype.name in _INT8 and arr.ndim >= 2:
            b.int8_weights += arr.nbytes
        else:
            b.unquantized += arr.nbytes
    return _finish(b)


def pt2_breakdown(path: str | Path, trust_code: bool = False) -> Breakdown:
    """A ``.pt2`` file (``torch.export.save``): its tensors by role, the rest is the graph.
    Reading it unpickles what it holds: refused unless ``trust_code`` (see
    :func:`quantbench.fileformat.read_pt2`)."""
    import torch
    import torch.ao.quantization.fx._decomposed  # noqa: F401  (registers the ops a .pt2 calls)

    from quantbench.fileformat import read_pt2

    path = Path(path)
    ep = read_pt2(path, trust_code, lambda p: torch.export.load(str(p)))
    tensors = {**ep.state_dict, **ep.constants}
    fqn = {s.arg.name: s.target for s in ep.graph_signature.input_specs if s.target is not None}
    roles: dict[str, str] = {}
    for n in ep.graph.nodes:
        if n.op != "call_function":
            continue
        target = str(n.target)
        args = [a.name if isinstance(a, torch.fx.Node) else None for a in n.args]
        if "dequantize_per_channel" in target or "dequantize_per_tensor" in target:
            for a in args[1:3]:
                if a in fqn:
                    roles[fqn[a]] = "qparam"
            if args and args[0] in fqn:
                roles.setdefault(fqn[args[0]], "weight")
        elif target.startswith(("aten.conv", "aten.linear")) and len(args) > 2 and args[2] in fqn:
            roles[fqn[args[2]]] = "bias"
    b = Breakdown(total=path.stat().st_size)
    for name, t in tensors.items():
        if isinstance(t, torch.Tensor):
            _add_tensor(b, t, roles.get(name))
    return _finish(b)


def breakdown(artifact: str | Path | dict[str, Any], trust_code: bool = False) -> Breakdown:
    """Bytes by role of a state_dict, an ``.onnx`` / ``.pt2`` file, or a quantbench
    checkpoint (``quantbench quantize`` / ``run --save-artifacts``: its state_dict, sized
    as ``run`` sizes it, without the checkpoint's metadata). A ``.pt2`` file needs
    ``trust_code=True`` (reading it unpickles what it holds)."""
    if isinstance(artifact, dict):
        return state_dict_breakdown(artifact)
    path = Path(artifact)
    if path.suffix == ".onnx":
        return onnx_breakdown(path)
    if path.suffix == ".pt2":
        return pt2_breakdown(path, trust_code)
    from quantbench.fileformat import torch_load

    obj = torch_load(path, "a torch checkpoint")
    state = obj["state_dict"] if isinstance(obj, dict) and "state_dict" in obj else obj
    return state_dict_breakdown(state)
