"""A roofline per model variant: the work of one forward pass, and how close its measured
rate comes to what the machine allows at that work's arithmetic intensity.

:func:`count_work` counts one forward pass at one shape:

- **FLOPs** with ``torch.utils.flop_counter.FlopCounterMode`` on the fp32 model (and
  the CPU's fused attention, which it leaves out: :func:`flop_counter`): the same
  arithmetic for every variant. The FLOPs of the layers a variant runs in low
  precision (its quantized Linear/Conv layers; all of them for a bf16/fp16 cast) are
  counted as ops of that precision, the rest as fp32.
- **Bytes moved**, an estimate: the variant's weight bytes once, plus, for every
  innermost module that runs (a layer: no module runs inside it), the bytes of its input
  and output tensors (forward hooks): each activation written once by the layer that
  makes it and read once by each layer that takes it. Work between modules (a
  functional attention's score matrix, residual adds) is
  not counted, and a cache that holds a tensor between layers is not credited. Hooks run
  on the variant's own modules (so int8 activations count one byte); an ONNX Runtime
  session or a compiled program has none, and the fp32 model's activations stand in.

:func:`roofline` then places a measured time against a machine's
:class:`~quantbench.measure.ceilings.Ceilings`: achieved = FLOPs / time; attainable =
min(compute ceiling, bandwidth x intensity), where a mixed variant's compute ceiling is
its FLOPs over the time its low-precision and fp32 parts would take at their peaks.

Example (a Linear of 2x4 -> 3, by hand: 2*2*4*3 = 48 FLOPs; weights 12 + bias 3 floats
= 60 bytes; its input 8 and output 6 floats = 56 bytes)::

    >>> import torch
    >>> m = torch.nn.Linear(4, 3)
    >>> w = count_work(m, (torch.randn(2, 4),), weight_bytes=60)
    >>> w.flops, w.activation_bytes, w.bytes, w.intensity
    (48.0, 56, 116, 0.41379310344827586)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from quantbench.measure.ceilings import Ceilings

LOW_PRECISIONS = ("int8", "bf16", "fp16")
# Recipe layer kinds (Recipe.quantizes) -> torch module class names they cover.
_KIND_CLASSES = {"linear": ("Linear",), "matmul": ("Linear",), "gemm": ("Linear",),
                 "conv": ("Conv1d", "Conv2d", "Conv3d")}  # fmt: skip


@dataclass
class Work:
    """One forward pass at (``batch_size``, ``input_size``), as the roofline counts it."""

    batch_size: int
    input_size: int
    flops: float  # of the fp32 model
    low_flops: float = 0.0  # of those, run at ``precision`` (the rest at fp32)
    precision: str = "fp32"  # what the low-precision layers compute in
    weight_bytes: int = 0
    activation_bytes: int = 0
    activations_from: str = "variant"  # "variant" or "fp32 model" (no hooks in the variant)

    @property
    def bytes(self) -> int:
        return int(self.weight_bytes + self.activation_bytes)

    @property
    def intensity(self) -> float | None:
        """FLOPs per byte moved."""
        return self.flops / self.bytes if self.bytes > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Work:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class RooflinePoint:
    """A variant's place under the machine's roof (rates in ops/s)."""

    work: Work
    seconds: float  # the measured median of one forward pass
    achieved: float
    compute_ceiling: float
    memory_ceiling: float | None  # bandwidth x intensity
    attainable: float

    @property
    def share(self) -> float:
        """Achieved / attainable: 1.0 is the roof."""
        return self.achieved / self.attainable

    @property
    def bound(self) -> str:
        """ "memory" when bandwidth x intensity is the lower roof, else "compute"."""
        mem = self.memory_ceiling
        return "memory" if mem is not None and mem < self.compute_ceiling else "compute"


def compute_precision(precision_text: str | None) -> str:
    """What a recipe's layers compute in, from its ``Recipe.precision`` text: ``int8``
    when activations are quantized too (static or dynamic), ``bf16``/``fp16`` for a cast,
    else ``fp32`` (weight-only schemes dequantize to float before multiplying).

    >>> compute_precision("int8 weights (Linear), dynamic activations")
    'int8'
    >>> compute_precision("int4 weights (MatMul blocks of 32), fp32 activations")
    'fp32'
    """
    text = (precision_text or "").lower()
    for half in ("bf16", "fp16"):
        if text.startswith(half):
            return half
    if re.search(r"int8 (weights and )?activations|dynamic activations|int8 activations", text):
        return "int8"
    return "fp32"


def compute_ceiling(work: Work, ceilings: Ceilings) -> float | None:
    """The compute roof of ``work``: its FLOPs over the time its low-precision and fp32
    parts take at their measured peaks; None when a needed peak was not measured."""
    fp32 = ceilings.peak("fp32")
    low = work.low_flops if work.precision in LOW_PRECISIONS else 0.0
    rest = max(0.0, work.flops - low)
    low_peak = ceilings.peak(work.precision) if low else None
    if (rest and fp32 is None) or (low and low_peak is None) or work.flops <= 0:
        return None
    seconds = (rest / fp32 if rest else 0.0) + (low / low_peak if low else 0.0)
    return work.flops / seconds


def roofline(work: Work, seconds: float, ceilings: Ceilings) -> RooflinePoint | None:
    """``work`` done in ``seconds`` against ``ceilings``; None without FLOPs, a time or a
    compute peak for its precision."""
    peak = compute_ceiling(work, ceilings)
    if peak is None or not seconds or seconds <= 0:
        return None
    bw, intensity = ceilings.bandwidth(), work.intensity
    memory = bw * intensity if bw and intensity else None
    attainable = min(peak, memory) if memory is not None else peak
    return RooflinePoint(work, seconds, work.flops / seconds, peak, memory, attainable)


# ----------------------------------------------------------------------- counting


def flop_counter() -> Any:
    """torch's ``FlopCounterMode``, which also counts the CPU's fused attention kernel
    (``scaled_dot_product_attention`` on CPU runs ``_scaled_dot_product_flash_attention_
    for_cpu``, which torch's table leaves out: a transformer's attention counted 0)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def sdpa(query_shape: Any, key_shape: Any, value_shape: Any, *_: Any, **__: Any) -> int:
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    extra = {}
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:
        extra[op] = sdpa
    return FlopCounterMode(display=False, custom_mapping=extra)


