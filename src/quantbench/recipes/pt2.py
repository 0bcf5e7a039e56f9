"""PyTorch 2 recipes: torchao ``quantize_`` configs, PT2E static int8 through Inductor,
half precision, and :func:`compile_artifact` (any torch artifact under ``torch.compile``).

- ``torchao-int8-dynamic`` / ``torchao-int8-weight-only``: ``torchao.quantization.quantize_``
  on every ``nn.Linear``, then ``torch.compile`` (torchao's int8 paths are decomposed
  into plain aten ops that are only fast once Inductor fuses them).
- ``torchao-int4-weight-only``: only where this torchao has a CPU int4 kernel.
- ``pt2e-static-int8``: ``torch.export`` (dynamic batch and size) -> ``prepare_pt2e``
  with the platform's Inductor quantizer -> calibrate -> ``convert_pt2e`` ->
  ``torch.compile`` with Inductor freezing (without freezing the int8 kernels are not
  used and it is slower than fp32).
- ``bf16`` / ``fp16``: the model cast to half precision, only on CPUs that compute in it
  natively (elsewhere oneDNN emulates it and the numbers would mislead).

Compiled artifacts are compiled inside the recipe, on the first calibration batch and on
a batch of one (which ``torch.compile`` specialises), so compile time is reported in
``Artifact.compile_s`` and not inside latency (a shape class met later, e.g. a batch of
one at a small image size, still compiles once at its first call). Inductor settings
(freezing) are set around every call of the artifact and restored, never left set.

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
import copy
import functools
import io
import json
import logging
import platform
import shutil
import tempfile
import time
import warnings
import weakref
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantbench.errors import UnsupportedError
from quantbench.recipes import Artifact, QuantContext, Recipe, register
from quantbench.recipes import eager as _eager  # noqa: F401  (fp32 stays first in listings)

# Dynamo's per-code-object recompile limit (8 by default) is shared by every compiled
# instance of the same model class in a process; raised around our own calls only.
_RECOMPILE_LIMIT = 64


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


# --------------------------------------------------------------------------- CPU features


def _cpu_flags() -> set[str]:
    """ISA flags of /proc/cpuinfo (x86 ``flags``, ARM ``Features``); empty if unreadable."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def _is_arm() -> bool:
    return platform.machine().lower() in ("arm64", "aarch64")


# --------------------------------------------------------------------------- compile helpers


@functools.cache
def _compiled_class() -> type:
    import torch
    import torch._dynamo.config
    import torch._inductor.config

    class CompiledModule(torch.nn.Module):
        """A ``torch.compile``-d module run under its own Inductor/Dynamo settings.

        Inductor freezing has to be on while Dynamo traces and Inductor compiles, which
        happens lazily at the first call with a new shape (passing it through
        ``torch.compile(options=...)`` or a custom backend fails for PT2E graphs:
        "UnsupportedOperatorException: onednn.qconv_prepack"). So the settings are set
        around every call and restored after it, never left set for other modules.
        Dynamo's recompile limit (8 per code object, shared by every compiled instance
        of a model class in the process) is raised the same way, so that variants of
        one model do not silently fall back to eager. Plain attribute sets cost ~5 us;
        ``config.patch`` would cost ~50 us a call. ``_orig_mod`` is the uncompiled
        module, as on torch's ``OptimizedModule``.
        """

        def __init__(self, compiled: Any, inductor: dict[str, Any]) -> None:
            super().__init__()
            self.compiled = compiled
            self.inductor = dict(inductor)

        @property
        def _orig_mod(self) -> Any:
            return self.compiled._orig_mod

        def forward(self, *args: Any) -> Any:
            ind, dyn = torch._inductor.config, torch._dynamo.config
            saved_ind = {k: getattr(ind, k) for k in self.inductor}
            saved_limit = dyn.recompile_limit
            try:
                for k, v in self.inductor.items():
                    setattr(ind, k, v)
                dyn.recompile_limit = max(saved_limit, _RECOMPILE_LIMIT)
                return self.compiled(*args)
            finally:
                dyn.recompile_limit = saved_limit
                for k, v in saved_ind.items():
                    setattr(ind, k, v)

        def state_dict(self, *args: Any, **kwargs: Any) -> Any:
            # What a user would ship is the compiled model's weights, without the wrapper.
            return self._orig_mod.state_dict(*args, **kwargs)

        def train(self, mode: bool = True) -> Any:
            # Inference only: exported graphs refuse train()/eval() altogether.
            if mode:
                raise NotImplementedError("a compiled quantbench artifact is inference-only")
            return self

    return CompiledModule


