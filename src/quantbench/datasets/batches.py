"""Telling a batch's inputs from its labels, and the model family its inputs feed.

A batch (as a DataLoader yields it, or as read from a tensors file) is a tensor, a
tuple/list of tensors, or a dict of tensors. Which of its tensors are the model's inputs
and which one is the label is decided, in this order:

1. ``labels`` named explicitly (``input_spec={"labels": "y"}``: a dict key, or an index
   into a tuple batch; ``None`` for "no labels");
2. the model's ``forward`` signature: a tuple with one element more than the forward
   takes ends with the label; a dict's keys that are forward arguments are inputs, in
   the forward's order;
3. without a model: a dict key named ``label``/``labels``/``y``/``target``/``targets``, or
   a 2-tuple ending in a 1-D integer tensor (the ``TensorDataset`` / ImageFolder form).

Example::

    >>> import torch
    >>> def forward(x): ...
    >>> split = split_batch((torch.zeros(4, 64), torch.zeros(4)), params_of(forward))
    >>> split.names, split.labels.shape
    (('x',), torch.Size([4]))
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from quantbench.errors import QuantbenchError

LABEL_KEYS = ("label", "labels", "y", "target", "targets")
_UNSET: Any = object()


@dataclass(frozen=True)
class Params:
    """What a ``forward`` accepts: positional names, how many are required, and whether
    it takes ``*args`` / ``**kwargs``."""

    names: tuple[str, ...]
    required: int
    varargs: bool = False
    varkw: bool = False


@dataclass
class Split:
    """One batch, told apart: the inputs (in call order, with their names) and labels."""

    names: tuple[str, ...]
    inputs: tuple[Any, ...]
    labels: Any = None
    by_name: bool = False  # the forward must be called with keywords (dict keys it skips)


def params_of(fn: Callable[..., Any]) -> Params | None:
    """``fn``'s parameters (a module: its ``forward``); None when they cannot be read."""
    target = getattr(fn, "forward", fn)
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    names, required, varargs, varkw = [], 0, False, False
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
            required += p.default is p.empty
        elif p.kind is p.VAR_POSITIONAL:
            varargs = True
        elif p.kind is p.VAR_KEYWORD:
            varkw = True
    return Params(tuple(names), required, varargs, varkw)


def _is_tensor(x: Any) -> bool:
    import torch

    return isinstance(x, torch.Tensor)


def _class_labels(t: Any) -> bool:
    return _is_tensor(t) and t.dim() == 1 and not t.is_floating_point()


def split_batch(batch: Any, params: Params | None = None, labels: Any = _UNSET) -> Split:
    """Inputs and labels of one batch (see the module's docstring for the rule)."""
    if _is_tensor(batch):
        name = params.names[0] if params and params.names else "x"
        return Split((name,), (batch,))
    if isinstance(batch, dict):
        return _split_dict(batch, params, labels)
    if isinstance(batch, (tuple, list)) and batch:
        return _split_sequence(list(batch), params, labels)
    raise QuantbenchError(
        "a batch must be a tensor, a tuple/list of tensors or a dict of tensors (inputs, "
        f"optionally with labels); got {type(batch).__name__}"
    )


