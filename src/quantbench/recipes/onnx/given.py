"""An ONNX file given as the model (``quantbench run --models model.onnx``): the session
that runs it (:class:`GivenOnnx`), the inputs its graph declares, and which recipes apply.

There is no torch module to quantize: the ONNX Runtime recipes take the file where they
would take their own torch export (:func:`quantbench.recipes.onnx.export.exported`), and
every other recipe is ``unsupported`` with :data:`NEEDS_TORCH`.

Inputs follow the graph's declared inputs: names, dtypes, and dims. A fixed dim is always
the graph's value; a symbolic one is the batch (the first dim), the input size (a text
model's sequence axis, a vision model's height and width), or a value set once when the
file was read (``options: {dims: {name: n}}``, else :data:`OTHER_DIM`). So a graph with a
fixed batch or fixed image size runs only at that shape, whatever the sweep asks
(:meth:`GivenOnnx.shape_at` says which shape a sweep point becomes).

Imports only :mod:`~quantbench.recipes.onnx.runtime` (and the errors): the recipe
registry asks :func:`check_recipe` without an import cycle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from quantbench.errors import UnsupportedError
from quantbench.recipes.onnx.runtime import OrtModule

NEEDS_TORCH = "needs a torch model; this model is an ONNX file"
# A symbolic dim that is neither the batch nor the input size, when the user sets none.
OTHER_DIM = 8
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


@dataclass(frozen=True)
class Port:
    """One declared graph input: ``dims`` holds ints (fixed) and names (symbolic; an
    unnamed symbolic dim gets ``<input>:<axis>``)."""

    name: str
    dtype: str  # numpy dtype name: float32, int64, bool, ...
    dims: tuple[int | str, ...]


@dataclass
class Signature:
    """What the graph takes: its inputs, family, and what each symbolic dim follows."""

    inputs: list[Port]
    family: str  # vision | text | tensor
    batch_dims: frozenset[str]  # symbols that are the batch
    size_dims: frozenset[str]  # symbols that follow the input size
    values: dict[str, int] = field(default_factory=dict)  # every other symbol's value
    vocab: int | None = None  # rows of the table input_ids index, when found
    params: list[tuple[int, ...]] = field(default_factory=list)  # initializer shapes
    # weight-bearing nodes (what the fallback may keep float): name -> (op, weight shape)
    layers: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)

    def fixed_batch(self) -> int | None:
        """The batch the graph is fixed to, or None when it is symbolic."""
        if self.batch_dims or not self.inputs or not self.inputs[0].dims:
            return None
        first = self.inputs[0].dims[0]
        return first if isinstance(first, int) else None

    def size_port(self) -> tuple[Port, tuple[int, ...]] | None:
        """The input and axes whose size is the family's input size: input_ids' sequence,
        the image's height and width; None for a tensor model."""
        for p in self.inputs:
            if self.family == "text" and p.name == "input_ids":
                return p, (1,)
            if self.family == "vision" and len(p.dims) == 4:
                return p, (2, 3)
        for p in self.inputs if self.family == "tensor" else ():  # a dim the user sweeps
            axes = tuple(i for i, d in enumerate(p.dims) if d in self.size_dims)
            if axes:
                return p, axes
        return None

    def dim(self, d: int | str, batch: int, size: int) -> int:
        if isinstance(d, int):
            return d
        if d in self.batch_dims:
            return batch
        if d in self.size_dims:
            return size
        return self.values.get(d, OTHER_DIM)

    def shape_at(self, batch: int, size: int) -> tuple[int, int]:
        """The (batch, input size) the graph runs when asked for (batch, size): fixed dims
        stay what the graph says. A tensor model's size is its values per example."""
        b = self.fixed_batch() or batch
        where = self.size_port()
        if where is None:
            if not self.inputs:
                return b, size
            dims = self.inputs[0].dims[1:]
            return b, math.prod(self.dim(d, b, size) for d in dims) if dims else 1
        port, axes = where
        return b, self.dim(port.dims[axes[0]], b, size)