def _dynamic_for(family: str) -> bool | None:
    """``torch.compile(dynamic=...)`` per model family.

    Text: ``True``, batch and sequence length symbolic from the start (sequence lengths
    vary widely, and for GEMM-bound transformers a dynamic graph is as fast as a static
    one: BERT pt2e 23.8 vs 23.3 ms). Vision: ``None`` (automatic), static graphs at the
    calibration image size, where the headline numbers are taken, and one graph with
    symbolic sizes compiled the first time another size or batch shows up: oneDNN picks
    better convolution kernels for known shapes (ResNet18 pt2e 3.4 vs 4.4 ms).
    """
    return True if family == "text" else None


def _dynamic_label(dynamic: bool | None) -> str:
    if dynamic:
        return "all dims symbolic (batch 1 specialised)"
    return "automatic: static at the calibration shape, symbolic after a new shape"


def _warm_batches(batches: list[tuple]) -> list[tuple]:
    """The batches compiling runs on: the first one, and a batch of one beside it
    (``torch.compile`` specialises size 1 even with ``dynamic=True``, so a batch-1 call
    would otherwise compile another graph inside the first latency point)."""
    import torch

    if not batches:
        return []
    first = batches[0]
    b = int(first[0].shape[0])
    if b == 1:
        return [first, tuple(torch.cat([t, t]) for t in first)]
    return [first, tuple(t[:1] for t in first)]


def _graph_count() -> int:
    import torch

    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


def _inductor_counters() -> Counter:
    import torch

    return Counter(torch._dynamo.utils.counters["inductor"])


def _compile(
    module: Any, warm: list[tuple], inductor: dict[str, Any], dynamic: bool | None
) -> tuple[Any, float, int]:
    """``torch.compile(module, dynamic=dynamic)``, compiled now on ``warm``.

    Returns (callable module, seconds spent compiling, graphs compiled). Runs under
    ``inference_mode`` on inputs created there, as the runner times: grad mode and
    whether an input is an inference tensor are part of Dynamo's guards (a mismatch
    compiles again), and Inductor freezes weights only with grad disabled.
    """
    import torch

    compiled = torch.compile(module, dynamic=dynamic)
    wrapped = _compiled_class()(compiled, inductor)
    graphs = _graph_count()
    t = time.perf_counter()
    with torch.inference_mode():
        for batch in warm:
            wrapped(*(x.clone() if isinstance(x, torch.Tensor) else x for x in batch))
    return wrapped, time.perf_counter() - t, _graph_count() - graphs


# --------------------------------------------------------------------------- sizes


def _flat(t: Any) -> list[Any]:
    """Plain tensors behind ``t``: tensor subclasses (torchao) are unflattened."""
    if hasattr(t, "__tensor_flatten__") and type(t).__name__ != "Tensor":
        names, _ = t.__tensor_flatten__()
        out = []
        for n in names:
            inner = getattr(t, n)
            if inner is not None:
                out += _flat(inner)
        return out
    return [t]


def _state_stats(state: dict[str, Any]) -> tuple[int, dict[str, int], float]:
    """(bytes of ``torch.save(state)``, stored bytes per dtype, int8 element fraction)."""
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    by_dtype: Counter[str] = Counter()
    total = int8 = 0
    for v in state.values():
        if not isinstance(v, torch.Tensor):
            continue
        for t in _flat(v):
            dt = str(t.dtype).replace("torch.", "")
            by_dtype[dt] += t.numel() * t.element_size()
            if t.numel() > 1:  # scales and zero points do not count as weights
                total += t.numel()
                int8 += t.numel() if dt in ("int8", "uint8", "qint8", "quint8") else 0
    return buf.tell(), dict(by_dtype), (int8 / total if total else 0.0)


