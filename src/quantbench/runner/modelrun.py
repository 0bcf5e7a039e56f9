"""The context one model's stages share while it is measured (:class:`ModelRun`).

The stages (:mod:`quantbench.runner.pipeline`), the fallback search
(:mod:`quantbench.runner.fallback`) and the artifact writers (:mod:`quantbench.artifacts`)
read and fill it; it imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from quantbench.results import CellResult
from quantbench.runner.messages import Emit, Snapshot
from quantbench.settings import ModelRef, RunSpec
from quantbench.variants import Variant


@dataclass
class ModelRun:
    """One model while it is measured: what each stage reads and fills.

    ``cells`` and ``arts`` are keyed by variant; a variant whose recipe failed has a cell
    and no artifact, one whose forward or evaluation failed loses its artifact.
    """

    spec: RunSpec
    ref: ModelRef
    emit: Emit
    variants: list[Variant] = field(default_factory=list)
    lm: Any = None  # quantbench.models.LoadedModel
    load_s: float = 0.0
    rss_before_load: int | None = None
    rss_loaded: int | None = None
    ref_size: int = 0  # the reference input size of the model's family
    qctx: Any = None  # quantbench.recipes.QuantContext
    data: Any = None  # quantbench.evaluate.TaskData, when data was given
    params: int = 0
    cells: dict[Variant, CellResult] = field(default_factory=dict)
    arts: dict[Variant, Any] = field(default_factory=dict)
    fidelity_inputs: tuple | None = None  # set when fidelity was measured
    score: Callable[[Any], dict[str, Any]] | None = None  # accuracy of a module, once scored

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def has_eval_data(self) -> bool:
        """Whether variants are scored on a task: evaluation data, or the API's eval_fn."""
        return bool(self.spec.data.eval_fn) or (
            self.data is not None and self.data.dataset is not None
        )

    def snapshot(self) -> None:
        """Send every cell so far: what the parent keeps if this worker dies next."""
        self.emit(Snapshot.of(self.cells.values()))

    def new_cell(self, v: Variant, **fields: Any) -> CellResult:
        """A fresh cell for ``v``, added to :attr:`cells`."""
        cell = CellResult(
            model=self.name, recipe=v.name, family=self.lm.family, weights=self.lm.weights,
            **fields,
        )  # fmt: skip
        self.cells[v] = cell
        return cell

    def recipe(self, v: Variant) -> Any:
        """``v``'s base recipe with the spec's options for it."""
        from quantbench.recipes import get_recipe

        return get_recipe(v.base, self.spec.quant.recipe_options.get(v.base))
