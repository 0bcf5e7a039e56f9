"""The "tensor" family: models whose inputs are whatever tensors the data holds (tabular
rows, audio, several inputs of any dtype), for everything that is neither images nor
token ids.

A tensor model's inputs are taken from the data given to it: calibration, fidelity,
latency and export all use examples drawn (seeded) from the first examples of that data,
so the shapes, dtypes and value ranges (category indices) are the model's own. The batch
dimension is always dynamic; other dimensions are only when ``input_spec`` names them::

    input_spec = {
        "dynamic": {"audio": {1: "time"}},   # input -> {dim: name}; dim 0 (batch) always
        "sizes": [4000, 8000, 16000],        # the sweep of the named dims (default: the
                                             # data's size, its half and its double)
        "labels": "y",                       # which batch element is the label (None: none)
    }

Example::

    >>> import torch
    >>> make = TensorInputs(("x",), (torch.arange(12.).reshape(3, 4),), ({},), (), 4)
    >>> [t.shape for t in make(5, 4)]
    [torch.Size([5, 4])]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from quantbench.errors import QuantbenchError, unknown_name
from quantbench.models.base import LoadedModel
from quantbench.results import Family

TENSOR = Family.TENSOR
POOL_EXAMPLES = 256  # examples kept to draw synthetic batches from
SPEC_KEYS = ("dynamic", "sizes", "labels")


@dataclass(frozen=True)
class TensorInputs:
    """``make_inputs(batch_size, input_size, seed)`` of a tensor model: ``batch_size``
    examples drawn with replacement from real ones; every named dynamic dim is cut or
    tiled to ``input_size`` (the values stay the data's own)."""

    names: tuple[str, ...]
    pool: tuple[Any, ...]  # per input: (K, *dims)
    dynamic: tuple[dict[int, str], ...]  # per input: named non-batch dims
    sizes: tuple[int, ...]  # the sweep of the named dims; () when only batch is dynamic
    ref_size: int  # the data's own size of the first named dim (else a label only)

    def __call__(self, batch_size: int, input_size: int, seed: int = 0) -> tuple:
        g = torch.Generator().manual_seed(seed)
        idx = torch.randint(0, int(self.pool[0].shape[0]), (int(batch_size),), generator=g)
        out = []
        for t, dims in zip(self.pool, self.dynamic, strict=True):
            x = t[idx]
            for d in dims:
                x = _fit(x, d, int(input_size))
            out.append(x.contiguous())
        return tuple(out)

    def describe(self) -> str:
        """``x (N, 64) float32`` per input, with the named dims."""
        parts = []
        for name, t, dims in zip(self.names, self.pool, self.dynamic, strict=True):
            shape = ["N"] + [dims.get(i, str(n)) for i, n in enumerate(t.shape) if i > 0]
            parts.append(f"{name} ({', '.join(shape)}) {str(t.dtype).replace('torch.', '')}")
        return "; ".join(parts)


def _fit(x: Any, dim: int, n: int) -> Any:
    have = int(x.shape[dim])
    if have < n:
        reps = [1] * x.dim()
        reps[dim] = -(-n // have)
        x = x.repeat(*reps)
    return x.narrow(dim, 0, n)


class KeywordInputs(torch.nn.Module):
    """Calls ``module(**dict(zip(names, inputs)))``: a dict batch whose keys are not the
    forward's leading positional arguments still runs positionally everywhere else.

    Built with :func:`keyword_inputs`, its ``forward`` names the inputs (``forward(self,
    feats, extra)``), so it is called by position or by keyword as the model was, and
    torch.fx and torch.export trace it; names that are not identifiers keep ``*inputs``."""

    def __init__(self, module: Any, names: tuple[str, ...]) -> None:
        super().__init__()
        self.module = module
        self.names = tuple(names)

    @property
    def input_names(self) -> tuple[str, ...]:
        return self.names

    def forward(self, *inputs: Any) -> Any:
        return self.module(**dict(zip(self.names, inputs, strict=True)))


def keyword_inputs(module: Any, names: tuple[str, ...]) -> KeywordInputs:
    """``KeywordInputs(module, names)`` whose ``forward`` takes the names as parameters."""
    import keyword

    names = tuple(names)
    if not all(n.isidentifier() and not keyword.iskeyword(n) and n != "self" for n in names):
        return KeywordInputs(module, names)
    params = ", ".join(names)
    code = f"def forward(self, {params}):\n    return self.module({', '.join(f'{n}={n}' for n in names)})\n"
    scope: dict[str, Any] = {}
    exec(compile(code, "<quantbench.models.tensor.keyword_inputs>", "exec"), scope)  # noqa: S102 - identifiers only
    cls = type("KeywordInputs", (KeywordInputs,), {"forward": scope["forward"]})
    return cls(module, names)


def parse_input_spec(value: Any, names: tuple[str, ...], shapes: list[tuple[int, ...]]) -> dict:
    """``input_spec`` checked against the inputs: {"dynamic": per-input {dim: name},
    "sizes": [...] or None}. One line for every mistake."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise QuantbenchError(
            f"input_spec must be a mapping with keys {', '.join(SPEC_KEYS)}, got "
            f"{type(value).__name__}"
        )
    for k in value:
        if k not in SPEC_KEYS:
            raise unknown_name("input_spec key", str(k), SPEC_KEYS)
    dynamic: list[dict[int, str]] = [{} for _ in names]
    given = value.get("dynamic") or {}
    if not isinstance(given, Mapping):
        raise QuantbenchError("input_spec dynamic must map an input's name to {dim: name}")
    for key, dims in given.items():
        i = _input_index(key, names)
        if isinstance(dims, (list, tuple)):
            dims = {d: f"{names[i]}_{d}" for d in dims}
        if not isinstance(dims, Mapping):
            raise QuantbenchError(f"input_spec dynamic '{key}' must be {{dim: name}} or [dims]")
        for d, label in dims.items():
            rank = len(shapes[i])
            if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d < rank:
                raise QuantbenchError(
                    f"input_spec dynamic '{key}': dim {d!r} is not one of 1..{rank - 1} of an "
                    f"input of shape {shapes[i]} (dim 0, the batch, is always dynamic)"
                )
            dynamic[i][d] = str(label)
    sizes = value.get("sizes")
    if sizes is not None and (
        not isinstance(sizes, (list, tuple))
        or not sizes
        or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes)
    ):
        raise QuantbenchError(f"input_spec sizes must be a list of integers >= 1, got {sizes!r}")
    return {"dynamic": dynamic, "sizes": list(sizes) if sizes else None}


def _input_index(key: Any, names: tuple[str, ...]) -> int:
    if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < len(names):
        return key
    if str(key) in names:
        return names.index(str(key))
    raise unknown_name("input", str(key), names)


def labels_of(input_spec: Any) -> Any:
    """The ``labels`` an input_spec names (the split's sentinel when it names none)."""
    from quantbench.datasets.batches import _UNSET

    if isinstance(input_spec, Mapping) and "labels" in input_spec:
        return input_spec["labels"]
    return _UNSET


def called_by_name(module: Any, names: tuple[str, ...]) -> Any:
    """``module``, wrapped in :class:`KeywordInputs` when the data's input ``names`` are
    its forward's arguments but not its leading positional ones, in that order."""
    from quantbench.datasets.batches import params_of

    params = params_of(module)
    keywords = params is not None and (params.varkw or set(names) <= set(params.names))
    if keywords and names != params.names[: len(names)]:
        return keyword_inputs(module, names).eval()
    return module


def example_record(inputs: tuple, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """What rebuilds a tensor model's structure without its data (an artifact keeps this,
    never the data): per input its name, per-example shape, dtype and value range."""
    out = []
    for name, t in zip(names, inputs, strict=True):
        low, high = (float(t.min()), float(t.max())) if t.numel() else (0.0, 0.0)
        out.append({"name": name, "shape": list(t.shape[1:]),
                    "dtype": str(t.dtype).replace("torch.", ""), "low": low, "high": high})  # fmt: skip
    return out


@dataclass(frozen=True)
class RecordInputs:
    """``make_inputs`` from :func:`example_record`'s record: random values in each input's
    range (integers for integer inputs), at its recorded shape."""

    record: tuple[dict[str, Any], ...]

    def __call__(self, batch_size: int, input_size: int = 0, seed: int = 0) -> tuple:
        g = torch.Generator().manual_seed(seed)
        out = []
        for r in self.record:
            shape, dtype = (
                (int(batch_size), *map(int, r["shape"])),
                getattr(torch, r["dtype"], None),
            )
            if not isinstance(dtype, torch.dtype):
                raise QuantbenchError(f"input '{r.get('name')}' records no dtype: {r['dtype']!r}")
            low, high = float(r["low"]), float(r["high"])
            if dtype.is_floating_point:
                x = torch.rand(shape, generator=g) * (high - low) + low
                out.append(x.to(dtype))
            elif dtype == torch.bool:
                out.append(torch.rand(shape, generator=g) < 0.5)
            else:
                out.append(torch.randint(int(low), int(high) + 1, shape, generator=g, dtype=dtype))
        return tuple(out)


def tensor_model(lm: LoadedModel, dataset: Any, input_spec: Any = None) -> LoadedModel:
    """``lm`` as a tensor model whose inputs are ``dataset``'s (a loaded memory or tensors
    dataset): its make_inputs draws from the data's first examples."""
    items = dataset._items[:POOL_EXAMPLES]
    names = tuple(
        getattr(dataset, "input_names", ()) or [f"input_{i}" for i in range(len(items[0][0]))]
    )
    pool = tuple(torch.stack([x[i] for x, _ in items]) for i in range(len(names)))
    spec = parse_input_spec(input_spec, names, [tuple(t.shape) for t in pool])
    named = [(i, d) for i, dims in enumerate(spec["dynamic"]) for d in dims]
    first = int(pool[named[0][0]].shape[named[0][1]]) if named else int(pool[0].shape[-1])
    sizes: tuple[int, ...] = ()
    if named:
        sizes = tuple(spec["sizes"] or sorted({max(1, first // 2), first, first * 2}))
    make = TensorInputs(names, pool, tuple(spec["dynamic"]), sizes, first)
    return dataclasses.replace(
        lm, family=TENSOR, make_inputs=make, module=called_by_name(lm.module, names),
        max_input_size=None,
        input_sizes=sizes, ref_input_size=first, family_from_data=False, input_names=names,
        dynamic_dims=tuple({0: "batch", **dims} for dims in spec["dynamic"]),
        notes=[*lm.notes, f"inputs taken from the data: {make.describe()}"],
    )  # fmt: skip
