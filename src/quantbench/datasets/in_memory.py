"""Kind ``memory``: batches handed to the Python API (a DataLoader or an iterable of
batches), registered with :func:`memory_dataset` and re-batched on demand."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from quantbench import handover
from quantbench.datasets.base import Dataset
from quantbench.datasets.spec import MEMORY, DatasetSpec
from quantbench.errors import QuantbenchError, first_line


@dataclass
class MemoryDataset(Dataset):
    """Examples handed to the Python API: each ``(inputs, label)``, re-batched on demand."""

    family: str = "vision"

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


def memory_dataset(batches: Any, name: str | None = None) -> str:
    """Register batches for the Python API; returns the dataset's path (``mem:dataset:...``).

    ``batches``: a DataLoader or any iterable of ``(inputs, labels)`` (``inputs`` a tensor
    or a tuple of tensors, ``labels`` a 1-D tensor of class indices) or of bare inputs
    (calibration data, no labels). Images are ``(N, C, H, W)`` float tensors; anything
    else is taken as text inputs (token ids, attention mask).
    """
    import torch

    items: list[tuple[tuple[Any, ...], Any]] = []
    labelled: bool | None = None
    for batch in batches:
        if isinstance(batch, torch.Tensor):
            inputs, labels = (batch,), None
        elif (
            isinstance(batch, (tuple, list))
            and len(batch) == 2
            and (batch[1] is None or isinstance(batch[1], torch.Tensor) and batch[1].dim() == 1)
            and not (isinstance(batch[0], torch.Tensor) and batch[0].dim() == 1)
        ):
            inputs = batch[0] if isinstance(batch[0], (tuple, list)) else (batch[0],)
            labels = batch[1]
        elif isinstance(batch, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in batch):
            inputs, labels = tuple(batch), None
        else:
            raise QuantbenchError(
                "a batch must be inputs, or (inputs, labels) with labels a 1-D tensor; got "
                f"{type(batch).__name__}"
            )
        if labelled is not None and labelled != (labels is not None):
            raise QuantbenchError("some batches have labels and some do not")
        labelled = labels is not None
        n = int(inputs[0].shape[0])
        for i in range(n):
            items.append((tuple(t[i] for t in inputs), None if labels is None else int(labels[i])))
    if not items:
        raise QuantbenchError("the batches given hold no example")
    first = items[0][0]
    family = (
        "vision"
        if len(first) == 1 and first[0].dim() == 3 and first[0].is_floating_point()
        else "text"
    )
    raw = [y for _, y in items] if labelled else None
    classes = [str(i) for i in range(max(raw) + 1)] if raw else None
    label = name or "batches"
    ds = MemoryDataset(
        spec=DatasetSpec(path="", kind=MEMORY), kind=MEMORY, size=len(items), classes=classes,
        skipped=[], _items=items, _labels=raw, _int_labels=True, family=family,
    )  # fmt: skip
    path = handover.put("dataset", ds, label)
    ds.spec = DatasetSpec(path=path, kind=MEMORY)
    return path