@dataclass(frozen=True)
class Layer:
    """One weight-bearing node of a given graph, standing where a torch layer would."""

    kind: str  # the op: MatMul, Gemm, Conv, Gather
    shape: tuple[int, ...]  # of its weight

    def parameters(self, recurse: bool = True) -> Any:
        import torch

        return iter([torch.empty(self.shape, device="meta")])


class GivenOnnx(OrtModule):
    """The given file's session, run like a torch module; inputs are fitted to the graph
    (:meth:`feeds`): dtypes cast, a text model's missing inputs made from ``input_ids``,
    a fixed sequence length padded or cut, and a fixed batch run slice by slice."""

    def __init__(
        self, path: Any, signature: Signature, files: list[str], cleanup_dir: str | None = None
    ) -> None:
        # ORT logs a failed run to stderr before raising it; the raise is what is said
        super().__init__(path, cleanup_dir=cleanup_dir, log_level=4)
        self.signature = signature
        self.onnx_file = str(path)
        self.files = files  # the .onnx file and its external data files

    def like(self, path: Any, cleanup_dir: str) -> GivenOnnx:
        """A session of ``path`` (a quantized copy of this graph, same inputs) that fits
        its inputs as this one does."""
        return GivenOnnx(path, self.signature, [str(path)], cleanup_dir)

    # -- what the runner asks of a module
    def parameters(self) -> Any:
        import torch

        # the graph's weights as shapes only: counts without a copy of the weights
        return iter([torch.empty(s, device="meta") for s in self.signature.params])

    def modules(self) -> Any:
        return (m for _, m in self.named_modules())

    def named_modules(self) -> Any:
        """The graph's weight-bearing nodes as layers (the names the fallback and the
        sensitivity ranking keep float)."""
        return ((n, Layer(op, shape)) for n, (op, shape) in self.signature.layers.items())

    def to(self, device: str) -> GivenOnnx:
        return self if str(device) == "cpu" else self.to_device(str(device))

    # -- inputs
    def make_inputs(self, batch_size: int, input_size: int, seed: int = 0) -> tuple:
        """Synthetic inputs of the graph's declared names, dtypes and dims."""
        import torch

        sig = self.signature
        g = torch.Generator().manual_seed(seed)
        b = sig.fixed_batch() or batch_size
        out = []
        for p in sig.inputs:
            shape = tuple(sig.dim(d, b, input_size) for d in p.dims)
            out.append(_synthetic(p, shape, sig, g))
        return tuple(out)

    def feeds(self, tensors: tuple) -> tuple:
        """``tensors`` as the graph takes them, in its input order."""
        sig = self.signature
        given = list(tensors)
        if len(given) < len(sig.inputs) and sig.family == "text" and given:
            given = _complete_text(sig, given)
        if len(given) != len(sig.inputs):
            names = ", ".join(p.name for p in sig.inputs)
            raise ValueError(
                f"the ONNX graph takes {len(sig.inputs)} inputs ({names}), got {len(given)}"
            )
        return tuple(_fit(p, t) for p, t in zip(sig.inputs, given, strict=True))

    def run(self, *feeds: Any) -> Any:
        """One session run; ORT's failure as one line that names the shapes."""
        try:
            return super().__call__(*feeds)
        except Exception as e:
            shapes = ", ".join(
                f"{p.name}{list(t.shape)}"
                for p, t in zip(self.signature.inputs, feeds, strict=False)
            )
            raise RuntimeError(
                f"onnxruntime cannot run the graph at {shapes}: {_ort_reason(e)}"
            ) from None

    def __call__(self, *tensors: Any) -> Any:
        import torch

        feeds = self.feeds(tensors)
        fixed = self.signature.fixed_batch()
        n = int(feeds[0].shape[0]) if feeds and feeds[0].dim() else 0
        if not fixed or n in (0, fixed):
            return self.run(*feeds)
        outs = []  # a graph fixed to batch k: k rows at a time, the last slice padded
        for i in range(0, n, fixed):
            part = [t[i : i + fixed] for t in feeds]
            short = fixed - int(part[0].shape[0])
            if short:
                part = [torch.cat([t, t[-1:].expand(short, *t.shape[1:])]) for t in part]
            outs.append(self.run(*part)[: fixed - short])
        return torch.cat(outs)


