"""Kind ``memory``: batches handed to the Python API (a DataLoader or an iterable of
batches), registered with :func:`memory_dataset` and re-batched on demand."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from quantbench import handover
from quantbench.datasets.base import Dataset
from quantbench.datasets.batches import _UNSET, Params, infer_family, split_batch
from quantbench.datasets.spec import MEMORY, DatasetSpec
from quantbench.errors import QuantbenchError, first_line


@dataclass
class MemoryDataset(Dataset):
    """Examples handed to the Python API: each ``(inputs, label)``, re-batched on demand."""

    family: str = "vision"
    input_names: tuple[str, ...] = ()  # the forward's arguments the inputs are, in order

    def batches(
        self, batch_size: int, indices: Sequence[int] | None = None
    ) -> Iterator[tuple[tuple[Any, ...], Any]]:
        import torch

        order = list(range(self.size)) if indices is None else [int(i) for i in indices]
        for start in range(0, len(order), batch_size):
            chunk = [self._items[i] for i in order[start : start + batch_size]]
            try:
                inputs = tuple(torch.stack(p) for p in zip(*(x for x, _ in chunk), strict=True))
            except RuntimeError as e:
                raise QuantbenchError(
                    f"dataset '{self.spec.path}': examples of different shapes cannot be "
                    f"batched ({first_line(e, with_type=False)}); pad them to one shape"
                ) from None
            labels = None
            if self._labels is not None:
                labels = torch.tensor([self._labels[i] for i in order[start : start + batch_size]])
            yield inputs, labels


def memory_dataset(
    batches: Any, name: str | None = None, params: Params | None = None, labels: Any = _UNSET
) -> str:
    """Register batches for the Python API; returns the dataset's path (``mem:dataset:...``).

    ``batches``: a DataLoader or any iterable of batches, each a tensor, a tuple/list or a
    dict of tensors, inputs with or without labels (class indices): which is which is
    :func:`quantbench.datasets.batches.split_batch`'s rule (``params``: the model's forward;
    ``labels``: named explicitly). The family the inputs feed is inferred from the first
    example (:func:`~quantbench.datasets.batches.infer_family`).
    """
    items, raw, names = examples_of(batches, params, labels)
    classes = [str(i) for i in range(max(raw) + 1)] if raw else None
    label = name or "batches"
    ds = MemoryDataset(
        spec=DatasetSpec(path="", kind=MEMORY), kind=MEMORY, size=len(items), classes=classes,
        skipped=[], _items=items, _labels=raw, _int_labels=True,
        family=infer_family(items[0][0]), input_names=names,
    )  # fmt: skip
    path = handover.put("dataset", ds, label)
    ds.spec = DatasetSpec(path=path, kind=MEMORY)
    return path


def examples_of(
    batches: Any, params: Params | None = None, labels: Any = _UNSET, where: str = "the batches"
) -> tuple[list[tuple[tuple[Any, ...], Any]], list[int] | None, tuple[str, ...]]:
    """(examples as (inputs, label), class labels or None, input names) of ``batches``."""
    items: list[tuple[tuple[Any, ...], Any]] = []
    labelled: bool | None = None
    names: tuple[str, ...] = ()
    for batch in batches:
        split = split_batch(batch, params, labels)
        inputs, y = split.inputs, split.labels
        if y is not None and not (y.dim() == 1 and not y.is_floating_point()):
            y = None  # not class indices (a regression target): nothing to score top-1 on
        if labelled is not None and labelled != (y is not None):
            raise QuantbenchError(f"{where}: some batches have labels and some do not")
        if names and split.names != names:
            raise QuantbenchError(
                f"{where}: batches differ in their inputs ({', '.join(names)} vs "
                f"{', '.join(split.names)})"
            )
        labelled, names = y is not None, split.names
        n = int(inputs[0].shape[0]) if inputs[0].dim() else 0
        if any(t.dim() == 0 or int(t.shape[0]) != n for t in inputs):
            raise QuantbenchError(
                f"{where}: the inputs of a batch must share their first (batch) dimension; "
                f"got shapes {', '.join(str(tuple(t.shape)) for t in inputs)}"
            )
        for i in range(n):
            items.append((tuple(t[i] for t in inputs), None if y is None else int(y[i])))
    if not items:
        raise QuantbenchError(f"{where} hold no example")
    raw = [int(y) for _, y in items] if labelled else None
    return items, raw, names
