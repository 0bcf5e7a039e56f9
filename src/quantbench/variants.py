"""A variant: a base recipe plus transforms applied to its artifact, e.g. ``static-int8``,
``dynamic-int8+compile``, ``ort-static-int8+fallback``.

The ``+`` names are what users type and what results store; everywhere else the program
holds a :class:`Variant`, so no code parses suffixes by hand.

Example::

    >>> v = Variant.parse("dynamic-int8+compile")
    >>> v.base, v.compiled, v.fallback, v.name
    ('dynamic-int8', True, False, 'dynamic-int8+compile')
    >>> Variant("static-int8").with_transform("fallback").name
    'static-int8+fallback'
"""

from __future__ import annotations

from dataclasses import dataclass

from quantbench.errors import QuantbenchError

# Transforms in the order they apply: a fallback search builds an artifact that could
# then be compiled. Their meaning, for the report and ``list``.
TRANSFORMS: dict[str, str] = {
    "fallback": (
        "accuracy-aware fallback: its most sensitive layers kept in float, one at a time, "
        "until the accuracy bar is met"
    ),
    "compile": "run through torch.compile (compile time reported apart from latency)",
}
BASELINE = "fp32"


@dataclass(frozen=True)
class Variant:
    """One measured thing: ``base`` recipe, then ``transforms`` (see :data:`TRANSFORMS`)."""

    base: str
    transforms: tuple[str, ...] = ()

    @classmethod
    def parse(cls, name: str) -> Variant:
        """``"a+b+c"`` -> Variant("a", ("b", "c")); unknown transforms are an error."""
        base, *rest = str(name).split("+")
        for t in rest:
            if t not in TRANSFORMS:
                raise QuantbenchError(
                    f"unknown variant '{name}': '+{t}' is not a transform "
                    f"(valid: {', '.join('+' + k for k in TRANSFORMS)})"
                )
        return cls(base, tuple(rest))

    @property
    def name(self) -> str:
        return "+".join((self.base, *self.transforms))

    def __str__(self) -> str:
        return self.name

    @property
    def compiled(self) -> bool:
        return "compile" in self.transforms

    @property
    def fallback(self) -> bool:
        return "fallback" in self.transforms

    @property
    def is_base(self) -> bool:
        """A plain recipe, no transform."""
        return not self.transforms

    @property
    def is_baseline(self) -> bool:
        return self.name == BASELINE

    def with_transform(self, transform: str) -> Variant:
        if transform not in TRANSFORMS:
            raise ValueError(f"unknown transform '{transform}'")
        return Variant(self.base, (*self.transforms, transform))

    def without_last(self) -> Variant:
        """What the last transform was applied to (``a+fallback+compile`` -> ``a+fallback``)."""
        return Variant(self.base, self.transforms[:-1])


def base_of(name: str) -> str:
    """The base recipe of a variant name (lenient: unknown transforms are kept out too)."""
    return str(name).split("+", 1)[0]
