"""A run's results as data: the recommendation as a record, rows for a DataFrame, a short
repr (what :class:`~quantbench.runner.RunResult`'s methods return).

The rows are results.csv's: one per cell and measured latency point (a cell without
latency has one row of its own), the metrics table's columns
(``quantbench.measure.metrics``) with the run id, machine, device and the recipe's
settings. pandas is optional (``pip install 'quantbench[pandas]'``).

Example::

    result = quantbench.run(models=["resnet18"], recipes=["fp32", "dynamic-int8"])
    result.best("resnet18").fastest.recipe   # the pick for speed, or fp32
    df = result.to_dataframe()               # one row per cell and point
"""

from __future__ import annotations

from typing import Any

from quantbench.errors import QuantbenchError, clip


def _models(result: Any) -> list[str]:
    return list(dict.fromkeys(c.model for c in result.results))


def best(result: Any, model: str | None = None) -> Any:
    """The recommendation for ``model`` (``quantbench.best.Recommendation``), judged with
    the run's own bars and reference shape; its ``caveats`` hold the run's (a busy
    machine, ...) as well. ``model`` may be left out when the run measured one."""
    from quantbench.best import DEFAULT_MIN_COSINE, DEFAULT_MIN_TOP1, recommend
    from quantbench.caveats import run_caveats
    from quantbench.shapes import ref_sizes

    models = _models(result)
    if not models:
        raise QuantbenchError(f"run {result.run.id} has no cells: nothing to recommend")
    if model is None:
        if len(models) > 1:
            raise QuantbenchError(
                f"run {result.run.id} measured {len(models)} models: say which, "
                f"best(model) with one of {', '.join(models)}"
            )
        model = models[0]
    if model not in models:
        raise QuantbenchError(
            f"no model '{clip(str(model))}' in run {result.run.id} (models: {', '.join(models)})"
        )
    spec = result.run.spec or {}
    recs = recommend(
        [c for c in result.results if c.model == model],
        ref_sizes=ref_sizes(spec),
        min_cosine=spec.get("min_cosine", DEFAULT_MIN_COSINE),
        min_top1=spec.get("min_top1", DEFAULT_MIN_TOP1),
    )
    rec = recs[model]
    rec.caveats = [*run_caveats(result.run, result.results), *rec.caveats]
    return rec


def rows(result: Any) -> list[dict[str, Any]]:
    """results.csv's rows, as dicts (no pandas needed)."""
    from quantbench.measure.metrics import csv_rows

    record = result.run.to_dict()
    return [row for c in result.results for row in csv_rows(c, record)]


def to_dataframe(result: Any) -> Any:
    """:func:`rows` as a ``pandas.DataFrame`` (columns in results.csv's order)."""
    try:
        import pandas as pd
    except ImportError:
        raise QuantbenchError(
            "to_dataframe needs pandas: pip install 'quantbench[pandas]' (or pandas); "
            "without it, RunResult.rows() gives the same rows as dicts"
        ) from None
    from quantbench.measure.metrics import csv_columns

    return pd.DataFrame(rows(result), columns=csv_columns())


def short_repr(result: Any) -> str:
    """``RunResult(run=..., cells=N (k ok, ...), models=[...], out_dir=...)``: never the
    raw samples."""
    counts: dict[str, int] = {}
    for c in result.results:
        counts[str(c.status)] = counts.get(str(c.status), 0) + 1
    status = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    models = _models(result)
    shown = ", ".join(models[:4]) + (f", ... {len(models) - 4} more" if len(models) > 4 else "")
    extra = ", interrupted" if getattr(result, "interrupted", False) else ""
    return (
        f"RunResult(run={result.run.id!r}, cells={len(result.results)}"
        f"{f' ({status})' if status else ''}, models=[{shown}], "
        f"out_dir={str(result.out_dir)!r}{extra})"
    )