def _fill_sizes(art: Artifact, state: dict[str, Any]) -> Artifact:
    art.size_bytes, art.param_bytes_by_dtype, art.int8_param_fraction = _state_stats(state)
    return art


# --------------------------------------------------------------------------- torchao


@dataclass(frozen=True)
class TorchaoConfig:
    """A torchao ``quantize_`` config applied to every ``nn.Linear`` (torchao's default).

    ``compile``: run the result under ``torch.compile`` (the recipes do: torchao's int8
    linear is plain aten ops that only Inductor turns into fused int8 GEMMs).
    """

    scheme: str  # "int8-dynamic" | "int8-weight-only" | "int4-weight-only"
    compile: bool = True
    freezing: bool = False
    int4_group_size: int = 128


def _torchao() -> Any:
    try:
        import torchao.quantization as tq
    except ImportError as e:
        raise UnsupportedError(f"torchao is not installed: {e}") from None
    return tq


def _torchao_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("torchao")
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "?"


def _int4_cpu_format(tq: Any) -> Any:
    """The Int4WeightOnlyConfig packing format that has a CPU kernel, or raise.

    torchao 0.18 has none: ``plain``/``preshuffled`` call mslk (CUDA) kernels,
    ``plain_int32`` is XPU/NPU only, ``tile_packed_to_4d`` is tinygemm (CUDA, bf16);
    the old ``Int4CPULayout`` was removed. A later torchao may bring one back as an
    ``opaque``/``cpu`` format, which is picked up here.
    """
    try:
        from torchao.quantization.quantize_.workflows.int4.int4_packing_format import (
            Int4PackingFormat,
        )
    except ImportError:
        Int4PackingFormat = None  # noqa: N806
    formats = [f.value for f in Int4PackingFormat] if Int4PackingFormat is not None else []
    cpu = [f for f in formats if "cpu" in f or "opaque" in f]
    if not hasattr(tq, "Int4WeightOnlyConfig") or not cpu:
        raise UnsupportedError(
            f"torchao {_torchao_version()} has no CPU int4 weight-only kernel: "
            f"Int4WeightOnlyConfig packing formats are {', '.join(formats) or 'unknown'} "
            "(plain/preshuffled need mslk CUDA kernels, plain_int32 is XPU/NPU only, "
            "tile_packed_to_4d is tinygemm on CUDA); the CPU layout (Int4CPULayout) "
            "was removed"
        )
    return cpu[0]


def _torchao_quant_config(tq: Any, config: TorchaoConfig) -> Any:
    if config.scheme == "int8-dynamic":
        cls = getattr(tq, "Int8DynamicActivationInt8WeightConfig", None)
        if cls is None:
            raise UnsupportedError(
                f"torchao {_torchao_version()} has no Int8DynamicActivationInt8WeightConfig"
            )
        # Per-token activations, per-channel weights (torchao's default granularity).
        # set_inductor_config would set Inductor options process-wide (and they are for
        # Triton/CUDA anyway).
        return cls(set_inductor_config=False)
    if config.scheme == "int8-weight-only":
        cls = getattr(tq, "Int8WeightOnlyConfig", None)
        if cls is None:
            raise UnsupportedError(f"torchao {_torchao_version()} has no Int8WeightOnlyConfig")
        return cls(set_inductor_config=False)
    if config.scheme == "int4-weight-only":
        fmt = _int4_cpu_format(tq)
        return tq.Int4WeightOnlyConfig(
            group_size=config.int4_group_size, int4_packing_format=fmt, set_inductor_config=False
        )
    raise ValueError(f"unknown torchao scheme {config.scheme!r}")


def _linear_kind(weight: Any) -> str | None:
    """How a Linear weight is quantized by torchao, or None if it is a plain tensor."""
    name = type(weight).__name__
    if name in ("Parameter", "Tensor"):
        return None
    if name.startswith("Int8"):
        return "int8 dynamic" if getattr(weight, "act_quant_kwargs", None) else "int8 weight-only"
    if name.startswith("Int4"):
        return "int4 weight-only"
    return name


