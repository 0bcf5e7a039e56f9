"""The metrics table: every quantity quantbench records, in one place.

A :class:`Metric` says how a quantity is read from a result record (a cell, or one
latency point of it), its unit, how a table writes it, which direction is better, and
where it shows. Everything that lists quantities reads :data:`METRICS` (as pyperf keeps
one table of its metadata): ``results.csv`` takes its columns in table order, ``quantbench
compare`` compares the ``"compare"`` ones run against run, the machines tables put the
``"machines"`` ones in each cell, and report.md's latency and memory tables add a column
per ``"latency"`` / ``"memory"`` metric.

Adding a metric is one entry here (and, for a quantity not yet recorded, the code that
records it): its CSV column, comparison and report columns follow.

Run-level columns (``level="run"``: run id, machine, device) read ``(run record, cell)``
instead; results.csv and ``RunResult.to_dataframe()`` give them when the run is known.

This module reads records by attribute only and imports nothing of quantbench that
imports it back (``hostlabel``, ``strictjson``), so every layer may use it.

Example::

    >>> metric("size_bytes").better
    'lower'
    >>> [m.name for m in shown("compare")]
    ['speedup', 'size_bytes', 'metric_value']
    >>> fmt_sig(1234.5), fmt_mib(3 * 2**20)
    ('1,230', '3.0')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# ------------------------------------------------------------------------ numbers as text

_UNIT_TO_MS = {"ms": 1.0, "s": 1e3, "sec": 1e3, "us": 1e-3, "µs": 1e-3, "μs": 1e-3, "ns": 1e-6}


def to_ms(value: float, unit: str | None) -> float:
    """Convert a latency value recorded in ``unit`` to milliseconds (unknown units: ms)."""
    return value * _UNIT_TO_MS.get((unit or "ms").strip().lower(), 1.0)


def mib(size_bytes: float) -> float:
    """Bytes to MiB."""
    return size_bytes / 2**20


def number(x: object) -> float | None:
    """``x`` as a finite float, else None (bools, strings, NaN and missing values)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def fmt_sig(x: float | None, sig: int = 3) -> str:
    """``x`` to ``sig`` significant figures, without scientific notation."""
    if x is None:
        return "—"
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return str(x)
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    if mag >= sig - 1:
        return f"{round(x, sig - 1 - mag):,.0f}"
    return f"{x:.{sig - 1 - mag}f}"


def fmt_mib(size_bytes: float | None) -> str:
    """Bytes as MiB with one decimal (more for tiny artifacts)."""
    if size_bytes is None:
        return "—"
    v = mib(size_bytes)
    return f"{v:.1f}" if v >= 0.1 or v == 0 else fmt_sig(v, 2)


