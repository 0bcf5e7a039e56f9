"""Result records: what one run produced, as written to ``results.json``.

The JSON layout (``schema_version`` 1)::

    {"schema_version": 1,
     "run": {"id", "started_at", "finished_at", "quantbench_version", "host": {...},
             "versions": {...}, "engine", "threads", "weights", "spec": {...}},
     "results": [CellResult, ...]}

A *cell* is one (model, recipe) pair; its ``latency`` list holds one entry per
(batch size, input size) point of the sweeps, each with its raw samples.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from quantbench import strictjson

SCHEMA_VERSION = 1


class _StrEnum(str, Enum):
    """A string enum that prints, formats and serialises as its value (like 3.11's StrEnum),
    so ``cell.status == "ok"`` and JSON/CSV/SQL output are unchanged."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return str(self.value).__format__(spec)


class Status(_StrEnum):
    """How a cell ended."""

    OK = "ok"
    UNSUPPORTED = "unsupported"  # the recipe does not apply here (the reason says why)
    ERROR = "error"
    TIMEOUT = "timeout"


class Family(_StrEnum):
    """What kind of inputs a model takes."""

    VISION = "vision"
    TEXT = "text"
    TENSOR = "tensor"  # anything else: tabular rows, audio, several inputs


def _enum(kind: type[Enum], value: Any) -> Any:
    """``kind(value)``; a value this version does not know stays a plain string."""
    if value is None or isinstance(value, kind):
        return value
    try:
        return kind(value)
    except ValueError:
        return value


def _known(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``d`` that ``cls`` has fields for: a newer file's extra keys are ignored."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in d.items() if k in names}


@dataclass
class Stats:
    """Statistics derived from raw latency samples (``quantbench.measure.latency.summarize``)."""

    mean: float
    std: float
    median: float
    p90: float
    p99: float
    min: float
    n: int
    ci_low: float
    ci_high: float
    verdict: str  # "stable" | "noisy"


STATS_FIELDS = tuple(f.name for f in dataclasses.fields(Stats))


@dataclass
class Speedup:
    """Paired speedup of a variant against fp32 (or, as ``runtime_speedup``, against its
    own runtime's fp32): median of per-round ratios."""

    median: float
    ci_low: float
    ci_high: float
    n: int


@dataclass
class LatencyPoint:
    """Latency of one variant at one (batch size, input size): raw samples and their
    :class:`Stats` (stored flat in JSON, as ``mean``, ``median``, ... beside ``samples``)."""

    batch_size: int
    input_size: int
    sweep: str  # "input_size", "batch_size" or "grid": which figure this point belongs to
    unit: str
    stats: Stats
    samples: list[float]
    speedup: Speedup | None = None
    flops: float | None = None
    # against the variant's own runtime in float (et-int8 vs et-fp32): the runtime's
    # effect apart from quantization's; None where that is fp32 or was not measured
    runtime_speedup: Speedup | None = None
    gflops_per_s: float | None = None
    # Competing work while it was timed (quantbench.measure.contention): verdict and figures
    contention: dict[str, Any] | None = None

    # The statistics read as the point's own attributes (``point.median``).
    mean = property(lambda self: self.stats.mean)
    std = property(lambda self: self.stats.std)
    median = property(lambda self: self.stats.median)
    p90 = property(lambda self: self.stats.p90)
    p99 = property(lambda self: self.stats.p99)
    min = property(lambda self: self.stats.min)
    n = property(lambda self: self.stats.n)
    ci_low = property(lambda self: self.stats.ci_low)
    ci_high = property(lambda self: self.stats.ci_high)
    verdict = property(lambda self: self.stats.verdict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "batch_size": self.batch_size, "input_size": self.input_size,
            "sweep": self.sweep, "unit": self.unit,
        }  # fmt: skip
        d.update(dataclasses.asdict(self.stats))
        # a NaN/inf sample cannot be a timing (the store drops it too)
        d["samples"] = [v for v in self.samples if math.isfinite(v)]
        d["speedup"] = dataclasses.asdict(self.speedup) if self.speedup is not None else None
        d["flops"], d["gflops_per_s"] = self.flops, self.gflops_per_s
        if self.runtime_speedup is not None:
            d["runtime_speedup"] = dataclasses.asdict(self.runtime_speedup)
        d["contention"] = self.contention
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LatencyPoint:
        sp, rt = d.get("speedup"), d.get("runtime_speedup")
        return cls(
            batch_size=d["batch_size"], input_size=d["input_size"], sweep=d["sweep"],
            unit=d["unit"], stats=Stats(**{k: d[k] for k in STATS_FIELDS}),
            samples=[v for v in d.get("samples") or [] if v is not None],
            speedup=Speedup(**_known(Speedup, sp)) if sp is not None else None,
            flops=d.get("flops"), gflops_per_s=d.get("gflops_per_s"),
            runtime_speedup=Speedup(**_known(Speedup, rt)) if rt is not None else None,
            contention=d.get("contention") if isinstance(d.get("contention"), dict) else None,
        )  # fmt: skip


@dataclass
class Fidelity:
    """Agreement of a variant's outputs with fp32 on the same inputs."""

    cosine: float | None
    max_abs_err: float | None
    top1_agreement: float | None = None
    note: str | None = None
    # Outputs that were not finite (NaN/inf), so nothing was compared: "fp32" (the
    # reference), "variant" (this one's) or "both". None: every output was finite.
    nonfinite: str | None = None


@dataclass
class Accuracy:
    """A variant's task metrics on real data (``quantbench.evaluate.score``).

    ``metric`` is the one the bar is judged on (top-1, accuracy, or embedding Spearman),
    ``value`` its value, ``relative`` that as a fraction of fp32's, ``passes`` whether
    ``relative >= 1 - max_drop``. The rest are the metrics measured alongside it.
    """

    metric: str | None = None
    value: float | None = None
    relative: float | None = None
    passes: bool | None = None
    max_drop: float | None = None
    dataset: str | None = None
    n: int | None = None
    top1: float | None = None
    top5: float | None = None
    macro_f1: float | None = None
    mean_cosine: float | None = None
    min_cosine: float | None = None
    spearman: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Accuracy:
        return cls(**_known(cls, d))


@dataclass
class CellResult:
    """Everything measured for one (model, recipe)."""

    model: str
    recipe: str
    status: Status | str = Status.OK
    error: str | None = None
    family: Family | str | None = None
    runtime: str | None = None  # "torch-eager", "torch-compile", "onnxruntime", ...
    weights: str | None = None
    size_bytes: int | None = None
    params: int | None = None
    int8_param_fraction: float | None = None
    param_bytes_by_dtype: dict[str, int] = field(default_factory=dict)
    quantized_modules: dict[str, int] = field(default_factory=dict)
    float_modules: dict[str, int] = field(default_factory=dict)
    fidelity: Fidelity | None = None
    accuracy: Accuracy | None = None  # task metrics on real data
    latency: list[LatencyPoint] = field(default_factory=list)
    load_s: float | None = None
    quantize_s: float | None = None
    compile_s: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    peak_rss_bytes: int | None = None
    # rss_bytes: memory the artifact added when built; inference_peak_bytes: peak RSS of a
    # reference-shape forward pass above the RSS before it (activations, workspaces).
    memory: dict[str, int | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.status = _enum(Status, self.status)
        self.family = _enum(Family, self.family)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "latency":
                v = [p.to_dict() for p in v]
            elif f.name == "accuracy":
                v = v.to_dict() if v is not None else None
            elif f.name in ("status", "family"):
                v = None if v is None else str(v)
            else:
                v = copy.deepcopy(dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v)
            d[f.name] = v
        d, bad = strictjson.finite(d)  # strict JSON wherever the cell goes
        if bad:
            d["notes"] = [*d["notes"], strictjson.note(bad, "written")]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CellResult:
        """A cell from its dict; keys a newer quantbench added are ignored. A NaN/inf
        number (a store or file written before values were checked) is read as None,
        and a note says which."""
        d, bad = strictjson.finite(_known(cls, d))
        if bad:
            d["notes"] = [*(d.get("notes") or []), strictjson.note(bad, "read")]
        if d.get("fidelity") is not None:
            d["fidelity"] = Fidelity(**_known(Fidelity, d["fidelity"]))
        if d.get("accuracy") is not None:
            d["accuracy"] = Accuracy.from_dict(d["accuracy"])
        d["latency"] = [LatencyPoint.from_dict(p) for p in d.get("latency") or []]
        return cls(**d)


@dataclass
class RunMeta:
    """One run's record: who ran what where (``run`` in results.json, a row of ``runs`` in
    the store). Keys a newer quantbench wrote are kept in ``extra`` and written back."""

    id: str
    started_at: str | None = None
    finished_at: str | None = None
    status: str = "running"  # running | finished | interrupted
    quantbench_version: str | None = None
    host: dict[str, Any] = field(default_factory=dict)  # machine fingerprint (quantbench.env)
    versions: dict[str, str] = field(default_factory=dict)
    engine: str | None = None
    device: str | None = None  # where the models ran: cpu | cuda (--device, auto resolved)
    threads: int | None = None
    affinity: list[int] | None = None
    pinned: bool = False
    weights: dict[str, str] = field(default_factory=dict)  # model -> weights description
    spec: dict[str, Any] = field(default_factory=dict)  # RunSpec.to_dict()
    out_dir: str | None = None
    store: str | None = None
    resumed: list[str] = field(default_factory=list)  # when --resume continued it
    store_errors: list[str] = field(default_factory=list)
    # What the store lacks when it failed during the run: the [model, recipe] of the
    # cells only in results.json, and whether the run's own record is out of date
    # (``quantbench import results.json`` puts both in; it clears these).
    unstored: list[list[str]] = field(default_factory=list)
    record_unstored: bool = False
    recommendations: dict[str, Any] | None = None
    # A sweep across machines (``--executor ray``): the runs of one sweep share this id,
    # one run per machine; ``node`` names the machine the run was placed on.
    sweep_id: str | None = None
    node: str | None = None
    # The Ray node the run was placed on (id, address, resources, labels): what a resumed
    # sweep finds it again by (quantbench.runner.sweeps.match_runs).
    ray_node: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # Written only once they hold something (results.json has never had them empty).
    _OPTIONAL = (
        "device",
        "resumed",
        "store_errors",
        "unstored",
        "record_unstored",
        "recommendations",
        "out_dir",
        "store",
        "sweep_id",
        "node",
        "ray_node",
    )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "extra" or (f.name in self._OPTIONAL and not v):
                continue
            d[f.name] = copy.deepcopy(v)
        d.update(copy.deepcopy(self.extra))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunMeta:
        known = _known(cls, d)
        known.pop("extra", None)
        extra = {k: v for k, v in d.items() if k not in known and k != "extra"}
        return cls(**known, extra=extra)


def file_mode() -> int:
    """The mode a plain new file gets under this process's umask (mkstemp gives 0600)."""
    from quantbench.files import file_mode as mode

    return mode()


def atomic_write_text(path: Path, text: str, overwrite: bool = True) -> None:
    """Write ``text`` to ``path`` so that readers never see a half-written file (see
    :func:`quantbench.files.atomic_write`: a full disk raises its one-line error)."""
    from quantbench.files import atomic_write_text as write

    write(path, text, overwrite)


def json_doc(run: RunMeta | dict[str, Any], results: list[CellResult]) -> dict[str, Any]:
    """What results.json holds (and ``quantbench export --format json`` prints)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "run": run.to_dict() if isinstance(run, RunMeta) else run,
        "results": [r.to_dict() for r in results],
    }


def write_json(path: Path, run: RunMeta | dict[str, Any], results: list[CellResult]) -> None:
    atomic_write_text(path, strictjson.dumps(json_doc(run, results), indent=1) + "\n")


# ------------------------------------------------------------------ a run's cells, in order

BASELINE = "fp32"  # every ratio and speedup is taken against it

# Fixed order for the recipes we know; anything else follows in order of appearance.
KNOWN_RECIPES = ("fp32", "dynamic-int8", "static-int8")


def model_order(results: Iterable[CellResult]) -> list[str]:
    """Models in order of first appearance."""
    return list(dict.fromkeys(r.model for r in results))


def recipe_order(results: Iterable[CellResult]) -> list[str]:
    """Recipes: known ones in their fixed order, then the rest in order of appearance."""
    seen = list(dict.fromkeys(r.recipe for r in results))
    known = [r for r in KNOWN_RECIPES if r in seen]
    return known + [r for r in seen if r not in KNOWN_RECIPES]


def find_cell(results: Iterable[CellResult], model: str, recipe: str) -> CellResult | None:
    """The first cell of (model, recipe), or None."""
    for r in results:
        if r.model == model and r.recipe == recipe:
            return r
    return None


def model_family(results: Iterable[CellResult], model: str) -> str | None:
    """A model's family, taken from any of its cells that records one."""
    for r in results:
        if r.model == model and r.family:
            return r.family
    return None


def read_json(path: Path) -> tuple[dict[str, Any], list[CellResult]]:
    """A results.json file; one of a newer schema, or not a results file, is refused."""
    from quantbench import fileformat
    from quantbench.errors import QuantbenchError, first_line

    what = "a quantbench results.json"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise QuantbenchError(f"cannot read '{path}': {e.strerror or first_line(e)}") from None
    except UnicodeDecodeError:
        raise fileformat.not_a(path, what, "not UTF-8 text") from None
    with fileformat.expecting(path, what, ("JSON text", "text")):
        doc = json.loads(text)
    if not isinstance(doc, dict) or "results" not in doc or "run" not in doc:
        raise QuantbenchError(f"'{path}' is not {what}: JSON without 'run' and 'results'")
    version = doc.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise QuantbenchError(
            f"'{path}' has results schema version {version!r}; this quantbench reads up to "
            f"{SCHEMA_VERSION} (upgrade quantbench to read it)"
        )
    if not isinstance(doc["run"], dict) or not isinstance(doc["results"], list):
        raise QuantbenchError(f"'{path}' is not {what}: 'run' must be a mapping, 'results' a list")
    cells = []
    for i, r in enumerate(doc["results"]):
        try:
            cells.append(CellResult.from_dict(r))
        except Exception as e:
            raise QuantbenchError(
                f"'{path}' is not {what}: result {i + 1} does not read ({first_line(e)})"
            ) from None
    run, bad = strictjson.finite(doc["run"])
    if bad:
        run[strictjson.RECORD_KEY] = bad
    return run, cells