def _torchao_counts(module: Any) -> tuple[dict[str, int], dict[str, int]]:
    import torch

    from quantbench.measure import size

    quant: Counter[str] = Counter()
    for m in module.modules():
        if isinstance(m, torch.nn.Linear):
            kind = _linear_kind(m.weight)
            if kind is not None:
                quant[f"Linear ({kind})"] += 1
    floats = size.float_modules(module)
    n_q = sum(quant.values())
    if n_q and "Linear" in floats:
        floats["Linear"] -= n_q
        if floats["Linear"] <= 0:
            del floats["Linear"]
    return dict(sorted(quant.items())), floats


def _torchao_apply(model: Any, config: TorchaoConfig, ctx: QuantContext) -> Artifact:
    import torch

    tq = _torchao()
    qconfig = _torchao_quant_config(tq, config)
    name = f"torchao-{config.scheme}"
    if not any(isinstance(m, torch.nn.Linear) for m in model.module.modules()):
        raise UnsupportedError(
            "the model has no nn.Linear layer, and torchao's quantize_ configs quantize "
            "Linear weights only"
        )
    m = copy.deepcopy(model.module).eval()
    t = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tq.quantize_(m, qconfig)
    except (ImportError, NotImplementedError, RuntimeError, AssertionError) as e:
        raise UnsupportedError(f"torchao {config.scheme} failed on CPU: {_first_line(e)}") from None
    quantize_s = time.perf_counter() - t
    quant, floats = _torchao_counts(m)
    if not quant:
        raise UnsupportedError(
            f"torchao {config.scheme} quantized no Linear layer (shapes not supported)"
        )
    notes = []
    if model.family != "text":
        notes.append(
            "torchao quantizes nn.Linear only: convolutions stay fp32 "
            f"({sum(quant.values())} Linear layer(s) quantized)"
        )
    details: dict[str, Any] = {
        "compiled": config.compile,
        "freezing": config.freezing and config.compile,
        "torchao": _torchao_version(),
        "config": type(qconfig).__name__,
        "quantize_s": round(quantize_s, 3),
    }
    if config.scheme == "int8-weight-only":
        notes.append(
            "weight-only int8 with fp32 activations: Inductor's int8 weight-only GEMM "
            "(_weight_int8pack_mm) takes bf16 activations only, so an fp32 model "
            "dequantizes weights on the fly: a size win, not a speed win"
        )
    module: Any = m
    compile_s = None
    if config.compile:
        inductor = {"freezing": True} if config.freezing else {}
        dynamic = _dynamic_for(model.family)
        warm = _warm_batches(ctx.calib_inputs)
        module, compile_s, graphs = _compile(m, warm, inductor, dynamic)
        details["graphs_compiled"] = graphs
        details["dynamic_shapes"] = _dynamic_label(dynamic)
    art = Artifact(
        name,
        module,
        runtime="torchao",
        notes=notes,
        quantized_modules=quant,
        float_modules=floats,
        compile_s=compile_s,
        details=details,
    )
    return _fill_sizes(art, m.state_dict())


# --------------------------------------------------------------------------- PT2E static int8


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
    machine = platform.machine().lower()
    try:
        if machine in ("x86_64", "amd64", "i686", "x86"):
            from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

            flags = _cpu_flags()
            # Without VNNI the u8*s8 products can overflow int16 accumulators (the
            # quantizer's own advice): use 7-bit activations there.
            reduce_range = bool(flags) and not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}
            q = xiq.X86InductorQuantizer().set_global(
                xiq.get_default_x86_inductor_quantization_config(reduce_range=reduce_range)
            )
            return q, "X86InductorQuantizer" + (" (reduce_range)" if reduce_range else "")
        if machine in ("arm64", "aarch64"):
            from torchao.quantization.pt2e.quantizer import arm_inductor_quantizer as aiq

            q = aiq.ArmInductorQuantizer().set_global(
                aiq.get_default_arm_inductor_quantization_config()
            )
            return q, "ArmInductorQuantizer"
    except ImportError as e:
        raise UnsupportedError(
            f"torchao {_torchao_version()} has no PT2E Inductor quantizer here: {e}"
        ) from None
    raise UnsupportedError(f"no PT2E Inductor quantizer for CPU architecture {machine}")


