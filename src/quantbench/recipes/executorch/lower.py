"""From a torch model to a ``.pte`` program: ``torch.export`` with bounded dynamic shapes,
optional PT2E int8 with ``XNNPACKQuantizer``, ``to_edge_transform_and_lower`` with the
XNNPACK partitioner, ``to_executorch``; what share of the graph XNNPACK took, and the
check that the program computes what the graph it came from computes.

Imports ExecuTorch at module level: import this module only when lowering.
"""

from __future__ import annotations

import operator
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
    XNNPACKQuantizer,
    get_symmetric_quantization_config,
)
from executorch.devtools.backend_debug import get_delegation_info
from executorch.exir import to_edge_transform_and_lower

from quantbench.errors import UnsupportedError, first_line

_INT_ARITH = (torch.ops.aten.add.Tensor, torch.ops.aten.mul.Tensor)
# The program must agree with the graph it was lowered from before anything is measured
# on it (see dynamic_shapes: broken XNNPACK programs gave cosine 0.60-0.69). An int8
# program's integer kernels round differently from PT2E's float simulation of them, and
# the difference grows with depth: MobileNetV2 (depthwise, random weights) agreed to 0.984.
# Below the bar the program is refused; between it and CLOSE it runs, with a note.
MIN_PROGRAM_COSINE = {"fp32": 0.999, "int8": 0.9}
CLOSE = 0.99


class IntSafeXNNPACKQuantizer(XNNPACKQuantizer):
    """``XNNPACKQuantizer`` that leaves integer arithmetic integer.

    Its ``transform_for_annotation`` (executorch 1.5.1) turns every scalar argument of
    ``aten.add``/``aten.mul`` into a float tensor constant, also on int64 ops such as the
    ``arange(n) + 0`` transformers builds attention masks with: the op becomes float and
    the ``aten.index`` after it fails ("tensors used as indices must be long..."). The
    scalar is put back where the op's result is not floating point.
    """

    def transform_for_annotation(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
        model = super().transform_for_annotation(model)
        for n in model.graph.nodes:
            val = n.meta.get("val")
            if n.op != "call_function" or n.target not in _INT_ARITH or val is None:
                continue
            if getattr(val, "dtype", torch.float32).is_floating_point:
                continue
            args = list(n.args)
            for i, a in enumerate(args):
                is_const = isinstance(a, torch.fx.Node) and a.op == "get_attr"
                if is_const and str(a.target).startswith("_tensor_constant"):
                    args[i] = int(getattr(model, a.target).item())
            n.args = tuple(args)
        model.graph.eliminate_dead_code()
        model.recompile()
        return model


def dynamic_shapes(family: str, n_inputs: int, max_size: int) -> tuple | None:
    """A text model's sequence length dynamic up to ``max_size``; everything else static.

    The batch is 1 (what a device runs; :class:`~.runtime.EtModule` runs a larger batch
    one input at a time) and an image's size is fixed: with a dynamic batch or image
    size, XNNPACK's static int8 programs computed wrong outputs once the shape grew
    (cosine 0.60 at batch 4 after a call at batch 1, 0.69 at another image size).
    """
    from torch.export import Dim

    if family != "text":
        return None
    seq = Dim.AUTO(min=1, max=max_size)
    return tuple({1: seq} for _ in range(n_inputs))


def quantizer_for(mode: str, module: Any, float_layers: frozenset[str]) -> XNNPACKQuantizer:
    """Per-channel symmetric int8 (``mode`` static or dynamic), every layer of
    ``float_layers`` (torch module names) left float."""
    cfg = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=mode == "dynamic")
    q = IntSafeXNNPACKQuantizer().set_global(cfg)
    if float_layers:
        known = {n for n, _ in module.named_modules()}
        missing = sorted(set(float_layers) - known)
        if missing:
            from quantbench.errors import QuantbenchError

            raise QuantbenchError(f"no layer named {', '.join(missing)} in the model")
        # set_module_name(name, None) asserts in this version: filter the nodes instead
        q.set_filter_function(lambda n: not _in_layers(n, float_layers))
    return q


def _in_layers(node: Any, layers: frozenset[str]) -> bool:
    stack = node.meta.get("nn_module_stack") or {}
    return any(path in layers for path, _ in stack.values())


