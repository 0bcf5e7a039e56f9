"""torchao recipes: ``torchao.quantization.quantize_`` on every ``nn.Linear``, then
``torch.compile`` (torchao's int8 paths are decomposed into plain aten ops that are only
fast once Inductor fuses them).

- ``torchao-int8-dynamic`` / ``torchao-int8-weight-only``: int8 Linear weights, with
  int8 activations per token or fp32 activations.
- ``torchao-int4-weight-only``: only where this torchao has a CPU int4 kernel.
- ``torchao-intx-weight-only`` / ``torchao-int8-dynamic-intx``: int4 Linear weights in
  groups (``IntxWeightOnlyConfig`` / ``Int8DynamicActivationIntxWeightConfig``). On x86
  torchao 0.18 stores them one int4 value per int8 byte (``unpacked_to_int8``) and
  dequantizes before an fp32 matmul: its packed CPU formats need KleidiAI (ARM) or
  torchao's C++ kernels, which this build does not load.

torchao is imported when a recipe is applied: without it the recipes are listed and
report ``unsupported``.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any

from quantbench.errors import UnsupportedError, first_line
from quantbench.recipes import Artifact, QuantContext, Recipe, register
from quantbench.recipes.compile import compile_module, dynamic_for, dynamic_label, warm_batches
from quantbench.recipes.sizes import fill_sizes


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


def torchao_version() -> str:
    """The installed torchao's version ("?" when its metadata is missing)."""
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
            f"torchao {torchao_version()} has no CPU int4 weight-only kernel: "
            f"Int4WeightOnlyConfig packing formats are {', '.join(formats) or 'unknown'} "
            "(plain/preshuffled need mslk CUDA kernels, plain_int32 is XPU/NPU only, "
            "tile_packed_to_4d is tinygemm on CUDA); the CPU layout (Int4CPULayout) "
            "was removed"
        )
    return cpu[0]


INTX_PACKINGS = ("unpacked_to_int8", "opaque_aten_kleidiai", "opaque_torchao_auto")


@dataclass(frozen=True)
class TorchaoIntxConfig:
    """int4 (``bits``) Linear weights in groups of ``group_size`` along the input
    dimension, asymmetric (with zero points) or symmetric, and with ``embeddings`` the
    input-id embedding table in groups along its rows; ``packing`` is torchao's
    ``IntxPackingFormat``: the opaque ones are packed 4-bit for CPU kernels that must be
    in the build (KleidiAI on ARM, or torchao's C++ kernels)."""

    scheme: str  # "intx-weight-only" | "int8-dynamic-intx"
    compile: bool = True
    freezing: bool = False
    bits: int = 4
    group_size: int = 32
    symmetric: bool = False
    packing: str = "unpacked_to_int8"
    embeddings: bool = True  # the input-id table too (weight-only), as ort-int4-weight-only

    def check(self) -> None:
        from quantbench.errors import QuantbenchError

        if not 1 <= self.bits <= 8:
            raise QuantbenchError(f"torchao intx bits must be 1-8, got {self.bits}")
        if self.group_size not in (16, 32, 64, 128, 256):
            raise QuantbenchError(
                f"torchao intx group_size must be one of 16, 32, 64, 128, 256, got {self.group_size}"
            )
        if self.packing not in INTX_PACKINGS:
            raise QuantbenchError(
                f"torchao intx packing must be one of {', '.join(INTX_PACKINGS)}, "
                f"got {self.packing!r}"
            )


def _input_embeddings(module: Any) -> list[Any]:
    """The table a transformers model looks its input ids up in (``get_input_embeddings``)."""
    import torch

    for m in module.modules():
        get = getattr(m, "get_input_embeddings", None)
        if callable(get):
            try:
                e = get()
            except (NotImplementedError, AttributeError):
                continue
            if isinstance(e, torch.nn.Embedding):
                return [e]
    return []


