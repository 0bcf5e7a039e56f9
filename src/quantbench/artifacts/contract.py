"""The contract every shipped artifact keeps, whatever its format.

:func:`~quantbench.artifacts.load_artifact` returns a callable that

- accepts the arguments the model it came from accepts, positionally or by keyword, as
  that model's ``forward`` names them (``input_ids=``, ``attention_mask=``,
  ``pixel_values=``, or a torchvision model's ``x`` / one tensor); an ``attention_mask``
  left out is all ones, as in transformers;
- returns what ``run`` measured for the cell: the same tensor (logits, the pooled sentence
  embedding, or the last hidden state of a base model);
- loads in seconds: nothing is quantized again, and a recipe measured under
  ``torch.compile`` compiles at its first call, not while loading.

Formats whose runtime takes positional inputs only (an ONNX Runtime session, a
``torch.export`` program, an ExecuTorch or OpenVINO model) are wrapped in :class:`CallLike`,
which binds keywords to the names the file itself carries (the graph's inputs). A wrapper
around a model must pass ``*args`` and ``**kwargs`` through; :func:`conform` is the one
place that decides.

Example::

    >>> bind(("input_ids", "attention_mask"), (), {"input_ids": 1, "attention_mask": 2})
    (1, 2)
    >>> bind(("x",), (5,), {})
    (5,)
    >>> bind(("pixel_values",), (), {"x": 7})  # one input: the source's own name binds it
    (7,)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

# An input the source model may be called without, and the value it then gets.
_OPTIONAL: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "attention_mask": ("input_ids", lambda ids: __import__("torch").ones_like(ids)),
}


def bind(names: Sequence[str], args: tuple, kwargs: dict[str, Any]) -> tuple:
    """``args`` and ``kwargs`` as the positional inputs ``names``, as Python binds a call of
    ``f(*names)``; a missing optional input (``attention_mask``) is filled in. A call that
    does not fit raises ``TypeError`` naming the inputs."""
    names = tuple(names)
    if len(args) > len(names):
        raise TypeError(
            f"the artifact takes {len(names)} input(s) ({', '.join(names)}), got {len(args)}"
        )
    if len(names) == 1 and not args and len(kwargs) == 1:
        # One input takes its one keyword under the source forward's name, whatever the
        # file calls it: ONNX and .pte name an image `pixel_values`, a torchvision model
        # says `x`, an nn.Sequential `input`. Nothing else could be meant.
        return tuple(kwargs.values())
    bound = dict(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key not in names:
            raise TypeError(
                f"the artifact got an unexpected keyword argument '{key}' "
                f"(its inputs: {', '.join(names)})"
            )
        if key in bound:
            raise TypeError(f"the artifact got multiple values for argument '{key}'")
        bound[key] = value
    for name in names:
        if name not in bound and name in _OPTIONAL:
            source, make = _OPTIONAL[name]
            if source in bound:
                bound[name] = make(bound[source])
    missing = [n for n in names if n not in bound]
    if missing:
        raise TypeError(f"the artifact is missing input(s): {', '.join(missing)}")
    return tuple(bound[n] for n in names)


def input_names(obj: Any) -> tuple[str, ...] | None:
    """The names of ``obj``'s inputs in order: its ``input_names`` (a runtime session), else
    its ``forward``'s (or call's) positional parameters; None when it takes ``*args``."""
    names = getattr(obj, "input_names", None)
    if names:
        return tuple(str(n) for n in names)
    target = getattr(obj, "forward", None) or obj
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return None
    return tuple(p.name for p in params if p.kind in kinds)


class CallLike:
    """``runner`` (which takes positional inputs only) called like the source model:
    ``CallLike(session, ("input_ids", "attention_mask"))(input_ids=..., attention_mask=...)``.

    ``inner`` is what the format loaded; attributes not found here are looked up on it
    (``provider``, ``module``...).
    """

    def __init__(self, runner: Any, names: Sequence[str]) -> None:
        self.inner = runner
        self.input_names = tuple(names)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner(*bind(self.input_names, args, kwargs))

    forward = __call__

    def eval(self) -> CallLike:
        return self

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"CallLike({type(self.inner).__name__}, inputs={self.input_names})"


def conform(loaded: Any, names: Sequence[str] | None = None) -> Any:
    """``loaded`` as the contract wants it: a torch module whose ``forward`` names its
    inputs is kept as it is (keywords reach it natively); anything else (a session, a
    program that takes the export's call form only) is wrapped in :class:`CallLike` with
    ``names`` (default: the names it carries)."""
    own = input_names(loaded)
    if names is None:
        names = own
    if names is None:
        return loaded  # takes *args: nothing to bind by name
    if own is not None and tuple(own) == tuple(names) and _is_torch_module(loaded):
        return loaded
    return CallLike(loaded, names)


def _is_torch_module(obj: Any) -> bool:
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)
