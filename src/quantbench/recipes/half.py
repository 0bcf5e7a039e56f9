"""Half precision: ``bf16`` / ``fp16``, the model cast to bfloat16 / float16 (eager).

On the CPU only where it computes in it natively: elsewhere oneDNN emulates it with fp32
math and the numbers would mislead, so the recipes report ``unsupported`` with the
reason. On CUDA: fp16 on any GPU, bf16 on compute capability 8.0+ (Ampere and later).
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Any

from quantbench import cpu
from quantbench.errors import UnsupportedError
from quantbench.recipes import Artifact, QuantContext, Recipe, register
from quantbench.recipes.sizes import fill_sizes


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

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            # keywords too: a wrapper must call the model as its own forward is called
            def cast(a: Any) -> Any:
                floating = isinstance(a, torch.Tensor) and a.is_floating_point()
                return a.to(self.dtype) if floating else a

            out = self.module(*map(cast, args), **{k: cast(v) for k, v in kwargs.items()})
            return out.float() if out.is_floating_point() else out

        def state_dict(self, *args: Any, **kwargs: Any) -> Any:
            return self.module.state_dict(*args, **kwargs)

    return CastIO


def _native_half(dtype: str) -> tuple[bool, str]:
    """(whether this CPU computes in ``dtype`` natively, the reason when it does not)."""
    import torch

    arm = cpu.is_arm()
    if dtype == "bfloat16":
        need = {"avx512_bf16", "amx_bf16"} if not arm else {"bf16"}
        why = "no native bf16 on this CPU (needs AVX512-BF16 or AMX)"
        probe = "_is_mkldnn_bf16_supported"
    else:
        need = {"avx512_fp16", "amx_fp16"} if not arm else {"fphp", "asimdhp"}
        why = "no native fp16 on this CPU (needs AVX512-FP16 or AMX-FP16)"
        probe = "_is_mkldnn_fp16_supported"
    if arm:
        why = why.replace("AVX512-BF16 or AMX", "ARMv8.6 BF16").replace(
            "AVX512-FP16 or AMX-FP16", "ARMv8.2 FP16"
        )
    if not torch.backends.mkldnn.is_available():
        return False, f"{why}: this torch has no oneDNN (mkldnn)"
    check = getattr(torch.ops.mkldnn, probe, None)
    if check is not None and not check():
        return False, why
    # oneDNN's own check passes on any AVX512 CPU (it emulates); ask the ISA flags, where
    # the kernel lists any ("neon" alone is what cpu_flags() assumes when it lists none).
    flags = cpu.cpu_flags() - {"neon"}
    if flags and not flags & need:
        return False, f"{why}; oneDNN would emulate it with fp32 math"
    return True, ""


def half_probe(config: HalfConfig, device: str) -> str | None:
    """Why ``config.dtype`` does not run natively on ``device`` here, or None."""
    import torch

    if device == "cuda":
        if config.dtype == "bfloat16" and not torch.cuda.is_bf16_supported(False):
            major, minor = torch.cuda.get_device_capability()
            return f"no native bf16 on this GPU (compute capability {major}.{minor} < 8.0)"
        return None
    ok, why = _native_half(config.dtype)
    return None if ok else why


def _half_apply(model: Any, config: HalfConfig, ctx: QuantContext) -> Artifact:
    import torch

    from quantbench.measure import size

    why = half_probe(config, ctx.device)
    if why is not None:
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
    return fill_sizes(art, m.state_dict())


# The whole model is cast: every layer kind with weights (and every activation).
_EVERY_LAYER = ("Conv", "Linear", "Embedding", "Norm")

for _name, _dtype, _description in (
    ("bf16", "bfloat16",
     "the model cast to bfloat16 (eager); only on CPUs with native bf16 (AVX512-BF16/AMX) "
     "or GPUs of compute capability 8.0+"),
    ("fp16", "float16",
     "the model cast to float16 (eager); only on CPUs with native fp16 (AVX512-FP16/AMX-FP16) "
     "or a GPU"),
):  # fmt: skip
    register(
        Recipe(
            name=_name,
            precision=f"{_name} weights and activations",
            runtime="torch-eager",
            description=_description,
            apply=_half_apply,
            config=HalfConfig(_dtype),
            quantizes=_EVERY_LAYER,
            compilable=True,
            devices=("cpu", "cuda"),
            probe=half_probe,
        )
    )
