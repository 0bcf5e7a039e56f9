"""PT2E static int8 through Inductor, and its deployable ``.pt2`` file.

``pt2e-static-int8``: ``torch.export`` (dynamic batch and size) -> ``prepare_pt2e`` with
the platform's Inductor quantizer -> calibrate -> ``convert_pt2e`` -> ``torch.compile``
with Inductor freezing (without freezing the int8 kernels are not used and it is slower
than fp32). The converted graph is saved as a ``.pt2`` file (``torch.export.save``),
which :func:`quantbench.artifacts.pt2.load` compiles again the same way.

Example::

    >>> from quantbench.models import load_model
    >>> from quantbench.recipes import QuantContext, apply_recipe
    >>> m = load_model("resnet18")
    >>> ctx = QuantContext("x86", [m.make_inputs(2, 224)])
    >>> art = apply_recipe("pt2e-static-int8", m, ctx)              # doctest: +SKIP
    >>> art.module(*m.make_inputs(1, 224)).shape                      # doctest: +SKIP
    torch.Size([1, 1000])
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
import time
import warnings
import weakref
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantbench import cpu
from quantbench.errors import UnsupportedError, first_line
from quantbench.recipes import Artifact, QuantContext, recipe
from quantbench.recipes.compile import (
    compile_module,
    dynamic_for,
    dynamic_label,
    inductor_counters,
    warm_batches,
)
from quantbench.recipes.eager import calibration_note
from quantbench.recipes.sizes import fill_sizes
from quantbench.recipes.torchao import torchao_version
from quantbench.strictjson import dumps


@dataclass(frozen=True)
class Pt2eStaticConfig:
    """PT2E post-training static int8 for Inductor on CPU.

    x86: ``X86InductorQuantizer`` with its default config (per-channel symmetric int8
    weights, per-tensor uint8 activations from a histogram observer); ARM:
    ``ArmInductorQuantizer``. The result runs under ``torch.compile`` with Inductor
    freezing, which is what swaps the quantize/dequantize pattern for oneDNN int8
    convolution / linear kernels.
    """

    freezing: bool = True


def _pt2e_quantizer() -> tuple[Any, str]:
    """(quantizer, its name) for this platform, or raise UnsupportedError."""
    try:
        if cpu.is_x86():
            from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

            flags = cpu.cpu_flags()
            # Without VNNI the u8*s8 products can overflow int16 accumulators (the
            # quantizer's own advice): use 7-bit activations there.
            reduce_range = bool(flags) and not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}
            q = xiq.X86InductorQuantizer().set_global(
                xiq.get_default_x86_inductor_quantization_config(reduce_range=reduce_range)
            )
            return q, "X86InductorQuantizer" + (" (reduce_range)" if reduce_range else "")
        if cpu.is_arm():
            from torchao.quantization.pt2e.quantizer import arm_inductor_quantizer as aiq

            q = aiq.ArmInductorQuantizer().set_global(
                aiq.get_default_arm_inductor_quantization_config()
            )
            return q, "ArmInductorQuantizer"
    except ImportError as e:
        raise UnsupportedError(
            f"torchao {torchao_version()} has no PT2E Inductor quantizer here: {e}"
        ) from None
    raise UnsupportedError(f"no PT2E Inductor quantizer for CPU architecture {cpu.machine()}")


def _quantizer_probe(config: Any, device: str) -> str | None:
    """pt2e-static-int8's probe: this platform's Inductor quantizer builds."""
    _pt2e_quantizer()
    return None


def _dynamic_shapes(model: Any, n_inputs: int) -> tuple:
    """What varies in the exported program: text, batch and sequence up to the model's
    positions (named dims: clear ranges); vision, batch and image height/width; a tensor
    model, the batch and the dims its ``input_spec`` names."""
    from torch.export import Dim

    if model.family == "text":  # (batch, seq) for every input (ids, mask)
        limit = model.max_input_size
        seq = Dim("seq", min=1, max=limit) if limit and limit > 2 else Dim.DYNAMIC
        return tuple({0: Dim.DYNAMIC, 1: seq} for _ in range(n_inputs))
    dims = getattr(model, "dynamic_dims", ())
    if model.family == "tensor" and len(dims) == n_inputs:
        return tuple({d: Dim.DYNAMIC for d in per} for per in dims)
    return ({0: Dim.DYNAMIC, 2: Dim.DYNAMIC, 3: Dim.DYNAMIC},) + tuple(
        {0: Dim.DYNAMIC} for _ in range(n_inputs - 1)
    )


def _shape_mode(model: Any) -> Any:
    """Export vision and tensor programs size-oblivious: otherwise a size that is 1 inside
    the model at the example's shape (ResNet's last map at 32 px) is specialised, and the
    program then refuses every larger input ("Guard failed: x.size()[2] <= 32"). Text
    keeps torch's default, under which oblivious mode refuses sequences of 1."""
    if model.family == "text":
        return contextlib.nullcontext()
    import torch.fx.experimental._config as fx_config

    return fx_config.patch(backed_size_oblivious=True)


