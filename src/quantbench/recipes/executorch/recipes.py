"""The ExecuTorch recipes: ``et-fp32`` (the model lowered to XNNPACK as is) and ``et-int8``
(PT2E int8 with ``XNNPACKQuantizer``, then lowered the same way)."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantbench.errors import QuantbenchError, UnsupportedError
from quantbench.recipes import Artifact, QuantContext, recipe
from quantbench.recipes.executorch.runtime import EXTRA, RUNTIME, require

# A text program's sequence bound where the model states none (memory is planned for it).
DEFAULT_MAX_SEQ = 512
MODES = ("auto", "static", "dynamic")


@dataclass(frozen=True)
class EtFp32Config:
    pass


@dataclass(frozen=True)
class EtInt8Config:
    """PT2E int8 with ``XNNPACKQuantizer``: per-channel symmetric int8 weights.

    ``mode`` static: int8 activations calibrated on the run's calibration data; dynamic:
    activations quantized per token at run time (XNNPACK's QD8 kernels); auto: static for
    vision models, dynamic for transformers (static leaves their softmax, layer norms and
    mask building in float anyway, and keeps less of their outputs).
    """

    mode: str = "auto"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise QuantbenchError(f"et-int8 mode must be one of {', '.join(MODES)}")


def _example(model: Any, ctx: QuantContext) -> tuple[tuple, int]:
    """(one input of batch 1 to export with, the image size or the sequence bound)."""
    if model.family == "text":
        bound = model.max_input_size or DEFAULT_MAX_SEQ
        seq = int(ctx.calib_inputs[0][0].shape[-1]) if ctx.calib_inputs else 16
        return model.make_inputs(1, max(2, min(seq, bound)), seed=1234), bound
    if ctx.calib_inputs:  # the program's image size is the calibration inputs' (the run's)
        return tuple(t[:1] for t in ctx.calib_inputs[0]), int(ctx.calib_inputs[0][0].shape[-1])
    return model.make_inputs(1, 64, seed=1234), 64


def _check_inputs(model: Any, size: int) -> list[tuple]:
    """Inputs the program must agree on, in an order that grows and shrinks the shapes: a
    text model's padded short sequence, a batch of three of the longest, then a short one
    again (the mask must be honoured at every length)."""
    if model.family != "text":
        return [model.make_inputs(1, size, seed=4321), model.make_inputs(3, size, seed=4322)]
    short = max(2, min(size, 32) // 2)
    ids, mask = model.make_inputs(1, short, seed=4321)
    mask = mask.clone()
    mask[:, short - short // 3 :] = 0
    long = model.make_inputs(3, min(size, 128), seed=4322)
    return [(ids, mask), long, model.make_inputs(1, short + 1, seed=4323)]


def _build(name: str, model: Any, ctx: QuantContext, mode: str | None) -> Artifact:
    require()
    from quantbench.recipes.executorch import lower as et
    from quantbench.recipes.executorch.runtime import EtModule
    from quantbench.recipes.pt2e import _pt2e_counts

    example, size = _example(model, ctx)
    ds = et.dynamic_shapes(model.family, len(example), size)
    module = model.module.eval()
    seconds: dict[str, float] = {}
    reference = module
    if mode is not None:
        calib = ctx.calib_inputs if mode == "static" else ctx.calib_inputs[:1]
        reference = et.timed(
            lambda: et.quantize(module, example, ds, mode, calib, ctx.float_layers),
            seconds, "quantize_s",
        )  # fmt: skip
    out_dir = tempfile.mkdtemp(prefix="quantbench-et-")
    path = Path(out_dir) / "model.pte"
    try:
        names = et.input_names_of(model, len(example))
        low = et.timed(lambda: et.lower(reference, example, ds, path, names), seconds, "lower_s")
        program = EtModule(path, cleanup_dir=out_dir)
        check = et.check_program(
            program, reference, _check_inputs(model, size), "int8" if mode else "fp32"
        )
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    quant, floats, _ = _pt2e_counts(low["graph"])
    if mode == "dynamic":  # activations quantized at run time, not calibrated
        quant = {k.replace("static", "dynamic"): v for k, v in quant.items()}
    if mode is not None and not quant:
        raise UnsupportedError(f"XNNPACKQuantizer ({mode}) quantized no convolution or linear")
    by_dtype, fraction = et.tensor_stats(low["state"])
    share = low["delegation"]
    details: dict[str, Any] = {
        "backend": "XNNPACK",
        "delegation": share,
        "threads": program.threads,
        "input_bounds": [list(b) for b in program.bounds],
        "program_check": check,
        **seconds,
    }
    notes = [
        "size: the .pte file (the program with XNNPACK's packed weights)",
        f"runs in ExecuTorch's runtime on {program.bound_text()} (as exported; a batch runs "
        "as that many calls)",
    ]
    # said either way: a partly delegated program is a different thing to ship
    what = f"XNNPACK runs {share['share']:.0%} of the graph's nodes in {share['subgraphs']} subgraph(s)"
    if share["share"] < 1:
        left = ", ".join(list(share["non_delegated_ops"])[:6])
        what += f"; the rest ({left}) runs on ExecuTorch's portable kernels"
    notes.append(what)
    if check["cosine"] < et.CLOSE:
        notes.append(
            f"the program's integer kernels agree with PT2E's simulation of them to cosine "
            f"{check['cosine']:.4f} (rounding differs; fidelity is measured on the program)"
        )
    if mode is not None:
        details.update(quantizer="XNNPACKQuantizer", mode=mode, per_channel=True)
        if mode == "static":
            from quantbench.recipes.eager import calibration_note

            notes.append(calibration_note(ctx))
        else:
            notes.append("int8 weights per channel; activations quantized per token at run time")
    return Artifact(
        name, program, runtime=RUNTIME, notes=notes, size_bytes=path.stat().st_size,
        file=path, quantized_modules=quant, float_modules=floats,
        int8_param_fraction=fraction, param_bytes_by_dtype=by_dtype,
        compile_s=sum(seconds.values()), details=details,
    )  # fmt: skip


@recipe(
    "et-fp32",
    precision="fp32",
    runtime=RUNTIME,
    description=(
        "ExecuTorch: torch.export -> XNNPACK delegate -> .pte, run by ExecuTorch's runtime "
        "in fp32 (the ExecuTorch baseline)"
    ),
    config=EtFp32Config(),
    file_format="pte",
    library=EXTRA,
)
def _et_fp32(model: Any, config: EtFp32Config, ctx: QuantContext) -> Artifact:
    return _build("et-fp32", model, ctx, None)


@recipe(
    "et-int8",
    precision="int8 weights (per channel); int8 activations (static, vision) or per-token dynamic (text)",
    runtime=RUNTIME,
    description=(
        "ExecuTorch: PT2E with XNNPACKQuantizer (per-channel symmetric int8; static, "
        "calibrated, for vision, dynamic for transformers) -> XNNPACK delegate -> .pte"
    ),
    config=EtInt8Config(),
    float_layers=True,
    quantizes=("Conv", "Linear"),
    file_format="pte",
    library=EXTRA,
    baseline="et-fp32",
)
def _et_int8(model: Any, config: EtInt8Config, ctx: QuantContext) -> Artifact:
    mode = config.mode
    if mode == "auto":
        mode = "dynamic" if model.family == "text" else "static"
    if mode == "static" and not ctx.calib_inputs:
        raise UnsupportedError("et-int8 (static) needs calibration batches")
    return _build("et-int8", model, ctx, mode)
