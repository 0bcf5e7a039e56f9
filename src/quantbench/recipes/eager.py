"""PyTorch eager-mode recipes: the fp32 baseline, the lab's dynamic int8, FX static int8
and FX quantization-aware training (qat-int8).

These use ``torch.ao.quantization``, which torch 2.14 still ships but marks deprecated;
where a future torch drops it, the recipes report ``unsupported`` instead of crashing.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any

from quantbench.errors import UnsupportedError, first_line
from quantbench.recipes import Artifact, QuantContext, RecipeStyle, recipe


def _ao() -> Any:
    try:
        import torch.ao.quantization as ao
        from torch.ao.quantization import quantize_fx
    except ImportError as e:  # pragma: no cover - depends on the torch build
        raise UnsupportedError(
            f"torch.ao.quantization is not available in this torch: {e}"
        ) from None
    return ao, quantize_fx


def _needs_engine(config: Any, device: str) -> str | None:
    """The eager int8 recipes' probe: torch.ao.quantization and a quantized engine."""
    from quantbench import env

    _ao()
    if not env.quantized_engines():
        return (
            "this torch has no quantized engine (x86, fbgemm, onednn or qnnpack): no int8 kernels"
        )
    return None


@dataclass(frozen=True)
class Fp32Config:
    pass


@recipe(
    "fp32",
    precision="fp32",
    runtime="torch-eager",
    description="the unquantized model, as built (the baseline every ratio is taken against)",
    config=Fp32Config(),
    quantizes=(),
    compilable=True,
    devices=("cpu", "cuda"),
    explanation=(
        "Baseline: the model as loaded, float32 weights and activations in eager PyTorch. "
        "Every other recipe is compared against it."
    ),
    style=RecipeStyle("-", "o", ""),
)
def _fp32(model: Any, config: Fp32Config, ctx: QuantContext) -> Artifact:
    from quantbench.recipes.onnx.given import given_file

    if given_file(model) is not None:  # an ONNX file: itself, in ONNX Runtime
        from quantbench.recipes.onnx.source import given_fp32

        return given_fp32(model)
    return Artifact("fp32", model.module)


@dataclass(frozen=True)
class DynamicInt8Config:
    """The lab's method: ``quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)``."""

    dtype: str = "qint8"


@recipe(
    "dynamic-int8",
    precision="int8 weights (Linear), dynamic activations",
    runtime="torch-eager",
    description=(
        "the lab's method: torch.ao.quantization.quantize_dynamic over every nn.Linear; "
        "weights stored as qint8 (per tensor), activations quantized on the fly per batch"
    ),
    config=DynamicInt8Config(),
    float_layers=True,
    quantizes=("Linear",),
    compilable=True,
    probe=_needs_engine,
    explanation=(
        "The lab's method: `torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, "
        "dtype=torch.qint8)`. The weights of every `nn.Linear` are stored as int8 with one "
        "scale per tensor; activations are quantized on the fly at each call and the "
        "results dequantized back to float. Convolutions, embeddings and normalisation "
        "layers stay in float."
    ),
    style=RecipeStyle("--", "s", "///"),
)
def _dynamic_int8(model: Any, config: DynamicInt8Config, ctx: QuantContext) -> Artifact:
    import torch

    ao, _ = _ao()
    torch.backends.quantized.engine = ctx.engine
    spec: Any = {torch.nn.Linear}
    if ctx.float_layers:
        spec = {
            name: ao.default_dynamic_qconfig
            for name, m in model.module.named_modules()
            if isinstance(m, torch.nn.Linear) and name not in ctx.float_layers
        }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = ao.quantize_dynamic(model.module, spec, dtype=getattr(torch, config.dtype))
    notes = []
    if not any(isinstance(m, torch.nn.Linear) for m in model.module.modules()):
        notes.append("the model has no nn.Linear layer, so dynamic-int8 changes nothing")
    return Artifact("dynamic-int8", q.eval(), notes=notes)