@contextlib.contextmanager
def _quiet_export() -> Any:
    """Keep torch.export's chatter off stderr: sympy tracebacks it logs for harmless
    bounds it cannot simplify ("Failed to reduce inequalities", MobileNetV2), and the
    whole partial graph it prints when it fails (Longformer: thousands of lines). The
    failure itself still reaches the caller as an exception."""
    names = ["torch.fx.experimental.symbolic_shapes", "torch._export", "torch.export"]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _split_reused_module_calls(gm: Any) -> None:
    """Give each call of a reused module its own name in the graph's metadata.

    After non-strict export the quantizer groups nodes by the module they came from
    (``nn_module_stack``), so a module called twice (ResNet's shared ``relu``, ALBERT's
    shared layer) forms one partition with two outputs, which the X86 quantizer's
    fusion matcher rejects ("Input partition has more than one output node"). Export
    already tells the calls apart in the stack's keys (``...relu@1``); copy that
    suffix into the module path, as strict export's per-call ``source_fn_stack`` does.
    """
    for n in gm.graph.nodes:
        stack = n.meta.get("nn_module_stack")
        if not stack or "source_fn_stack" in n.meta:
            continue
        key, (fqn, cls) = next(reversed(stack.items()))
        _, at, call = key.rpartition("@")
        if at and call.isdigit() and not fqn.endswith(f"@{call}"):
            stack = dict(stack)
            stack[key] = (f"{fqn}@{call}", cls)
            n.meta["nn_module_stack"] = stack


def _export_and_prepare(model: Any, example: tuple, quantizer: Any) -> tuple[Any, str]:
    """Export with dynamic batch/size and annotate; try non-strict export, then strict.

    Non-strict export is tried first: strict export calls ``torch._dynamo.reset()``,
    which drops the compiled code of every artifact compiled before in this process
    (they then compile again at their next call, inside someone's measurements).
    """
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    errors = []
    ds = _dynamic_shapes(model, len(example))
    for strict in (False, True):
        mode = "strict" if strict else "non-strict"
        try:
            with _shape_mode(model):
                ep = torch.export.export(model.module, example, dynamic_shapes=ds, strict=strict)
        except Exception as e:  # export raises many types
            errors.append(f"{mode} export: {first_line(e)}")
            continue
        gm = ep.module()
        # Unused outputs (a base model's pooler) leave dead Linear->Tanh chains whose
        # partitions have no output node, which the quantizer cannot annotate.
        gm.graph.eliminate_dead_code()
        gm.recompile()
        if not strict:
            _split_reused_module_calls(gm)
        try:
            return prepare_pt2e(gm, quantizer), mode
        except Exception as e:
            errors.append(f"prepare_pt2e after {mode} export: {first_line(e)}")
    why = ""
    if any("data-dependent" in e for e in errors):
        why = " (its forward computes sizes from tensor values, e.g. with .item())"
    raise UnsupportedError(
        "torch.export with dynamic batch"
        + {"text": " and sequence length", "vision": " and image size"}.get(model.family, "")
        + f" cannot capture this model{why}, and re-exporting per shape is not an "
        + "option: "
        + "; ".join(errors)
    )


