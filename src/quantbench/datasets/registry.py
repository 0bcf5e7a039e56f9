"""Loading a dataset by its kind, the model family it feeds, and the check that its
classes can be a model's outputs."""

from __future__ import annotations

from quantbench import handover
from quantbench.datasets.base import Dataset
from quantbench.datasets.images import _load_imagefolder
from quantbench.datasets.sentences import _load_sentences
from quantbench.datasets.spec import IMAGEFOLDER, KINDS, MEMORY, SENTENCES, DatasetSpec
from quantbench.datasets.text import _load_text
from quantbench.datasets.tokens import _load_tokenizer
from quantbench.errors import QuantbenchError, unknown_name


def load_dataset(spec: DatasetSpec, tokenizer_dir: str | None = None) -> Dataset:
    """Read ``spec``'s files; texts and sentences are tokenized with ``tokenizer_dir``.

    Images that do not decode are skipped and listed in ``Dataset.skipped``.
    """
    if spec.kind not in KINDS:
        raise unknown_name("dataset kind", spec.kind, KINDS)
    if spec.kind == MEMORY:
        return handover.get(spec.path, "dataset")
    if spec.kind == IMAGEFOLDER:
        return _load_imagefolder(spec)
    tokenizer = _load_tokenizer(spec, tokenizer_dir)
    if spec.kind == SENTENCES:
        return _load_sentences(spec, tokenizer)
    return _load_text(spec, tokenizer)


def kind_family(spec: DatasetSpec) -> str:
    """The model family a dataset feeds: vision for images, text otherwise."""
    if spec.kind == MEMORY:
        return handover.get(spec.path, "dataset").family
    return "vision" if spec.kind == IMAGEFOLDER else "text"


def check_labels(dataset: Dataset, num_outputs: int, model: str) -> None:
    """Raise when the dataset's classes cannot be the model's outputs (no-op for sentences).

    Integer text labels only need to be below ``num_outputs``; class folders and named
    labels must match the model's outputs one to one.
    """
    if dataset.classes is None:
        return
    n = len(dataset.classes)
    if dataset._int_labels:
        if n > num_outputs:
            raise QuantbenchError(
                f"dataset '{dataset.spec.path}' has {n} classes but model '{model}' outputs "
                f"{num_outputs} (labels are class indices, the largest is {n - 1})"
            )
        return
    if n != num_outputs:
        how = "class subfolders" if dataset.kind == IMAGEFOLDER else "distinct labels, sorted"
        raise QuantbenchError(
            f"dataset '{dataset.spec.path}' has {n} classes but model '{model}' outputs "
            f"{num_outputs} (classes are its {how})"
        )