def _f(x: float | None, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def _plain(x: Any) -> str:
    return "—" if x is None else str(x)


# ------------------------------------------------------------------ quantities of a point


def point_gflops(point: Any) -> float | None:
    """GFLOP of one forward pass at the point's shape (counted on fp32), or None."""
    flops = number(getattr(point, "flops", None))
    return flops / 1e9 if flops else None


def point_gflops_per_s(point: Any) -> float | None:
    """Achieved GFLOP/s (fp32-equivalent for int8): recorded, else flops / median time."""
    rate = number(getattr(point, "gflops_per_s", None))
    if rate is not None:
        return rate
    gflop = point_gflops(point)
    seconds = to_ms(point.median, point.unit) / 1e3
    if gflop is None or not seconds or seconds <= 0:
        return None
    return gflop / seconds


def artifact_load_s(cell: Any) -> float | None:
    """Seconds ``load_artifact`` took on the cell's shipped file, when it was written."""
    record = (getattr(cell, "details", None) or {}).get("artifact")
    return number(record.get("load_s")) if isinstance(record, dict) else None


def memory_value(cell: Any, key: str) -> int | None:
    """One entry of ``cell.memory`` (missing or non-numeric: None)."""
    value = number((getattr(cell, "memory", None) or {}).get(key))
    return None if value is None else int(value)


@dataclass
class SpeedupValue:
    """A speedup vs fp32; ``paired`` is False when derived from two medians."""

    median: float
    ci_low: float | None
    ci_high: float | None
    paired: bool


def point_speedup(point: Any, baseline: Any | None) -> SpeedupValue | None:
    """The paired speedup of ``point``; else fp32 median / point median at the same shape
    (``baseline`` is the model's fp32 cell)."""
    if point.speedup is not None:
        s = point.speedup
        return SpeedupValue(s.median, s.ci_low, s.ci_high, True)
    if baseline is None or baseline.status != "ok":
        return None
    for b in baseline.latency:
        if b.batch_size == point.batch_size and b.input_size == point.input_size:
            mine = to_ms(point.median, point.unit)
            if mine > 0:
                return SpeedupValue(to_ms(b.median, b.unit) / mine, None, None, False)
    return None


# ------------------------------------------------------------------------------ the table

Read = Callable[[Any, Any], Any]  # (cell, point or None) -> value


@dataclass(frozen=True)
class Metric:
    """One quantity (or what a row is: model, recipe, shape). ``level``: ``cell`` (one
    value per model and recipe) or ``point`` (one per batch size and input size).
    ``read(cell, point)`` is the value as recorded (what results.csv holds); ``value``
    the same in ``unit`` for tables and comparisons (default: ``read``). ``fmt`` writes
    a value in a table, ``formats`` where a place writes it its own way. ``better``:
    "lower", "higher" or None. ``shown``: place -> position among that place's metrics
    ("compare", "machines", "latency", "memory"; results.csv takes every ``csv`` metric in
    table order). ``per_model``: one value per model (tables show it once per model)."""

    name: str
    label: str
    read: Read
    unit: str = ""
    level: str = "cell"
    value: Read | None = None
    fmt: Callable[[Any], str] = _plain
    formats: Mapping[str, Callable[[Any], str]] = field(default_factory=dict)
    better: str | None = None
    help: str = ""
    shown: Mapping[str, int] = field(default_factory=dict)
    csv: bool = True
    per_model: bool = False

    def get(self, cell: Any, point: Any = None) -> Any:
        """The value in :attr:`unit` (None when the record does not have it; always for
        a ``run`` metric, which :func:`csv_rows` reads with the run)."""
        if (self.level == "point" and point is None) or self.level == "run":
            return None
        return (self.value or self.read)(cell, point)

    def text(self, value: Any, place: str = "") -> str:
        """``value`` written as ``place`` writes it (else :attr:`fmt`)."""
        return self.formats.get(place, self.fmt)(value)


def _attr(name: str) -> Read:
    return lambda c, p: getattr(c, name, None)


def _point(name: str) -> Read:
    return lambda c, p: None if p is None else getattr(p, name, None)


def _point_ms(name: str) -> Read:
    """A latency statistic of the point in ms (None when missing or not finite)."""

    def read(c: Any, p: Any) -> float | None:
        v = None if p is None else number(getattr(p, name, None))
        return None if v is None else to_ms(v, p.unit)

    return read


def _of(part: str, name: str) -> Read:
    return lambda c, p: None if getattr(c, part, None) is None else getattr(getattr(c, part), name)


def _speedup(name: str) -> Read:
    return lambda c, p: None if p is None or p.speedup is None else getattr(p.speedup, name)


def _runtime_speedup(c: Any, p: Any) -> float | None:
    rt = None if p is None else getattr(p, "runtime_speedup", None)
    return None if rt is None else rt.median


def _contention(key: str) -> Read:
    return lambda c, p: None if p is None else (getattr(p, "contention", None) or {}).get(key)


def _finite_attr(name: str) -> Read:
    return lambda c, p: number(getattr(c, name, None))


def _memory(key: str) -> Read:
    return lambda c, p: memory_value(c, key)


def _recipe_settings(c: Any, p: Any) -> str | None:
    """The recipe's settings as the cell recorded them, as compact JSON (sorted keys)."""
    config = (getattr(c, "details", None) or {}).get("recipe_config")
    if not isinstance(config, Mapping):
        return None
    from quantbench.strictjson import dumps

    try:
        return dumps(dict(sorted(config.items())), record=False)
    except (TypeError, ValueError):  # a value JSON cannot hold: its text
        return str(dict(config))


def _machine(run: Any, c: Any) -> str | None:
    from quantbench.hostlabel import machine_label

    return machine_label(run) if run else None


def _device(run: Any, c: Any) -> str | None:
    """Where the cell ran (recorded per cell), else the run's device."""
    device = (getattr(c, "details", None) or {}).get("device")
    return device or (run or {}).get("device") or ((run or {}).get("spec") or {}).get("device")


def _key(name: str, read: Read | None = None, level: str = "cell") -> Metric:
    """What a row is (model, recipe, shape, ...): no unit, no better direction."""
    return Metric(name, name, read or _attr(name), level=level)


def _stat(name: str, better: str | None = None) -> Metric:
    """A statistic of a point's samples, as recorded (in the point's ``unit``)."""
    return Metric(name, name, _point(name), "ms", "point", better=better)


_MIB = " (MiB)"
_SECONDS = {"unit": "s", "fmt": lambda v: fmt_sig(v, 3), "better": "lower", "csv": False}
_BYTES = {"unit": "bytes", "fmt": fmt_mib, "better": "lower", "csv": False}

METRICS: tuple[Metric, ...] = (
    _key("model"), _key("family"), _key("recipe"), _key("status"), _key("error"),
    _key("weights"),
    Metric("size_bytes", "Size MiB", _attr("size_bytes"), "bytes", better="lower",
           fmt=fmt_mib, shown={"compare": 2, "machines": 2},
           formats={"compare": lambda v: _f(v and mib(v), ".1f"),
                    "machines": lambda v: f"{fmt_mib(v)} MiB"},
           help="bytes of the saved artifact (as `du` sees it)"),
    Metric("params", "Params", _attr("params")),
    Metric("int8_param_fraction", "int8 params", _attr("int8_param_fraction"), "fraction",
           help="share of parameter bytes stored as int8"),
    Metric("cosine", "Cosine", _of("fidelity", "cosine"), better="higher",
           help="cosine of the outputs to fp32's on the same inputs"),
    Metric("max_abs_err", "Max abs err", _of("fidelity", "max_abs_err"), better="lower"),
    Metric("top1_agreement", "Top-1 agreement", _of("fidelity", "top1_agreement"), "fraction",
           better="higher"),
    _key("sweep", _point("sweep"), "point"), _key("batch_size", _point("batch_size"), "point"),
    _key("input_size", _point("input_size"), "point"), _key("unit", _point("unit"), "point"),
    Metric("median", "ms", _point("median"), "ms", "point", value=_point_ms("median"),
           better="lower", shown={"machines": 1},
           formats={"machines": lambda v: "—" if v is None else f"{v:.3g} ms"},
           help="median of the timed forward passes"),
    _stat("mean", "lower"), _stat("std", "lower"),
    Metric("p90", "p90 ms", _point("p90"), "ms", "point", value=_point_ms("p90"), fmt=fmt_sig,
           better="lower", shown={"latency": 1}),
    Metric("p99", "p99 ms", _point("p99"), "ms", "point", value=_point_ms("p99"), fmt=fmt_sig,
           better="lower", shown={"latency": 2}),
    _stat("min", "lower"), Metric("n", "n", _point("n"), level="point"),
    _stat("ci_low"), _stat("ci_high"), Metric("verdict", "Verdict", _point("verdict"), level="point"),
    Metric("speedup", "Speedup", _speedup("median"), "x", "point", better="higher",
           shown={"compare": 1}, formats={"compare": lambda v: f"{_f(v, '.2f')}x"},
           help="paired speedup vs fp32: the median of per-round fp32/variant ratios"),
    Metric("speedup_ci_low", "Speedup CI low", _speedup("ci_low"), "x", "point"),
    Metric("speedup_ci_high", "Speedup CI high", _speedup("ci_high"), "x", "point"),
    Metric("metric", "Task metric", _of("accuracy", "metric")),
    Metric("metric_value", "Metric", _of("accuracy", "value"), better="higher",
           shown={"compare": 3}, formats={"compare": lambda v: _f(v, ".4f")},
           help="the task metric on the evaluation data (top-1, accuracy, Spearman)"),
    Metric("metric_relative", "Metric vs fp32", _of("accuracy", "relative"), "fraction",
           better="higher"),
    Metric("meets_accuracy_bar", "Meets the bar", _of("accuracy", "passes")),
    # Which run, machine and settings a row belongs to (appended: older columns keep their
    # places). Run-level ones read (run record, cell).
    _key("run_id", lambda run, c: (run or {}).get("id"), "run"),
    _key("machine", _machine, "run"), _key("device", _device, "run"),
    Metric("recipe_settings", "Recipe settings", _recipe_settings,
           help="the recipe's own settings as recorded in the cell (JSON)"),
    # Added with issue 22 (results.csv's columns are only ever appended).
    Metric("contention", "Contention", _contention("verdict"), level="point",
           help="'contended' when the worker's threads waited for a core while timed "
           "(measure/contention.py), else 'quiet'"),
    Metric("run_wait_share", "Run-queue wait", _contention("wait_share"), "fraction", "point",
           better="lower", help="share of the runtime threads' time spent waiting for a core"),
    Metric("cpu_share", "CPU share", _contention("cpu_share"), "fraction", "point",
           help="worker CPU time / (wall time x threads) over the timed passes"),
    # Added with issue 20: the speedup against the variant's own runtime in float.
    Metric("runtime_baseline", "Own runtime's fp32",
           lambda c, p: (getattr(c, "details", None) or {}).get("runtime_baseline"),
           help="the float variant of the same runtime (et-fp32 for et-int8)"),
    Metric("runtime_speedup", "vs own fp32", _runtime_speedup, "x", "point", better="higher",
           fmt=lambda v: "—" if v is None else f"{v:.2f}x", shown={"latency": 5},
           help="paired speedup vs the variant's own runtime in float (et-int8 vs et-fp32, "
           "ort-static-int8 vs ort-fp32): what quantization bought apart from the runtime"),
    # Not in results.csv: report.md's latency and memory tables.
    Metric("gflop", "GFLOP", lambda c, p: point_gflops(p), "GFLOP", "point", fmt=fmt_sig,
           csv=False, shown={"latency": 3},
           help="the work of one forward pass at that shape, counted on the fp32 model"),
    Metric("gflops_per_s", "GFLOP/s", lambda c, p: point_gflops_per_s(p), "GFLOP/s", "point",
           fmt=fmt_sig, better="higher", csv=False, shown={"latency": 4},
           help="that work divided by the median time (fp32-equivalent for int8)"),
    Metric("load_s", "Load s", _finite_attr("load_s"), **_SECONDS, shown={"memory": 1},
           per_model=True, help="time to load or build the model (once per model, on its "
           "first row)"),
    Metric("quantize_s", "Quantize s", _finite_attr("quantize_s"), **_SECONDS,
           shown={"memory": 2}, help="time to apply the recipe"),
    Metric("artifact_load_s", "Artifact load s", lambda c, p: artifact_load_s(c), **_SECONDS,
           shown={"memory": 3}, help="load_artifact on the shipped file (run --save-artifacts, "
           "quantize), in the process that wrote it; a recipe that compiles does so at the "
           "first call, not here"),
    Metric("rss_bytes", "Added by artifact" + _MIB, _memory("rss_bytes"), **_BYTES,
           shown={"memory": 4}, help="resident memory the variant added when it was built "
           "(for fp32: what loading the model added)"),
    Metric("inference_peak_bytes", "Inference peak" + _MIB, _memory("inference_peak_bytes"),
           **_BYTES, shown={"memory": 5}, help="peak RSS of one forward pass at {shape} above "
           "the RSS just before it (activations, workspaces)"),
    Metric("process_peak_bytes", "RSS peak in that pass" + _MIB, _memory("process_peak_bytes"),
           **_BYTES, shown={"memory": 6}, help="peak RSS of the worker process during that pass"),
    Metric("gpu_peak_bytes", "GPU peak" + _MIB, _memory("gpu_peak_bytes"), **_BYTES,
           shown={"memory": 7}, help="torch.cuda.max_memory_allocated during that pass, the "
           "counter reset per variant (CUDA runs; torch's allocator only, not ONNX Runtime's "
           "own GPU arena)"),
    Metric("peak_rss_bytes", "Worker peak RSS" + _MIB, _finite_attr("peak_rss_bytes"), **_BYTES,
           shown={"memory": 8}, per_model=True,
           help="peak RSS of the worker over all variants of the model (on its first row)"),
)  # fmt: skip

_BY_NAME = {m.name: m for m in METRICS}


def metric(name: str) -> Metric:
    """The metric called ``name``."""
    return _BY_NAME[name]


def shown(place: str) -> list[Metric]:
    """The metrics ``place`` shows, in its order."""
    at = [(m.shown[place], i, m) for i, m in enumerate(METRICS) if place in m.shown]
    return [m for _, _, m in sorted(at, key=lambda t: t[:2])]


def csv_columns() -> list[str]:
    """results.csv's header: every ``csv`` metric, in table order."""
    return [m.name for m in METRICS if m.csv]


def csv_rows(cell: Any, run: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """results.csv's rows of one cell: one per latency point, else one of its own;
    ``run`` (the run's record) fills the run-level columns."""
    columns = [m for m in METRICS if m.csv]

    def value(m: Metric, p: Any) -> Any:
        return m.read(run, cell) if m.level == "run" else m.read(cell, p)

    return [{m.name: value(m, p) for m in columns} for p in (cell.latency or [None])]


def csv_text(cells: Any, run: Any = None) -> str:
    """``results.csv``: one row per latency point; cells without latency get one row of
    their own; the columns are the table's. ``run`` (the run's record, a dict or a
    ``RunMeta``) fills the run id, machine and device columns."""
    import csv
    import io

    record = run.to_dict() if hasattr(run, "to_dict") else run
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=csv_columns())
    w.writeheader()
    for cell in cells:
        w.writerows(csv_rows(cell, record))
    return buf.getvalue()