_WEIGHT_OPS = {
    "aten.conv1d.default": "Conv1d",
    "aten.conv2d.default": "Conv2d",
    "aten.conv3d.default": "Conv3d",
    "aten.linear.default": "Linear",
}
_OTHER_FLOAT_OPS = {
    "aten.embedding.default": "Embedding",
    "aten.layer_norm.default": "LayerNorm",
    "aten.group_norm.default": "GroupNorm",
    "aten.batch_norm.default": "BatchNorm",
    "aten._native_batch_norm_legit_no_training.default": "BatchNorm",
}


def _pt2e_counts(gm: Any) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """(quantized ops, float ops, quantize/dequantize op counts) of a converted graph.

    A conv/linear is int8 when its weight comes through ``dequantize_per_channel`` (an
    int8 constant) and its input through ``dequantize_per_tensor`` (a quantized
    activation): the pattern Inductor's freezing passes replace with oneDNN int8 ops.
    """
    quant: Counter[str] = Counter()
    floats: Counter[str] = Counter()
    qdq: Counter[str] = Counter()

    def is_dq(n: Any) -> bool:
        return getattr(n, "op", None) == "call_function" and "dequantize" in str(n.target)

    for n in gm.graph.nodes:
        if n.op != "call_function":
            continue
        target = str(n.target)
        if target.startswith("quantized_decomposed."):
            qdq[target.split(".")[1]] += 1
        elif target in _WEIGHT_OPS:
            kind = _WEIGHT_OPS[target]
            if len(n.args) > 1 and is_dq(n.args[1]):
                act = "static" if is_dq(n.args[0]) else "weight-only"
                quant[f"{kind} (int8 {act})"] += 1
            else:
                floats[kind] += 1
        elif target in _OTHER_FLOAT_OPS:
            floats[_OTHER_FLOAT_OPS[target]] += 1
    return dict(sorted(quant.items())), dict(sorted(floats.items())), dict(sorted(qdq.items()))