def quantize(
    module: Any, example: tuple, ds: tuple | None, mode: str, calib: list[tuple],
    float_layers: frozenset,
) -> Any:  # fmt: skip
    """PT2E: export, annotate with :class:`IntSafeXNNPACKQuantizer`, calibrate, convert."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from quantbench.recipes.pt2e import _split_reused_module_calls

    gm = _export(module, example, ds).module()
    gm.graph.eliminate_dead_code()  # a base model's unused pooler: nothing to annotate
    gm.recompile()
    _split_reused_module_calls(gm)  # a module called twice (ResNet's relu, ALBERT's layer)
    quantizer = quantizer_for(mode, module, float_layers)  # an unknown layer: said as such
    try:
        prepared = prepare_pt2e(gm, quantizer)
    except Exception as e:
        raise UnsupportedError(
            f"XNNPACKQuantizer cannot annotate this model: {first_line(e)}"
        ) from None
    with torch.no_grad():
        for batch in calib:  # one input at a time: the program's batch is 1
            for i in range(int(batch[0].shape[0])):
                prepared(*(t[i : i + 1] for t in batch))
    return convert_pt2e(prepared)


INPUT_NAMES = "input_names"  # the program's constant method that names its inputs


def input_names_of(model: Any, n: int) -> tuple[str, ...] | None:
    """The names of ``model``'s ``n`` inputs: the ones its data gave, else its forward's
    leading positional parameters; None when it takes ``*args``."""
    import inspect

    if getattr(model, "input_names", None):
        return tuple(model.input_names)[:n]
    try:
        params = list(inspect.signature(model.module.forward).parameters.values())
    except (TypeError, ValueError, AttributeError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    named = [p.name for p in params if p.kind in kinds]
    return tuple(named[:n]) if len(named) >= n else None


def _export(module: Any, example: tuple, ds: tuple | None) -> Any:
    from quantbench.recipes.pt2e import _quiet_export

    try:
        with _quiet_export():
            return torch.export.export(module, example, dynamic_shapes=ds, strict=False)
    except Exception as e:
        raise UnsupportedError(f"torch.export cannot capture this model: {first_line(e)}") from None


def lower(
    module: Any,
    example: tuple,
    ds: tuple | None,
    path: Path,
    names: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Export ``module``, lower it to XNNPACK, write the program to ``path``; return how
    much XNNPACK took (see :func:`delegation`), the exported program's tensors and graph.
    ``names``: the inputs' names, kept in the program as its constant method
    ``input_names`` (a ``.pte`` has no other place for them)."""
    ep = _export(module, example, ds)
    state, graph = used_tensors(ep), ep.graph_module
    constants = {INPUT_NAMES: list(names)} if names else None
    edge = to_edge_transform_and_lower(
        ep, partitioner=[XnnpackPartitioner()], constant_methods=constants
    )
    share = delegation(edge.exported_program().graph_module)
    program = edge.to_executorch()
    with open(path, "wb") as f:
        program.write_to_file(f)
    return {"delegation": share, "state": state, "graph": graph}


def used_tensors(ep: Any) -> dict[str, Any]:
    """The tensors an exported program reads (``convert_pt2e`` leaves the fp32 weights it
    replaced by int8 constants on the module, unread)."""
    sig = ep.graph_signature
    names = {
        **sig.inputs_to_parameters,
        **sig.inputs_to_buffers,
        **sig.inputs_to_lifted_tensor_constants,
    }
    used = {
        names[n.name]
        for n in ep.graph.nodes
        if n.op == "placeholder" and n.name in names and n.users
    }
    return {k: v for k, v in {**ep.state_dict, **ep.constants}.items() if k in used}


def _op_name(target: Any) -> str:
    parts = str(target).split(".")
    return parts[1] if len(parts) > 2 else str(getattr(target, "__name__", target))


def delegation(gm: Any) -> dict[str, Any]:
    """How much of the lowered graph XNNPACK runs: delegated subgraphs and nodes, the
    nodes left to ExecuTorch's portable kernels (by op), and the delegated share of
    nodes. ``get_delegation_info`` counts the ``getitem`` nodes that unpack a delegate's
    outputs as not delegated: they are left out here."""
    info = get_delegation_info(gm)
    left: Counter[str] = Counter()
    for n in gm.graph.nodes:
        if n.op != "call_function" or n.target is operator.getitem:
            continue
        if "executorch_call_delegate" in n.name:
            continue
        left[_op_name(n.target)] += 1
    done = int(info.num_delegated_nodes)
    total = done + sum(left.values())
    return {
        "backend": "XnnpackBackend",
        "subgraphs": int(info.num_delegated_subgraphs),
        "delegated_nodes": done,
        "non_delegated_nodes": sum(left.values()),
        "non_delegated_ops": dict(left.most_common()),
        "share": round(done / total, 4) if total else 0.0,
    }


def tensor_stats(state: dict[str, Any]) -> tuple[dict[str, int], float]:
    """(stored bytes per dtype, fraction of weight elements in int8) of a program's
    tensors (scales and zero points, one element each, are not weights)."""
    by_dtype: Counter[str] = Counter()
    total = low = 0
    for t in state.values():
        if not isinstance(t, torch.Tensor):
            continue
        dt = str(t.dtype).replace("torch.", "")
        by_dtype[dt] += t.numel() * t.element_size()
        if t.numel() > 1 and t.dim() > 1:
            total += t.numel()
            low += t.numel() if dt in ("int8", "uint8") else 0
    return dict(by_dtype), (low / total if total else 0.0)


def check_program(program: Any, reference: Any, inputs: list[tuple], kind: str) -> dict[str, Any]:
    """The program's outputs vs ``reference``'s on each input set; raise if they disagree."""
    from quantbench.recipes.onnx.export import _compare

    checks = []
    for x in inputs:
        with torch.no_grad():  # the graph was exported for batch 1, as the program
            ref = torch.cat([reference(*(t[i : i + 1] for t in x)) for i in range(len(x[0]))])
        c = _compare(ref, program(*x))
        c["input_shape"] = [list(t.shape) for t in x]
        checks.append(c)
        if c["cosine"] < MIN_PROGRAM_COSINE[kind]:
            raise RuntimeError(
                f"the ExecuTorch program disagrees with the graph it was lowered from at "
                f"input shape {c['input_shape']} (cosine {c['cosine']:.4f})"
            )
    return {"cosine": min(c["cosine"] for c in checks), "points": checks}


def timed(fn: Any, seconds: dict[str, float], key: str) -> Any:
    t = time.perf_counter()
    try:
        return fn()
    finally:
        seconds[key] = round(time.perf_counter() - t, 3)
