"""What an ``.onnx`` file holds: which ops were quantized and which stayed float,
initializer bytes by dtype, the int8 fraction and the file size (:func:`graph_facts`).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

# Ops that compute in (or convert to/from) 8-bit integers, as onnxruntime's quantizer
# writes them; plus any QLinear* op.
_INT8_OPS = {
    "MatMulInteger", "ConvInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul",
    "QuantizeLinear", "DequantizeLinear", "QGemm", "QAttention", "QEmbedLayerNormalization",
    "DynamicQuantizeLSTM", "GatherBlockQuantized", "MatMulNBits", "MatMulIntegerToFloat",
}  # fmt: skip
# Float ops that carry weights: what "stayed float" means, as for torch modules.
_WEIGHT_OPS = {"MatMul", "Gemm", "Conv", "ConvTranspose", "Gather", "Einsum", "Attention"}
_INT8_TYPES = {"int8", "uint8", "int4", "uint4"}  # integer weights of 8 bits or fewer
# Layout ops between a weight initializer and the op that uses it.
_PASS_THROUGH = {"Transpose", "Identity", "Cast", "Reshape", "Squeeze", "Unsqueeze"}


def _dtype_name(onnx: Any, data_type: int) -> str:
    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(data_type))
    except Exception:  # bfloat16 / float8 have no numpy dtype
        return onnx.TensorProto.DataType.Name(data_type).lower()


def _nbytes(onnx: Any, data_type: int, numel: int) -> int:
    if data_type in (onnx.TensorProto.INT4, onnx.TensorProto.UINT4):
        return (numel + 1) // 2  # two per byte
    return numel * _itemsize(onnx, data_type)


def _itemsize(onnx: Any, data_type: int) -> int:
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(data_type).itemsize
    except Exception:
        return 1


def graph_facts(path: str | os.PathLike) -> dict[str, Any]:
    """What was quantized in an ``.onnx`` file: op counts, initializer bytes by dtype, size."""
    import onnx

    path = Path(path)
    m = onnx.load(str(path), load_external_data=False)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def weight_source(name: str) -> tuple[str | None, bool]:
        """(dtype of the initializer behind ``name``, whether a DequantizeLinear is on the way),
        looking through the layout ops the exporter leaves on shared weights (ALBERT)."""
        for _ in range(8):
            if name in inits:
                return _dtype_name(onnx, inits[name].data_type), False
            src = producer.get(name)
            if src is None:
                return None, False
            if src.op_type == "DequantizeLinear":
                return None, True
            if src.op_type not in _PASS_THROUGH:
                return None, False
            name = src.input[0]
        return None, False

    quantized: Counter[str] = Counter()
    floating: Counter[str] = Counter()
    qdq_pairs = 0
    for n in g.node:
        op = n.op_type
        if op in _INT8_OPS or op.startswith("QLinear"):
            quantized[op] += 1
            if op == "QuantizeLinear" and any(
                c.op_type == "DequantizeLinear" for c in consumers.get(n.output[0], [])
            ):
                qdq_pairs += 1
        elif op in _WEIGHT_OPS:
            w = n.input[0] if op == "Gather" else (n.input[1] if len(n.input) > 1 else "")
            dtype, dequantized = weight_source(w)
            if dequantized:
                quantized[f"{op} (QDQ)"] += 1  # runs as an int8 kernel after ORT's fusion
            elif dtype in _INT8_TYPES:
                quantized[f"{op} (int8 table)"] += 1
            elif dtype is not None and dtype.startswith(("float", "bfloat")):
                floating[op] += 1

    by_dtype: Counter[str] = Counter()
    total = int8 = 0
    files = {path}
    for t in g.initializer:
        numel = 1
        for d in t.dims:
            numel *= int(d)
        name = _dtype_name(onnx, t.data_type)
        by_dtype[name] += _nbytes(onnx, t.data_type, numel)
        if t.data_location == onnx.TensorProto.EXTERNAL:
            loc = next((e.value for e in t.external_data if e.key == "location"), None)
            if loc:
                files.add(path.parent / loc)
        if numel <= 1:  # scales and zero points
            continue
        total += numel
        if name in _INT8_TYPES:
            int8 += numel
    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), None)
    return {
        "quantized": dict(sorted(quantized.items())),
        "float": dict(sorted(floating.items())),
        "qdq_pairs": qdq_pairs,
        "param_bytes_by_dtype": dict(by_dtype),
        "int8_param_fraction": int8 / total if total else 0.0,
        "size_bytes": sum(os.path.getsize(f) for f in files if f.is_file()),
        "opset": opset,
    }


_GEMM_PARTS = ("Transpose", "MatMul", "Add")  # onnxruntime's ONNXModel.replace_gemm_with_matmul
# Ops onnxruntime's WeightBiasQuantization gives int8 weights at load when they read a
# DequantizeLinear output (MatMul too: MatMulAddFusion may first make it a Gemm).
_REQUANTIZED_AT_LOAD = {"Conv", "ConvTranspose", "Gemm", "MatMul"}


def _scope_atom(qualified: str) -> str:
    """The name torch's TorchScript exporter gives a module in its scoped node names:
    the qualified name from its last non-numeric atom (``layer.0``, ``features.0.0``),
    as ``torch.onnx.utils._unqualified_variable_name`` builds it."""
    atoms = qualified.split(".")
    for i in range(len(atoms) - 1, -1, -1):
        if not atoms[i].isnumeric():
            return ".".join(atoms[i:])
    return qualified


def node_modules(node_names: list[str], module: Any) -> dict[str, str]:
    """Node name -> the torch module (qualified name, as ``named_modules`` gives it) whose
    forward produced the node, for the names an exported graph took from module scopes.

    The exporter (``dynamo=False``) names a node ``/<scope>/.../<scope>/<Op>[_k]`` with
    one scope per module *called*, each scope the module's name from its last non-numeric
    atom: ``/model/encoder/layer.0/attention/self/query/MatMul`` is
    ``model.encoder.layer.0.attention.self.query`` (the ModuleList ``layer`` is never
    called), ``/features/features.0/features.0.0/Conv`` is ``features.0.0``. Each scope
    resolves to the nearest descendant module of the one before with that name; nodes
    outside any module (or whose scopes resolve to none) are left out.
    """
    by_atom: dict[str, list[str]] = {}
    for name, _ in module.named_modules():
        if name:
            by_atom.setdefault(_scope_atom(name), []).append(name)
    resolved: dict[tuple[str, ...], str | None] = {(): ""}

    def resolve(scopes: tuple[str, ...]) -> str | None:
        if scopes in resolved:
            return resolved[scopes]
        parent = resolve(scopes[:-1])
        found = None
        if parent is not None:
            prefix = f"{parent}." if parent else ""
            below = [n for n in by_atom.get(scopes[-1], ()) if n.startswith(prefix)]
            depth = {n: n.count(".") for n in below}
            nearest = [n for n in below if depth[n] == min(depth.values())]
            found = nearest[0] if len(nearest) == 1 else None  # ambiguous: no guess
        resolved[scopes] = found
        return found

    out = {}
    for node in node_names:
        if not node.startswith("/"):
            continue
        scopes = tuple(node[1:].split("/")[:-1])
        owner = resolve(scopes) if scopes else None
        if owner:
            out[node] = owner
    return out


def layer_nodes(
    path: str | os.PathLike, module: Any, layers: Any, gemm_parts: bool = False
) -> dict[str, list[str]]:
    """Each of ``layers`` (torch module names of ``module``, the model exported to
    ``path``) -> the names of the nodes it became (its own and its submodules').
    ``gemm_parts``: also the names ``quantize_dynamic`` gives the Transpose, MatMul and Add
    it rewrites each Gemm into before it quantizes (``<gemm>_MatMul``, ...).

    A layer that became no node (not a module of the model, or never called in its
    forward) is a :class:`~quantbench.errors.QuantbenchError`: a layer asked to stay
    float must not be quietly quantized.

    Example::

        >>> layer_nodes("bert.onnx", lm.module, ["model.encoder.layer.0.output.dense"])
        ...                                                             # doctest: +SKIP
        {'model.encoder.layer.0.output.dense': ['/model/encoder/layer.0/output/dense/MatMul',
                                                '/model/encoder/layer.0/output/dense/Add']}
    """
    import onnx

    from quantbench.errors import QuantbenchError

    g = onnx.load(str(path), load_external_data=False).graph
    owners = node_modules([n.name for n in g.node], module)
    gemms = {n.name for n in g.node if n.op_type == "Gemm"}
    out: dict[str, list[str]] = {}
    for layer in sorted(layers):
        out[layer] = [n for n, m in owners.items() if m == layer or m.startswith(f"{layer}.")]
        if gemm_parts:
            out[layer] += [f"{n}_{p}" for n in out[layer] if n in gemms for p in _GEMM_PARTS]
    missing = [layer for layer, nodes in out.items() if not nodes]
    if missing:
        raise QuantbenchError(
            f"layer(s) {', '.join(missing)} map to no node of the exported ONNX graph "
            f"(not modules of the model, or not called in its forward), so they cannot be "
            f"left in float"
        )
    return out


def given_nodes(path: str | os.PathLike, layers: Any, gemm_parts: bool = False) -> list[str]:
    """:func:`layer_nodes` for an ONNX file given as the model, whose layers are already
    node names: those of ``path`` (plus the Gemm parts), a name not in it an error."""
    import onnx

    from quantbench.errors import QuantbenchError

    g = onnx.load(str(path), load_external_data=False).graph
    ops = {n.name: n.op_type for n in g.node}
    missing = sorted(set(layers) - set(ops))
    if missing:
        raise QuantbenchError(
            f"layer(s) {', '.join(missing)} are no node of the ONNX graph, so they cannot be "
            "left in float"
        )
    out = set(layers)
    if gemm_parts:
        out |= {f"{n}_{p}" for n in layers if ops[n] == "Gemm" for p in _GEMM_PARTS}
    return sorted(out)


def shield_float_nodes(path: str | os.PathLike, nodes: list[str]) -> list[str]:
    """Keep onnxruntime from quantizing ``nodes`` (left float by the quantizer) when it
    loads ``path``; rewrites the file when needed and returns the nodes it shielded.

    onnxruntime's WeightBiasQuantization, a basic-level graph optimization every session
    runs by default, gives a Conv / ConvTranspose / Gemm whose input comes from a
    DequantizeLinear and whose weight is a float initializer per-tensor int8 weights:
    it undoes ``nodes_to_exclude`` for any excluded node that reads a quantized
    activation (and per tensor, worse than the per-channel weights it replaced). A
    single-input ``Sum`` (a copy) between the DequantizeLinear and the node breaks the
    pattern, so the node runs in float in any onnxruntime session, not only in ours.
    """
    import onnx

    m = onnx.load(str(path))
    g = m.graph
    producer = {o: n for n in g.node for o in n.output}
    wanted = set(nodes)
    shielded: list[str] = []
    new_nodes = []
    for n in g.node:
        src = producer.get(n.input[0]) if n.input else None
        if (
            n.name in wanted
            and n.op_type in _REQUANTIZED_AT_LOAD
            and src is not None
            and src.op_type == "DequantizeLinear"
        ):
            copied = f"{n.input[0]}_float_copy_for_{n.name}"
            new_nodes.append(
                onnx.helper.make_node("Sum", [n.input[0]], [copied], name=f"{n.name}_keep_float")
            )
            n.input[0] = copied
            shielded.append(n.name)
        new_nodes.append(n)
    if shielded:
        g.ClearField("node")
        g.node.extend(new_nodes)
        onnx.save(m, str(path))
    return shielded
