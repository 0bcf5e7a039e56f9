"""Task accuracy on real data: which examples a model sees, and how each variant scores.

A model's evaluation data is a :mod:`quantbench.datasets` dataset of its family. Static
recipes calibrate on a separate set of examples (``calibration``); when that is the same
file as the evaluation data, the two are disjoint splits of it. Scores:

- classifiers (vision or text): top-1 (called accuracy for text), top-5, macro-F1;
- sentence-embedding models: cosine to the fp32 embedding per sentence, and the
  Spearman correlation of the pairwise-similarity matrices (does retrieval ranking
  survive?).

Each variant's primary metric is also given relative to fp32's, and passes when it keeps
at least ``1 - max_drop`` of it (MLPerf's bar is 99%).

Example::

    >>> from quantbench.evaluate import primary_metric
    >>> primary_metric({"top1": 0.9, "macro_f1": 0.88}, "vision")
    ('top1', 0.9)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from quantbench.errors import QuantbenchError
from quantbench.results import Accuracy


@dataclass
class TaskData:
    """One model's evaluation (and calibration/training) examples."""

    dataset: Any  # quantbench.datasets.Dataset
    eval_indices: list[int]
    calib_inputs: list[tuple] = field(default_factory=list)
    calib_source: str = "synthetic"
    train_batches: list[tuple[tuple, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check_family(ds_spec: Any, family: str, model: str, what: str) -> None:
    """A dataset of the other family (images for a text model, ...) is an input error."""
    from quantbench.datasets import kind_family as family_of

    kind_family = family_of(ds_spec)
    if kind_family != family:
        raise QuantbenchError(
            f"{what} '{ds_spec.path}' is {ds_spec.kind} data but model '{model}' is a "
            f"{family} model (give each model its own dataset in a config file)"
        )


def metric_name(task: str, family: str) -> str:
    """The metric a variant passes or fails on, for a model's task and family."""
    if task == "embedding":
        return "spearman"
    return "accuracy" if family == "text" else "top1"


def _subset(n: int, k: int, seed: int) -> list[int]:
    idx = list(range(n))
    if k >= n:
        return idx
    return sorted(random.Random(seed).sample(idx, k))


def _batches(ds: Any, indices: list[int], batch_size: int, labels: bool) -> list[Any]:
    out = []
    for inputs, y in ds.batches(batch_size, indices):
        out.append((inputs, y) if labels else inputs)
    return out


def prepare(
    spec: Any,
    dataset: dict[str, Any] | None,
    lm: Any,
    calib_batch_size: int,
    calibration: dict[str, Any] | None = None,
) -> TaskData | None:
    """Load the evaluation, calibration and training data for model ``lm``.

    ``dataset`` / ``calibration`` are the model's dataset spec dicts (None: no task
    evaluation; the run's calibration, ``spec.calibration``). Raises QuantbenchError on
    bad data.
    """
    from quantbench import datasets

    def load(d: dict[str, Any], what: str) -> Any:
        ds_spec = datasets.parse_dataset(d, what)
        check_family(ds_spec, lm.family, lm.name, what)
        ds = datasets.load_dataset(ds_spec, tokenizer_dir=lm.source_dir)
        if lm.task == "classification" and ds.classes is not None and lm.num_outputs:
            datasets.check_labels(ds, lm.num_outputs, lm.name)
        return ds

    data = None
    if dataset is not None:
        ds = load(dataset, "dataset")
        if lm.task == "features":
            raise QuantbenchError(
                f"model '{lm.name}' outputs hidden states, not labels or sentence embeddings: "
                "give a classifier or a sentence-transformers directory to score it on "
                f"'{ds.spec.path}'"
            )
        if lm.task == "classification" and ds.classes is None:
            raise QuantbenchError(
                f"dataset '{ds.spec.path}' has no labels, so classifier '{lm.name}' cannot be "
                "scored on it"
            )
        data = TaskData(ds, list(range(ds.size)))
    calib = calibration or getattr(spec.data, "calibration", None)
    if calib is not None:
        data = data or TaskData(None, [])
        n = spec.data.calibration_samples
        if data.dataset is not None and calib.get("path") == data.dataset.spec.path:
            cal_idx, data.eval_indices = data.dataset.split(n, seed=spec.target.seed)
            cal_ds = data.dataset
            data.notes.append(
                f"calibration: {len(cal_idx)} examples of {cal_ds.spec.path}, disjoint from the "
                f"{len(data.eval_indices)} evaluated"
            )
            if len(data.eval_indices) < len(cal_idx):
                data.notes.append(
                    f"⚠️ only {len(data.eval_indices)} examples are left to evaluate after "
                    f"{len(cal_idx)} went to calibration: lower --calibration-samples or give "
                    "a separate calibration file"
                )
        else:
            cal_ds = load(calib, "calibration")
            cal_idx = _subset(cal_ds.size, n, spec.target.seed)
        data.calib_inputs = _batches(cal_ds, cal_idx, calib_batch_size, labels=False)
        data.calib_source = f"{len(cal_idx)} examples of {cal_ds.spec.path}"
    train = getattr(spec.data, "train_dataset", None)
    if train is not None:
        data = data or TaskData(None, [])
        tr = load(train, "train dataset")
        if tr.classes is None:
            raise QuantbenchError(f"train dataset '{tr.spec.path}' has no labels")
        order = list(range(tr.size))
        random.Random(spec.target.seed).shuffle(order)  # files come sorted by class
        data.train_batches = _batches(tr, order, 32, labels=True)
    if data is not None and data.dataset is not None and spec.data.limit:
        data.eval_indices = [
            data.eval_indices[i]
            for i in _subset(len(data.eval_indices), spec.data.limit, spec.target.seed)
        ]
    if data is not None and data.dataset is not None and not data.eval_indices:
        raise QuantbenchError(f"dataset '{data.dataset.spec.path}' leaves no example to evaluate")
    return data


def outputs(module: Any, data: TaskData, batch_size: int, device: str = "cpu") -> tuple[Any, Any]:
    """(outputs, labels) of ``module`` over the evaluation examples, concatenated (on the
    CPU); the inputs go to ``device``, where the module is."""
    import torch

    outs, labels = [], []
    with torch.inference_mode():
        for inputs, y in data.dataset.batches(batch_size, data.eval_indices):
            if device != "cpu":
                inputs = tuple(t.to(device) for t in inputs)
            outs.append(module(*inputs).float().cpu())
            if y is not None:
                labels.append(y)
    return torch.cat(outs), (torch.cat(labels) if labels else None)


def primary_metric(scores: dict[str, Any], family_or_task: str) -> tuple[str, float | None]:
    """The metric a variant passes or fails on: top-1 / accuracy, or embedding Spearman."""
    task = "embedding" if "spearman" in scores else "classification"
    name = metric_name(task, family_or_task)
    return name, scores.get("spearman" if task == "embedding" else "top1")


def score(
    lm: Any,
    out: Any,
    labels: Any,
    ref_out: Any,
    fp32: Accuracy | None,
    max_drop: float,
    source: str,
) -> Accuracy:
    """The accuracy record of one variant (fp32's own when ``fp32`` is None)."""
    from quantbench.measure import accuracy

    if lm.task == "embedding":
        scores: dict[str, Any] = dict(accuracy.embedding_fidelity(ref_out, out))
    else:
        scores = dict(accuracy.classification_metrics(out, labels))
    name, value = primary_metric(scores, lm.family)
    base = value if fp32 is None else fp32.value
    rel = accuracy.relative(value, base)
    if lm.task == "embedding":
        rel = value  # fp32's own ranking correlates perfectly with itself: 1.0
    scores.update({
        "dataset": source, "metric": name, "value": value, "relative": rel,
        "max_drop": max_drop,
        "passes": None if rel is None else bool(rel >= 1 - max_drop - 1e-12),
    })  # fmt: skip
    return Accuracy.from_dict(scores)