def _split_dict(batch: dict[Any, Any], params: Params | None, labels: Any) -> Split:
    keys = [str(k) for k in batch]
    bad = [k for k, v in batch.items() if not _is_tensor(v)]
    if bad:
        raise QuantbenchError(
            f"batch key '{bad[0]}' holds a {type(batch[bad[0]]).__name__}, not a tensor"
        )
    values = {str(k): v for k, v in batch.items()}
    accepted = set(params.names) if params else set()
    if labels is _UNSET:
        labels = next((k for k in LABEL_KEYS if k in values and k not in accepted), None)
    elif labels is not None and str(labels) not in values:
        raise QuantbenchError(
            f"input_spec labels '{labels}' is not a key of the batch (keys: {', '.join(keys)})"
        )
    label_key = None if labels is None else str(labels)
    rest = [k for k in keys if k != label_key]
    if params is None or params.varkw and not (accepted & set(rest)):
        names = rest
    else:
        unknown = [k for k in rest if k not in accepted and not params.varkw]
        if unknown:
            raise QuantbenchError(
                f"batch key '{unknown[0]}' is not an argument of the model's forward "
                f"({', '.join(params.names)}); name the label key with input_spec labels"
            )
        names = [n for n in params.names if n in rest] + [k for k in rest if k not in accepted]
    by_name = params is not None and tuple(names) != params.names[: len(names)]
    return Split(
        tuple(names),
        tuple(values[k] for k in names),
        None if label_key is None else values[label_key],
        by_name,
    )


def _split_sequence(items: list[Any], params: Params | None, labels: Any) -> Split:
    n = len(items)
    if labels is _UNSET:
        labels = _label_index(items, params)
    elif labels is not None:
        if isinstance(labels, bool) or not isinstance(labels, int) or not -n <= labels < n:
            raise QuantbenchError(
                f"input_spec labels must be an index into the batch's {n} tensors, got {labels!r}"
            )
        labels = labels % n
    label = items[labels] if labels is not None else None
    inputs = [t for i, t in enumerate(items) if i != labels]
    if len(inputs) == 1 and isinstance(inputs[0], (tuple, list)):
        inputs = list(inputs[0])  # ((x1, x2), y)
    if isinstance(inputs[0] if inputs else None, dict) and len(inputs) == 1:
        inner = _split_dict(inputs[0], params, None)  # ({...}, y)
        return Split(inner.names, inner.inputs, label, inner.by_name)
    bad = [type(t).__name__ for t in inputs if not _is_tensor(t)]
    if bad or not inputs:
        raise QuantbenchError(
            "a batch must be a tensor, a tuple/list of tensors or a dict of tensors; one "
            f"element is a {bad[0] if bad else 'nothing'}"
        )
    if params and not params.varargs and len(inputs) < params.required:
        raise QuantbenchError(
            f"a batch holds {len(inputs)} input tensors but the model's forward needs "
            f"{params.required} ({', '.join(params.names)})"
        )
    if params and params.names and len(params.names) >= len(inputs):
        names = params.names[: len(inputs)]
    else:
        names = tuple(f"input_{i}" for i in range(len(inputs)))
    return Split(tuple(names), tuple(inputs), label)


def _label_index(items: list[Any], params: Params | None) -> int | None:
    """Which element of a tuple batch is the label, by the forward's arity."""
    n = len(items)
    if n < 2 or isinstance(items[-1], (tuple, list, dict)):
        return None
    if n == 2 and isinstance(items[0], (tuple, list, dict)):
        return 1  # ((x1, x2), y) or ({...}, y)
    if params is not None and not params.varargs:
        takes_all = params.required <= n <= len(params.names)
        takes_one_less = params.required <= n - 1 <= len(params.names)
        if takes_one_less and not takes_all:
            return n - 1
        if takes_all and not takes_one_less:
            return None
    # Both fit (optional arguments), or the forward cannot tell: the TensorDataset form.
    first = items[0]
    if n == 2 and _class_labels(items[1]) and not (_is_tensor(first) and first.dim() == 1):
        return 1
    return None


def infer_family(example: tuple[Any, ...]) -> str:
    """The family one example's inputs (without the batch dim) feed: ``vision`` for one
    float image ``(3, H, W)``, ``text`` for token ids (and masks) of one length, else
    ``tensor``."""
    first = example[0]
    if len(example) == 1 and first.is_floating_point() and first.dim() == 3 and first.shape[0] == 3:
        return "vision"
    ints = all(not t.is_floating_point() and t.dim() == 1 for t in example)
    if ints and len(example) <= 3 and len({tuple(t.shape) for t in example}) == 1:
        return "text"
    return "tensor"