def flops_by_module(module: Any, inputs: tuple) -> tuple[float, dict[str, tuple[str, float]]]:
    """(total FLOPs, module name -> (its class name, its own FLOPs)) of one forward pass:
    a module's own FLOPs are those not inside one of its submodules."""
    with flop_counter() as counter:
        module(*inputs)
    counts = counter.get_flop_counts()
    root = type(module).__name__

    def inclusive(name: str) -> float:
        return float(sum((counts.get(f"{root}.{name}" if name else root) or {}).values()))

    out = {}
    for name, m in module.named_modules():
        children = sum(inclusive(f"{name}.{c}" if name else c) for c, _ in m.named_children())
        out[name] = (type(m).__name__, max(0.0, inclusive(name) - children))
    return float(counter.get_total_flops()), out


def _is_low(module: Any) -> bool:
    """A module a recipe turned low-precision: a torch quantized module, or weights that
    are not a plain float32 tensor (torchao's quantized tensors, a bf16/fp16 cast)."""
    import torch

    if ".quantized" in type(module).__module__:
        return True
    w = getattr(module, "weight", None)
    if isinstance(w, torch.Tensor):
        return type(w) not in (torch.Tensor, torch.nn.Parameter) or w.dtype != torch.float32
    return False


def low_flops(
    module_flops: dict[str, tuple[str, float]],
    variant: Any = None,
    quantizes: tuple[str, ...] = (),
    float_layers: Iterable[str] = (),
) -> float:
    """FLOPs of the fp32 modules the variant runs in low precision: those whose name is
    a low-precision module of the ``variant``, else (no such module: an ONNX session, a
    compiled program) those of the layer kinds the recipe ``quantizes``, but
    ``float_layers``."""
    names: set[str] = set()
    if variant is not None and hasattr(variant, "named_modules") and not hasattr(
            variant, "_orig_mod"):  # fmt: skip
        names = {n for n, m in variant.named_modules() if _is_low(m)}
    if names:
        return sum(f for n, (_, f) in module_flops.items() if n in names)
    classes = {c for k in quantizes for c in _KIND_CLASSES.get(k.lower(), ())}
    skip = set(float_layers)
    return sum(f for n, (cls, f) in module_flops.items()
               if cls in classes and n not in skip and not any(n.startswith(s + ".") for s in skip))  # fmt: skip


def tensor_bytes(obj: Any) -> int:
    """Bytes of every tensor in ``obj`` (tensors, and tuples/lists/dicts of them)."""
    import torch

    if isinstance(obj, torch.Tensor):
        return int(obj.numel()) * int(obj.element_size())
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (tuple, list)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def activation_bytes(module: Any, inputs: tuple) -> int | None:
    """Bytes of the inputs and outputs of every innermost module that ran (no module
    inside it did: a Linear, a quantized Linear with its packed weights, an attention
    module that calls its projections functionally) in one forward pass; None when
    ``module`` has no torch modules that ran (an ONNX session, a compiled program)."""
    if not hasattr(module, "named_modules") or hasattr(module, "_orig_mod"):
        return None
    total, calls = 0, 0
    stack: list[list[bool]] = []  # per module running: did a module inside it run?

    def pre(_m: Any, _args: Any) -> None:
        stack.append([False])

    def post(_m: Any, args: Any, out: Any) -> None:
        nonlocal total, calls
        if not stack.pop()[0]:
            total += tensor_bytes(args) + tensor_bytes(out)
            calls += 1
        if stack:
            stack[-1][0] = True

    handles = []
    for _, m in module.named_modules():
        handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    try:
        module(*inputs)
    finally:
        for h in handles:
            h.remove()
    return total if calls else None


def count_work(
    fp32: Any,
    inputs: tuple,
    variant: Any = None,
    precision: str = "fp32",
    quantizes: tuple[str, ...] = (),
    float_layers: Iterable[str] = (),
    weight_bytes: int = 0,
    module_flops: tuple[float, dict[str, tuple[str, float]]] | None = None,
) -> Work:
    """The :class:`Work` of ``variant`` (default: the ``fp32`` module itself) on
    ``inputs``. ``precision``: what its low-precision layers compute in
    (:func:`compute_precision`); ``module_flops``: :func:`flops_by_module` of ``fp32``
    when already counted (one count serves every variant of a model)."""
    import torch

    with torch.inference_mode():
        total, modules = module_flops or flops_by_module(fp32, inputs)
        if precision in ("bf16", "fp16"):
            low = total
        elif precision == "int8":
            low = low_flops(modules, variant, quantizes, float_layers)
        else:
            low = 0.0
        acts = activation_bytes(variant if variant is not None else fp32, inputs)
        source = "variant"
        if acts is None:
            acts, source = activation_bytes(fp32, inputs) or 0, "fp32 model"
    first = inputs[0]
    return Work(
        batch_size=int(first.shape[0]), input_size=int(first.shape[-1]), flops=total,
        low_flops=low, precision=precision, weight_bytes=int(weight_bytes),
        activation_bytes=int(acts), activations_from=source,
    )  # fmt: skip
