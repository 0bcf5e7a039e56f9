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

import csv
import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

STATUSES = ("ok", "unsupported", "error", "timeout")


@dataclass
class Speedup:
    """Paired speedup of a variant against fp32: median of per-round ratios."""

    median: float
    ci_low: float
    ci_high: float
    n: int


@dataclass
class LatencyPoint:
    """Latency statistics of one variant at one (batch size, input size)."""

    batch_size: int
    input_size: int
    sweep: str  # "input_size" or "batch_size": which lab figure this point belongs to
    unit: str
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
    samples: list[float]
    speedup: Speedup | None = None
    flops: float | None = None
    gflops_per_s: float | None = None


@dataclass
class Fidelity:
    """Agreement of a variant's outputs with fp32 on the same inputs."""

    cosine: float | None
    max_abs_err: float | None
    top1_agreement: float | None = None
    note: str | None = None


@dataclass
class CellResult:
    """Everything measured for one (model, recipe)."""

    model: str
    recipe: str
    status: str = "ok"
    error: str | None = None
    family: str | None = None  # "vision" | "text"
    runtime: str | None = None  # "torch-eager", "torch-compile", "onnxruntime", ...
    weights: str | None = None
    size_bytes: int | None = None
    params: int | None = None
    int8_param_fraction: float | None = None
    param_bytes_by_dtype: dict[str, int] = field(default_factory=dict)
    quantized_modules: dict[str, int] = field(default_factory=dict)
    float_modules: dict[str, int] = field(default_factory=dict)
    fidelity: Fidelity | None = None
    # Task metrics on real data (quantbench.evaluate.score): metric, value, relative to
    # fp32, passes (the accuracy bar), top1/top5/macro_f1 or mean_cosine/spearman, n.
    accuracy: dict[str, Any] | None = None
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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CellResult:
        d = dict(d)
        if d.get("fidelity") is not None:
            d["fidelity"] = Fidelity(**d["fidelity"])
        pts = []
        for p in d.get("latency") or []:
            p = dict(p)
            if p.get("speedup") is not None:
                p["speedup"] = Speedup(**p["speedup"])
            pts.append(LatencyPoint(**p))
        d["latency"] = pts
        return cls(**d)


def file_mode() -> int:
    """The mode a plain new file gets under this process's umask (mkstemp gives 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers never see a half-written file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, file_mode())  # reports and exports are for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_doc(run: dict[str, Any], results: list[CellResult]) -> dict[str, Any]:
    """What results.json holds (and ``quantbench export --format json`` prints)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "run": run,
        "results": [r.to_dict() for r in results],
    }


def write_json(path: Path, run: dict[str, Any], results: list[CellResult]) -> None:
    atomic_write_text(path, json.dumps(json_doc(run, results), indent=1) + "\n")


CSV_COLUMNS = [
    "model", "family", "recipe", "status", "error", "weights", "size_bytes", "params",
    "int8_param_fraction", "cosine", "max_abs_err", "top1_agreement", "sweep",
    "batch_size", "input_size", "unit", "median", "mean", "std", "p90", "p99", "min", "n",
    "ci_low", "ci_high", "verdict", "speedup", "speedup_ci_low", "speedup_ci_high",
    "metric", "metric_value", "metric_relative", "meets_accuracy_bar",
]  # fmt: skip


def write_csv(path: Path, results: list[CellResult]) -> None:
    atomic_write_text(path, csv_text(results))


def csv_text(results: list[CellResult]) -> str:
    """One row per latency point; cells without latency get one row of their own."""
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS)
    w.writeheader()
    for r in results:
        base = {
            "model": r.model, "family": r.family, "recipe": r.recipe, "status": r.status,
            "error": r.error, "weights": r.weights, "size_bytes": r.size_bytes,
            "params": r.params, "int8_param_fraction": r.int8_param_fraction,
        }  # fmt: skip
        if r.fidelity is not None:
            base.update(
                cosine=r.fidelity.cosine,
                max_abs_err=r.fidelity.max_abs_err,
                top1_agreement=r.fidelity.top1_agreement,
            )
        if r.accuracy:
            base.update(
                metric=r.accuracy.get("metric"),
                metric_value=r.accuracy.get("value"),
                metric_relative=r.accuracy.get("relative"),
                meets_accuracy_bar=r.accuracy.get("passes"),
            )
        if not r.latency:
            w.writerow(base)
        for p in r.latency:
            row = dict(base)
            row.update({k: getattr(p, k) for k in CSV_COLUMNS if hasattr(p, k) and k != "speedup"})
            if p.speedup is not None:
                row.update(
                    speedup=p.speedup.median,
                    speedup_ci_low=p.speedup.ci_low,
                    speedup_ci_high=p.speedup.ci_high,
                )
            w.writerow(row)
    return buf.getvalue()


def read_json(path: Path) -> tuple[dict[str, Any], list[CellResult]]:
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    return doc["run"], [CellResult.from_dict(r) for r in doc["results"]]