def _ort_reason(e: Exception) -> str:
    """The gist of an ONNX Runtime error: its status message without the source file,
    line and C++ signature it starts with."""
    import re

    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    text = text.split("Status Message: ", 1)[-1]
    return re.sub(r"^/\S+:\d+ \S+\([^)]*\)\s*", "", text)


def _synthetic(p: Port, shape: tuple[int, ...], sig: Signature, g: Any) -> Any:
    import numpy as np
    import torch

    dtype = torch.from_numpy(np.zeros(0, dtype=p.dtype)).dtype
    if dtype.is_floating_point:
        return torch.randn(shape, generator=g).to(dtype)
    if dtype == torch.bool:
        return torch.ones(shape, dtype=torch.bool)
    if p.name == "input_ids":
        vocab = sig.vocab or 2
        low = min(5, vocab // 2)  # the first ids are special tokens in most vocabularies
        return torch.randint(low, vocab, shape, generator=g).to(dtype)
    if p.name == "attention_mask":
        return torch.ones(shape, dtype=dtype)
    if p.name == "position_ids" and len(shape) == 2:
        return torch.arange(shape[1]).expand(shape).to(dtype).contiguous()
    return torch.zeros(shape, dtype=dtype)  # token types, indices: 0 is always valid


def _complete_text(sig: Signature, given: list[Any]) -> list[Any]:
    """(input_ids, attention_mask) as a tokenized dataset gives them, completed with the
    graph's other inputs (token types, position ids) made from them."""
    import torch

    have = dict(zip(("input_ids", "attention_mask"), given, strict=False))
    ids = have["input_ids"]
    out = []
    for p in sig.inputs:
        if p.name in have:
            out.append(have[p.name])
        elif p.name == "position_ids":
            out.append(torch.arange(ids.shape[1]).expand(ids.shape).contiguous())
        elif p.name in ("token_type_ids", "attention_mask"):
            fill = torch.ones_like if p.name == "attention_mask" else torch.zeros_like
            out.append(fill(ids))
        else:
            return given  # not a text input quantbench knows how to make: let it say so
    return out


def _fit(p: Port, t: Any) -> Any:
    """``t`` in ``p``'s dtype; a text input padded (0) or cut to a fixed sequence length."""
    import numpy as np
    import torch

    want = torch.from_numpy(np.zeros(0, dtype=p.dtype)).dtype
    if t.dtype != want:
        t = t.to(want)
    if p.name in TEXT_INPUTS and len(p.dims) == 2 and isinstance(p.dims[1], int) and t.dim() == 2:
        n = p.dims[1]
        if t.shape[1] > n:
            t = t[:, :n]
        elif t.shape[1] < n:
            t = torch.nn.functional.pad(t, (0, n - int(t.shape[1])), value=0)
    return t.contiguous()


def given_file(model: Any) -> GivenOnnx | None:
    """The :class:`GivenOnnx` session of ``model`` (a LoadedModel), or None for a torch model."""
    module = getattr(model, "module", None)
    return module if isinstance(module, GivenOnnx) else None


def check_recipe(recipe: Any, model: Any) -> None:
    """UnsupportedError for a recipe that needs a torch module when ``model`` is an ONNX
    file (fp32 is the file itself; the ONNX Runtime recipes take the file)."""
    if given_file(model) is not None and recipe.library != "onnxruntime" and recipe.name != "fp32":
        raise UnsupportedError(NEEDS_TORCH)