@dataclass(frozen=True)
class StaticInt8Config:
    """FX graph-mode post-training static int8: per-channel weights, calibrated activations."""

    per_channel: bool = True


def _qconfig_mapping(engine: str, per_channel: bool) -> Any:
    ao, _ = _ao()
    if engine in ("x86", "fbgemm", "onednn") and per_channel:
        # The engine's default mapping: per-channel symmetric weights, histogram activations.
        return ao.get_default_qconfig_mapping(engine)
    weight = ao.default_per_channel_weight_observer if per_channel else ao.default_weight_observer
    act = ao.HistogramObserver.with_args(reduce_range=engine in ("x86", "fbgemm"))
    return ao.QConfigMapping().set_global(ao.QConfig(activation=act, weight=weight))


@recipe(
    "static-int8",
    precision="int8 weights and activations (Conv, Linear)",
    runtime="torch-eager",
    description=(
        "FX graph-mode post-training static quantization: Conv/BN/ReLU fused, per-channel "
        "int8 weights, activation ranges calibrated on sample batches, real int8 kernels"
    ),
    config=StaticInt8Config(),
    float_layers=True,
    quantizes=("Conv", "Linear"),
    compilable=True,
    families=("vision",),  # FX tracing: transformers models are not traceable
    probe=_needs_engine,
    explanation=(
        "FX graph-mode post-training static quantization (`prepare_fx` / `convert_fx`): "
        "Conv/Linear + ReLU (and BatchNorm) are fused, weights are int8 per output channel, "
        "and activation scales and zero points are calibrated on {calib} before "
        "conversion, so the quantized parts run int8 from end to end."
    ),
    style=RecipeStyle(":", "^", "xxx"),
)
def _static_int8(model: Any, config: StaticInt8Config, ctx: QuantContext) -> Artifact:
    import torch

    if model.family != "vision":
        raise UnsupportedError(
            "FX graph-mode static quantization needs a symbolically traceable model; "
            "transformers models are not (their forward has data-dependent control flow). "
            "Use dynamic-int8 for them"
        )
    if not ctx.calib_inputs:
        raise UnsupportedError("static-int8 needs calibration batches")
    _, quantize_fx = _ao()
    torch.backends.quantized.engine = ctx.engine
    qmap = _qconfig_mapping(ctx.engine, config.per_channel)
    for name in sorted(ctx.float_layers):
        qmap = qmap.set_module_name(name, None)
    module = copy.deepcopy(model.module).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = _prepare(quantize_fx.prepare_fx, module, qmap, ctx.calib_inputs[0])
        with torch.inference_mode():
            for batch in ctx.calib_inputs:
                prepared(*batch)
        q = quantize_fx.convert_fx(prepared)
    _keepdim_means(q)
    return Artifact("static-int8", q.eval(), notes=[calibration_note(ctx)])


def _keepdim_means(gm: Any) -> None:
    """Rewrite ``x.mean(dims)`` as ``x.mean(dims, keepdim=True).squeeze(dims)``: the same
    values, but torch's quantized ``mean`` fails on a channels-last tensor whose reduced
    dims are all 1 unless ``keepdim`` ("required rank 4 tensor to use channels_last
    format"): MNASNet's global pooling over its final 1x1 map, at 32 px inputs."""
    import torch

    changed = False
    for node in list(gm.graph.nodes):
        is_mean = (node.op == "call_method" and node.target == "mean") or (
            node.op == "call_function" and node.target is torch.mean
        )
        if not is_mean or "dtype" in node.kwargs:
            continue
        args = list(node.args)
        dims = args[1] if len(args) > 1 else node.kwargs.get("dim")
        keepdim = args[2] if len(args) > 2 else node.kwargs.get("keepdim", False)
        if dims is None or keepdim is not False:
            continue
        dims = (dims,) if isinstance(dims, int) else tuple(dims)
        node.args, node.kwargs = (args[0], dims), {"keepdim": True}
        with gm.graph.inserting_after(node):
            squeezed = gm.graph.call_method("squeeze", (node, dims))
        node.replace_all_uses_with(squeezed, delete_user_cb=lambda u, s=squeezed: u is not s)
        changed = True
    if changed:
        gm.recompile()