def _intx_config(config: TorchaoIntxConfig, table: bool = False) -> Any:
    """The torchao config of ``config`` (``table``: the weight-only one for embeddings)."""
    import torch
    from torchao.quantization import (
        Int8DynamicActivationIntxWeightConfig,
        IntxWeightOnlyConfig,
        MappingType,
        PerGroup,
    )
    from torchao.quantization.quantize_.workflows.intx.intx_opaque_tensor import (
        _is_kernel_library_loaded,
    )
    from torchao.quantization.quantize_.workflows.intx.intx_packing_format import (
        IntxPackingFormat,
    )

    mapping = MappingType.SYMMETRIC if config.symmetric else MappingType.ASYMMETRIC
    if table:  # weight-only tables have one layout
        packing = IntxPackingFormat.UNPACKED_TO_INT8
    else:
        packing = IntxPackingFormat(config.packing)
        why = None
        if config.packing == "unpacked_to_int8":
            pass
        elif config.scheme == "intx-weight-only":
            why = "IntxWeightOnlyConfig has only the unpacked_to_int8 layout"
        elif config.packing == "opaque_aten_kleidiai":
            kleidiai = getattr(torch.backends, "kleidiai", None)
            if kleidiai is None or not kleidiai.is_available():
                why = "needs KleidiAI (torch.backends.kleidiai, ARM builds), not in this torch"
            elif not config.symmetric:
                why = "the KleidiAI int4 kernel takes symmetric weights only (symmetric: true)"
        elif not _is_kernel_library_loaded():
            why = "needs torchao's C++ CPU kernels (torch.ops.torchao), not in this build"
        if why:
            raise UnsupportedError(f"torchao {torchao_version()} {config.packing}: {why}")
    weight = getattr(torch, f"int{config.bits}")
    if config.scheme == "intx-weight-only" or table:
        return IntxWeightOnlyConfig(
            weight_dtype=weight, granularity=PerGroup(config.group_size), mapping_type=mapping,
            intx_packing_format=packing,
        )  # fmt: skip
    return Int8DynamicActivationIntxWeightConfig(
        weight_dtype=weight, weight_granularity=PerGroup(config.group_size),
        weight_mapping_type=mapping, intx_packing_format=packing,
    )  # fmt: skip


def _torchao_quant_config(tq: Any, config: Any) -> Any:
    if config.scheme == "int8-dynamic":
        cls = getattr(tq, "Int8DynamicActivationInt8WeightConfig", None)
        if cls is None:
            raise UnsupportedError(
                f"torchao {torchao_version()} has no Int8DynamicActivationInt8WeightConfig"
            )
        # Per-token activations, per-channel weights (torchao's default granularity).
        # set_inductor_config would set Inductor options process-wide (and they are for
        # Triton/CUDA anyway).
        return cls(set_inductor_config=False)
    if config.scheme == "int8-weight-only":
        cls = getattr(tq, "Int8WeightOnlyConfig", None)
        if cls is None:
            raise UnsupportedError(f"torchao {torchao_version()} has no Int8WeightOnlyConfig")
        return cls(set_inductor_config=False)
    if isinstance(config, TorchaoIntxConfig):
        config.check()
        return _intx_config(config)
    if config.scheme == "int4-weight-only":
        fmt = _int4_cpu_format(tq)
        return tq.Int4WeightOnlyConfig(
            group_size=config.int4_group_size, int4_packing_format=fmt, set_inductor_config=False
        )
    raise ValueError(f"unknown torchao scheme {config.scheme!r}")


def _torchao_probe(config: TorchaoConfig, device: str) -> str | None:
    """Why this torchao cannot build ``config`` here (e.g. no CPU int4 kernel), or None."""
    _torchao_quant_config(_torchao(), config)
    return None


def _linear_kind(weight: Any) -> str | None:
    """How a Linear weight is quantized by torchao, or None if it is a plain tensor."""
    name = type(weight).__name__
    if name in ("Parameter", "Tensor"):
        return None
    if name.startswith("Int8"):
        return "int8 dynamic" if getattr(weight, "act_quant_kwargs", None) else "int8 weight-only"
    if name.startswith("Int4"):
        return "int4 weight-only"
    if name.startswith("Intx"):
        bits = getattr(weight, "bit_width", None) or str(weight.target_dtype).replace("torch.", "")
        dynamic = getattr(weight, "activation_quantization", None) is not None
        return f"{bits if isinstance(bits, str) else f'int{bits}'} " + (
            "weight, int8 dynamic activations" if dynamic else "weight-only"
        )
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