def _drop_unused_state(gm: Any) -> dict[str, Any]:
    """Delete what the converted graph does not read; return its state_dict.

    ``convert_pt2e`` stores the folded int8 weights as new constants (``_frozen_param*``)
    but leaves the original fp32 weights (and folded BatchNorm tensors) as unused
    attributes, so ``state_dict()`` holds both and is *larger* than fp32. Dropping them
    makes the module, its state_dict and the size what actually runs: int8 weights,
    fp32 biases, scales and zero points.
    """
    used = {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    for name in list(gm.state_dict(keep_vars=True)):
        if name in used:
            continue
        owner_name, _, attr = name.rpartition(".")
        owner = gm.get_submodule(owner_name) if owner_name else gm
        with contextlib.suppress(AttributeError):
            delattr(owner, attr)
    return gm.state_dict()


@recipe(
    "pt2e-static-int8",
    precision="int8 weights and activations (Conv, Linear)",
    runtime="torch-compile",
    description=(
        "PT2E: torch.export (dynamic batch/size) -> X86InductorQuantizer (per-channel int8 "
        "weights, calibrated uint8 activations) -> convert_pt2e -> torch.compile with "
        "Inductor freezing (oneDNN int8 kernels)"
    ),
    config=Pt2eStaticConfig(),
    float_layers=True,
    quantizes=("Conv", "Linear"),
    file_format="pt2",
    library="torchao",
    probe=_quantizer_probe,
)
def _pt2e_apply(model: Any, config: Pt2eStaticConfig, ctx: QuantContext) -> Artifact:
    import torch

    try:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e
    except ImportError as e:
        raise UnsupportedError(f"torchao PT2E is not available: {e}") from None
    if not ctx.calib_inputs:
        raise UnsupportedError("pt2e-static-int8 needs calibration batches")
    quantizer, qname = _pt2e_quantizer()
    for name in sorted(ctx.float_layers):
        quantizer.set_module_name_qconfig(name, None)
    example = ctx.calib_inputs[0]
    if int(example[0].shape[0]) == 1:
        # A dynamic dim whose example size is 1 is specialised by export; use 2.
        example = tuple(torch.cat([t, t]) for t in example)
    t = time.perf_counter()
    with _quiet_export():
        prepared, mode = _export_and_prepare(model, example, quantizer)
        with torch.no_grad():
            for batch in ctx.calib_inputs:
                prepared(*batch)
        converted = convert_pt2e(prepared)
    quantize_s = time.perf_counter() - t
    state = _drop_unused_state(converted)
    file, save_s = _write_pt2(converted, example, model, config.freezing)
    quant, floats, qdq = _pt2e_counts(converted)
    if not quant:
        raise UnsupportedError(f"{qname} annotated no convolution or linear layer")
    details: dict[str, Any] = {
        "compiled": True,
        "freezing": config.freezing,
        "dynamic_shapes": dynamic_label(dynamic_for(model.family)),
        "quantizer": qname,
        "export": mode,
        "qdq_ops": qdq,
        "quantize_s": round(quantize_s, 3),
        "save_s": round(save_s, 3),
        "torchao": torchao_version(),
    }
    inductor = {"freezing": config.freezing}
    before = inductor_counters()
    warm = warm_batches(ctx.calib_inputs)
    module, compile_s, graphs = compile_module(converted, warm, inductor, dynamic_for(model.family))
    details["graphs_compiled"] = graphs
    lowered = {
        k: v - before.get(k, 0)
        for k, v in inductor_counters().items()
        if ("qconv" in k or "qlinear" in k) and "count" in k and v - before.get(k, 0) > 0
    }
    details["inductor_int8_lowerings"] = dict(sorted(lowered.items()))
    notes = [
        calibration_note(ctx),
        "size: the .pt2 file `quantbench quantize` writes (torch.export.save of the "
        "converted graph: int8 weights, fp32 biases and scales, the graph itself)",
    ]
    if mode == "strict":
        notes.append(
            "captured by strict torch.export, which resets torch._dynamo: torch.compile-d "
            "artifacts made before it in this process compile again at their next call"
        )
    if not lowered:
        notes.append(
            "Inductor reported no int8 conv/linear lowering: the quantize/dequantize "
            "pattern may run as fp32 math"
        )
    art = Artifact(
        "pt2e-static-int8",
        module,
        runtime="torch-compile",
        notes=notes,
        quantized_modules=quant,
        float_modules=floats,
        compile_s=compile_s,
        details=details,
        file=file,
    )
    weakref.finalize(module, shutil.rmtree, str(file.parent), True)
    fill_sizes(art, state)
    art.size_bytes = file.stat().st_size
    return art


PT2_META = "quantbench.json"


def _write_pt2(gm: Any, example: tuple, model: Any, freezing: bool) -> tuple[Path, float]:
    """Save the converted graph as a ``.pt2`` file (``torch.export.save``): what ships.

    The graph is exported again from the converted module (dynamic batch and size, as
    captured) without its example inputs, which are calibration data, not the model.
    Returns (path in a fresh temporary directory, seconds it took).
    """
    import torch

    t = time.perf_counter()
    ds = _dynamic_shapes(model, len(example))
    with _shape_mode(model):
        ep = torch.export.export(gm, example, dynamic_shapes=ds, strict=False)
    ep.example_inputs = None
    path = Path(tempfile.mkdtemp(prefix="quantbench-pt2e-")) / "model.pt2"
    meta = {"family": str(model.family), "freezing": freezing, "recipe": "pt2e-static-int8"}
    torch.export.save(ep, str(path), extra_files={PT2_META: dumps(meta)})
    return path, time.perf_counter() - t


def register_quantized_ops() -> None:
    """Register the ``quantized_decomposed`` ops that a converted graph calls.

    ``torch.export.load`` of a ``.pt2`` file fails in a process that has not registered
    them ("failed to resolve torch.ops.quantized_decomposed.dequantize_per_channel"):
    quantizing imports them (torchao's PT2E does), a process that only loads does not.
    """
    import torch.ao.quantization.fx._decomposed  # noqa: F401  (registers the ops)