def calibration_note(ctx: QuantContext) -> str:
    n = sum(int(b[0].shape[0]) for b in ctx.calib_inputs)
    where = "synthetic inputs" if ctx.calib_source == "synthetic" else ctx.calib_source
    return f"activations calibrated on {len(ctx.calib_inputs)} batches ({n} samples) of {where}"


def _prepare(prepare: Any, module: Any, qmap: Any, example: tuple) -> Any:
    try:
        return prepare(module, qmap, example)
    except Exception as e:  # torch.fx tracing errors have many types
        msg = first_line(e, with_type=False)
        raise UnsupportedError(f"model is not symbolically traceable by torch.fx: {msg}") from None


@dataclass(frozen=True)
class QatInt8Config:
    """FX quantization-aware training: fake-quantized fine-tuning, then static int8."""

    freeze_bn_after: float = 0.5  # fraction of the steps after which BatchNorm stats freeze
    freeze_observers_after: float = 0.75


@recipe(
    "qat-int8",
    precision="int8 weights and activations (Conv, Linear)",
    runtime="torch-eager",
    description=(
        "quantization-aware training (FX): fake-quantized fine-tuning on labelled data "
        "(--train-dataset, --qat-steps), then converted to static int8 like static-int8"
    ),
    config=QatInt8Config(),
    float_layers=True,
    quantizes=("Conv", "Linear"),
    compilable=True,
    families=("vision",),
    probe=_needs_engine,
)
def _qat_int8(model: Any, config: QatInt8Config, ctx: QuantContext) -> Artifact:
    import torch

    if model.family != "vision":
        raise UnsupportedError(
            "qat-int8 uses FX graph mode, which cannot trace transformers models; "
            "use dynamic-int8 or an ort-* recipe for them"
        )
    if not ctx.train_batches:
        raise UnsupportedError(
            "qat-int8 needs labelled training data (--train-dataset): it fine-tunes the model"
        )
    ao, quantize_fx = _ao()
    torch.backends.quantized.engine = ctx.engine
    qmap = ao.get_default_qat_qconfig_mapping(ctx.engine)
    for name in sorted(ctx.float_layers):
        qmap = qmap.set_module_name(name, None)
    module = copy.deepcopy(model.module).train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = _prepare(quantize_fx.prepare_qat_fx, module, qmap, ctx.train_batches[0][0])
        opt = torch.optim.SGD(prepared.parameters(), lr=ctx.qat_lr, momentum=0.9)
        losses = []
        for step in range(ctx.qat_steps):
            if step == int(config.freeze_bn_after * ctx.qat_steps):
                prepared.apply(torch.ao.nn.intrinsic.qat.freeze_bn_stats)
            if step == int(config.freeze_observers_after * ctx.qat_steps):
                prepared.apply(ao.disable_observer)
            inputs, labels = ctx.train_batches[step % len(ctx.train_batches)]
            loss = torch.nn.functional.cross_entropy(prepared(*inputs), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss))
        q = quantize_fx.convert_fx(prepared.eval())
    _keepdim_means(q)
    k = max(1, len(losses) // 10)
    return Artifact(
        "qat-int8",
        q.eval(),
        notes=[
            f"fine-tuned with fake quantization for {ctx.qat_steps} steps (SGD, lr "
            f"{ctx.qat_lr:g}) on {ctx.calib_source if ctx.calib_source != 'synthetic' else 'the training data'}; "
            f"loss {sum(losses[:k]) / k:.3f} -> {sum(losses[-k:]) / k:.3f}"
        ],
        details={"qat_steps": ctx.qat_steps, "qat_lr": ctx.qat_lr,
                 "loss_first": losses[0], "loss_last": losses[-1]},
    )  # fmt: skip