def _torchao_apply(model: Any, config: Any, ctx: QuantContext) -> Artifact:
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
            tables = _input_embeddings(m) if getattr(config, "embeddings", False) else []
            if tables:
                tq.quantize_(m, _intx_config(config, table=True),
                             filter_fn=lambda mod, _fqn: any(mod is e for e in tables))  # fmt: skip
    except (ImportError, NotImplementedError, RuntimeError, AssertionError) as e:
        raise UnsupportedError(
            f"torchao {config.scheme} failed on {ctx.device}: {first_line(e)}"
        ) from None
    quantize_s = time.perf_counter() - t
    quant, floats = _torchao_counts(m)
    if tables:
        quant["Embedding (input ids, weight-only)"] = len(tables)
        floats["Embedding"] = floats.get("Embedding", len(tables)) - len(tables)
        if floats["Embedding"] <= 0:
            del floats["Embedding"]
    if not quant:
        raise UnsupportedError(
            f"torchao {config.scheme} quantized no Linear layer (shapes not supported)"
        )
    notes = []
    if model.family != "text" and any(k.startswith("Conv") for k in floats):
        notes.append(
            "torchao quantizes nn.Linear only: convolutions stay fp32 "
            f"({sum(quant.values())} Linear layer(s) quantized)"
        )
    details: dict[str, Any] = {
        "compiled": config.compile,
        "freezing": config.freezing and config.compile,
        "torchao": torchao_version(),
        "config": type(qconfig).__name__,
        "quantize_s": round(quantize_s, 3),
    }
    if config.scheme == "int8-weight-only":
        notes.append(
            "weight-only int8 with fp32 activations: Inductor's int8 weight-only GEMM "
            "(_weight_int8pack_mm) takes bf16 activations only, so an fp32 model "
            "dequantizes weights on the fly: a size win, not a speed win"
        )
    if isinstance(config, TorchaoIntxConfig):
        details.update(bits=config.bits, group_size=config.group_size, packing=config.packing,
                       symmetric=config.symmetric)  # fmt: skip
        if config.packing == "unpacked_to_int8":
            notes.append(
                f"int{config.bits} values stored one per int8 byte (torchao's unpacked_to_int8 "
                "layout, dequantized before an fp32 matmul): the file is about 9 bits per "
                "weight, not 4; the packed CPU layouts need KleidiAI or torchao's C++ kernels"
            )
    module: Any = m
    compile_s = None
    if config.compile:
        inductor = {"freezing": True} if config.freezing else {}
        dynamic = dynamic_for(model.family)
        warm = warm_batches(ctx.calib_inputs)
        module, compile_s, graphs = compile_module(m, warm, inductor, dynamic)
        details["graphs_compiled"] = graphs
        details["dynamic_shapes"] = dynamic_label(dynamic)
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
    return fill_sizes(art, m.state_dict())


# (name, scheme, precision, description): one apply function, three configs.
_RECIPES = [
    ("torchao-int8-dynamic", "int8-dynamic",
     "int8 weights (Linear, per channel), int8 activations per token",
     "torchao quantize_(Int8DynamicActivationInt8WeightConfig) on every nn.Linear, run "
     "under torch.compile (dynamic shapes; compile time reported apart)"),
    ("torchao-int8-weight-only", "int8-weight-only",
     "int8 weights (Linear, per channel), fp32 activations",
     "torchao quantize_(Int8WeightOnlyConfig) on every nn.Linear, run under torch.compile; "
     "shrinks Linear weights 4x, computes in fp32"),
    ("torchao-int4-weight-only", "int4-weight-only", "int4 weights (Linear, groups of 128)",
     "torchao quantize_(Int4WeightOnlyConfig) with a CPU packing format, where this torchao "
     "has a CPU int4 kernel"),
]  # fmt: skip


def _register(
    rows: list[tuple[str, str, str, str]],
    make_config: Any,
    devices: Any = None,
    probe: Any = None,
) -> None:
    """One recipe per (name, scheme, precision, description) row, all applied by
    :func:`_torchao_apply`; ``devices(scheme)`` the devices each runs on (default: the
    registry's default for torchao)."""
    for name, scheme, precision, description in rows:
        extra: dict[str, Any] = {"devices": devices(scheme)} if devices else {}
        if probe is not None:
            extra["probe"] = probe
        register(
            Recipe(
                name=name,
                precision=precision,
                runtime="torchao",
                description=description,
                apply=_torchao_apply,
                config=make_config(scheme),
                quantizes=("Linear",),
                library="torchao",
                **extra,
            )  # fmt: skip
        )


_register(
    _RECIPES,
    TorchaoConfig,
    devices=lambda scheme: ("cpu", "cuda") if scheme.startswith("int8") else ("cpu",),
    probe=_torchao_probe,
)


# int4 in groups of 32, unpacked to int8 bytes here: the torchao CPU int4 paths that run.
_INTX = [
    ("torchao-intx-weight-only", "intx-weight-only",
     "int4 weights (Linear, groups of 32, stored as int8 bytes), fp32 activations",
     "torchao quantize_(IntxWeightOnlyConfig(int4, PerGroup(32))) on every nn.Linear, under "
     "torch.compile; torchao 0.18 on x86 keeps one int4 value per int8 byte"),
    ("torchao-int8-dynamic-intx", "int8-dynamic-intx",
     "int4 weights (Linear, groups of 32, stored as int8 bytes), int8 activations per token",
     "torchao quantize_(Int8DynamicActivationIntxWeightConfig(int4, PerGroup(32))) on every "
     "nn.Linear, under torch.compile; packed 4-bit only with KleidiAI / torchao C++ kernels"),
]  # fmt: skip
_register(_INTX, TorchaoIntxConfig)