def _dynamic_shapes(family: str, n_inputs: int) -> tuple:
    from torch.export import Dim

    if family == "text":  # (batch, seq) for every input (ids, mask)
        return tuple({0: Dim.DYNAMIC, 1: Dim.DYNAMIC} for _ in range(n_inputs))
    return ({0: Dim.DYNAMIC, 2: Dim.DYNAMIC, 3: Dim.DYNAMIC},) + tuple(
        {0: Dim.DYNAMIC} for _ in range(n_inputs - 1)
    )


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
    ds = _dynamic_shapes(model.family, len(example))
    for strict in (False, True):
        mode = "strict" if strict else "non-strict"
        try:
            ep = torch.export.export(model.module, example, dynamic_shapes=ds, strict=strict)
        except Exception as e:  # export raises many types
            errors.append(f"{mode} export: {_first_line(e)}")
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
            errors.append(f"prepare_pt2e after {mode} export: {_first_line(e)}")
    why = ""
    if any("data-dependent" in e for e in errors):
        why = " (its forward computes sizes from tensor values, e.g. with .item())"
    raise UnsupportedError(
        "torch.export with dynamic batch and "
        + ("sequence length" if model.family == "text" else "image size")
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
    file, save_s = _write_pt2(converted, example, model.family, config.freezing)
    quant, floats, qdq = _pt2e_counts(converted)
    if not quant:
        raise UnsupportedError(f"{qname} annotated no convolution or linear layer")
    details: dict[str, Any] = {
        "compiled": True,
        "freezing": config.freezing,
        "dynamic_shapes": _dynamic_label(_dynamic_for(model.family)),
        "quantizer": qname,
        "export": mode,
        "qdq_ops": qdq,
        "quantize_s": round(quantize_s, 3),
        "save_s": round(save_s, 3),
        "torchao": _torchao_version(),
    }
    inductor = {"freezing": config.freezing}
    before = _inductor_counters()
    warm = _warm_batches(ctx.calib_inputs)
    module, compile_s, graphs = _compile(converted, warm, inductor, _dynamic_for(model.family))
    details["graphs_compiled"] = graphs
    lowered = {
        k: v - before.get(k, 0)
        for k, v in _inductor_counters().items()
        if ("qconv" in k or "qlinear" in k) and "count" in k and v - before.get(k, 0) > 0
    }
    details["inductor_int8_lowerings"] = dict(sorted(lowered.items()))
    notes = [
        _eager.calibration_note(ctx),
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
    _fill_sizes(art, state)
    art.size_bytes = file.stat().st_size
    return art


PT2_META = "quantbench.json"


def _write_pt2(gm: Any, example: tuple, family: str, freezing: bool) -> tuple[Path, float]:
    """Save the converted graph as a ``.pt2`` file (``torch.export.save``): what ships.

    The graph is exported again from the converted module (dynamic batch and size, as
    captured) without its example inputs, which are calibration data, not the model.
    Returns (path in a fresh temporary directory, seconds it took).
    """
    import torch

    t = time.perf_counter()
    ds = _dynamic_shapes(family, len(example))
    ep = torch.export.export(gm, example, dynamic_shapes=ds, strict=False)
    ep.example_inputs = None
    path = Path(tempfile.mkdtemp(prefix="quantbench-pt2e-")) / "model.pt2"
    meta = {"family": family, "freezing": freezing, "recipe": "pt2e-static-int8"}
    torch.export.save(ep, str(path), extra_files={PT2_META: json.dumps(meta)})
    return path, time.perf_counter() - t


def load_pt2(path: str | Path) -> Any:
    """A ``.pt2`` file written by ``pt2e-static-int8`` as a module compiled like the recipe's.

    Compiles lazily, at the first call with a new shape (with Inductor freezing, which
    the int8 kernels need).
    """
    import torch

    extra = {PT2_META: ""}
    ep = torch.export.load(str(path), extra_files=extra)
    try:
        meta = json.loads(extra[PT2_META] or "{}")
    except json.JSONDecodeError:
        meta = {}
    family = meta.get("family", "vision")
    module, _, _ = _compile(ep.module(), [], {"freezing": meta.get("freezing", True)},
                            _dynamic_for(family))  # fmt: skip
    return module


# --------------------------------------------------------------------------- half precision


@dataclass(frozen=True)
class HalfConfig:
    dtype: str  # "bfloat16" | "float16"


@functools.cache
def _cast_class() -> type:
    import torch

    class CastIO(torch.nn.Module):
        """Runs a half-precision module on fp32 inputs: float inputs are cast to its
        dtype (integer token ids stay integers), the output is cast back to fp32."""

        def __init__(self, module: Any, dtype: Any) -> None:
            super().__init__()
            self.module = module
            self.dtype = dtype

        def forward(self, *args: Any) -> Any:
            args = tuple(
                a.to(self.dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                for a in args
            )
            out = self.module(*args)
            return out.float() if out.is_floating_point() else out

        def state_dict(self, *args: Any, **kwargs: Any) -> Any:
            return self.module.state_dict(*args, **kwargs)

    return CastIO


def _native_half(dtype: str) -> tuple[bool, str]:
    """(whether this CPU computes in ``dtype`` natively, the reason when it does not)."""
    import torch

    flags = _cpu_flags()
    if dtype == "bfloat16":
        need = {"avx512_bf16", "amx_bf16"} if not _is_arm() else {"bf16"}
        why = "no native bf16 on this CPU (needs AVX512-BF16 or AMX)"
        probe = "_is_mkldnn_bf16_supported"
    else:
        need = {"avx512_fp16", "amx_fp16"} if not _is_arm() else {"fphp", "asimdhp"}
        why = "no native fp16 on this CPU (needs AVX512-FP16 or AMX-FP16)"
        probe = "_is_mkldnn_fp16_supported"
    if _is_arm():
        why = why.replace("AVX512-BF16 or AMX", "ARMv8.6 BF16").replace(
            "AVX512-FP16 or AMX-FP16", "ARMv8.2 FP16"
        )
    if not torch.backends.mkldnn.is_available():
        return False, f"{why}: this torch has no oneDNN (mkldnn)"
    check = getattr(torch.ops.mkldnn, probe, None)
    if check is not None and not check():
        return False, why
    # oneDNN's own check passes on any AVX512 CPU (it emulates); ask the ISA flags.
    if flags and not flags & need:
        return False, f"{why}; oneDNN would emulate it with fp32 math"
    return True, ""


def _half_apply(model: Any, config: HalfConfig, ctx: QuantContext) -> Artifact:
    import torch

    from quantbench.measure import size

    ok, why = _native_half(config.dtype)
    if not ok:
        raise UnsupportedError(why)
    dtype = getattr(torch, config.dtype)
    m = copy.deepcopy(model.module).to(dtype).eval()
    short = "bf16" if config.dtype == "bfloat16" else "fp16"
    counts = {f"{k} ({short})": v for k, v in size.float_modules(m).items()}
    art = Artifact(
        short,
        _cast_class()(m, dtype),
        runtime="torch-eager",
        notes=[f"every weight and activation in {config.dtype}; fp32 inputs are cast"],
        quantized_modules=counts,
        float_modules={},
        details={"compiled": False, "dtype": config.dtype},
    )
    return _fill_sizes(art, m.state_dict())


# --------------------------------------------------------------------------- compile variant


def compile_artifact(
    art: Artifact, example_inputs: Any, *, family: str | None = None, freezing: bool = False
) -> Artifact:
    """The same artifact under ``torch.compile``: recipe ``<recipe>+compile``.

    Compiles now, on ``example_inputs`` (one input tuple, or a list of them) and on a
    batch of one, and records the time in ``compile_s``. Sizes and module counts are
    those of the uncompiled artifact. ``family`` ("text" / "vision"; guessed from the
    inputs when None: integer token ids mean text) picks the dynamic-shape policy of
    the recipes (see ``_dynamic_for``). ``freezing`` folds weights into the compiled
    graph (faster on CPU, but later ``load_state_dict`` calls no longer reach it).

    Example::

        >>> art = apply_recipe("dynamic-int8", m, ctx)                   # doctest: +SKIP
        >>> fast = compile_artifact(art, m.make_inputs(2, 128))          # doctest: +SKIP
        >>> fast.recipe, fast.runtime
        ('dynamic-int8+compile', 'torch-compile')
    """
    import torch

    from quantbench.measure import size

    if not isinstance(art.module, torch.nn.Module):
        raise UnsupportedError(
            f"{art.recipe} runs on {art.runtime}, not as a torch module: nothing to compile"
        )
    if art.details.get("compiled") or art.runtime == "torch-compile":
        raise UnsupportedError(f"{art.recipe} is already compiled")
    if (
        isinstance(example_inputs, tuple)
        and example_inputs
        and isinstance(example_inputs[0], torch.Tensor)
    ):
        example_inputs = [example_inputs]
    batches = list(example_inputs)
    base = art.module
    warm = _warm_batches(batches) + batches[1:]
    inductor = {"freezing": True} if freezing else {}
    if family is None:
        ints = any(not t.is_floating_point() for t in batches[0] if isinstance(t, torch.Tensor))
        family = "text" if ints else "vision"
    dynamic = _dynamic_for(family)
    try:
        module, compile_s, graphs = _compile(base, warm, inductor, dynamic)
    except Exception as e:
        raise UnsupportedError(f"torch.compile failed on {art.recipe}: {_first_line(e)}") from None

    def pick(own: Any, derive: Any) -> Any:
        return own if own is not None else derive()

    return Artifact(
        f"{art.recipe}+compile",
        module,
        runtime="torch-compile",
        notes=list(art.notes),
        size_bytes=pick(art.size_bytes, lambda: size.state_dict_bytes(base)),
        file=art.file,
        quantized_modules=pick(art.quantized_modules, lambda: size.quantized_modules(base)),
        float_modules=pick(art.float_modules, lambda: size.float_modules(base)),
        int8_param_fraction=pick(art.int8_param_fraction, lambda: size.int8_fraction(base)),
        param_bytes_by_dtype=pick(
            art.param_bytes_by_dtype, lambda: size.param_bytes_by_dtype(base)
        ),
        compile_s=compile_s,
        details={
            **art.details,
            "compiled": True,
            "freezing": freezing,
            "dynamic_shapes": _dynamic_label(dynamic),
            "graphs_compiled": graphs,
            "base_recipe": art.recipe,
            "base_runtime": art.runtime,
        },
    )


# --------------------------------------------------------------------------- registry

register(Recipe(
    "torchao-int8-dynamic", "int8 weights (Linear, per channel), int8 activations per token",
    "torchao",
    "torchao quantize_(Int8DynamicActivationInt8WeightConfig) on every nn.Linear, run "
    "under torch.compile (dynamic shapes; compile time reported apart)",
    _torchao_apply, TorchaoConfig("int8-dynamic"),
))  # fmt: skip
register(Recipe(
    "torchao-int8-weight-only", "int8 weights (Linear, per channel), fp32 activations",
    "torchao",
    "torchao quantize_(Int8WeightOnlyConfig) on every nn.Linear, run under torch.compile; "
    "shrinks Linear weights 4x, computes in fp32",
    _torchao_apply, TorchaoConfig("int8-weight-only"),
))  # fmt: skip
register(Recipe(
    "torchao-int4-weight-only", "int4 weights (Linear, groups of 128)", "torchao",
    "torchao quantize_(Int4WeightOnlyConfig) with a CPU packing format, where this torchao "
    "has a CPU int4 kernel",
    _torchao_apply, TorchaoConfig("int4-weight-only"),
))  # fmt: skip
register(Recipe(
    "pt2e-static-int8", "int8 weights and activations (Conv, Linear)", "torch-compile",
    "PT2E: torch.export (dynamic batch/size) -> X86InductorQuantizer (per-channel int8 "
    "weights, calibrated uint8 activations) -> convert_pt2e -> torch.compile with "
    "Inductor freezing (oneDNN int8 kernels)",
    _pt2e_apply, Pt2eStaticConfig(), float_layers=True,
))  # fmt: skip
register(Recipe(
    "bf16", "bf16 weights and activations", "torch-eager",
    "the model cast to bfloat16 (eager); only on CPUs with native bf16 (AVX512-BF16/AMX)",
    _half_apply, HalfConfig("bfloat16"),
))  # fmt: skip
register(Recipe(
    "fp16", "fp16 weights and activations", "torch-eager",
    "the model cast to float16 (eager); only on CPUs with native fp16 (AVX512-FP16/AMX-FP16)",
    _half_apply, HalfConfig("float16"),
))  # fmt: skip
