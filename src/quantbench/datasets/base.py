"""A loaded dataset (:class:`Dataset`: batches, calibration/evaluation split, texts) and
the helpers every kind shares: the seeded subset and the image transform."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from quantbench.datasets.spec import IMAGEFOLDER, DatasetSpec
from quantbench.errors import QuantbenchError, first_line


@dataclass
class Dataset:
    """A loaded dataset; examples are addressed by position ``0 .. size-1``."""

    spec: DatasetSpec
    kind: str
    size: int  # usable examples (after limit, without skipped ones)
    classes: list[str] | None  # label names in index order; None for sentences
    skipped: list[tuple[str, str]]  # (file, reason) of items that failed to decode
    # Private storage: image paths, or token id lists and texts.
    _items: list[Any] = field(default_factory=list, repr=False, compare=False)
    _labels: list[int] | None = field(default=None, repr=False, compare=False)
    _texts: list[str] | None = field(default=None, repr=False, compare=False)
    _pad_id: int = field(default=0, repr=False, compare=False)
    _pad_left: bool = field(default=False, repr=False, compare=False)
    _int_labels: bool = field(default=False, repr=False, compare=False)
    _transform: Any = field(default=None, repr=False, compare=False)

    def batches(
        self, batch_size: int, indices: Sequence[int] | None = None
    ) -> Iterator[tuple[tuple[Any, ...], Any]]:
        """Yield ``(inputs, labels)``; ``module(*inputs)`` runs the model.

        Images: ``(float tensor (B, 3, crop, crop),)``; texts and sentences:
        ``(input_ids, attention_mask)``, padded to the longest in the batch. ``labels``
        is a LongTensor ``(B,)`` of class indices, or None for sentences.
        """
        import torch

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        order = list(range(self.size)) if indices is None else [int(i) for i in indices]
        bad = [i for i in order if not 0 <= i < self.size]
        if bad:
            raise IndexError(f"index {bad[0]} out of range for a dataset of {self.size}")
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            if self.kind == IMAGEFOLDER:
                inputs: tuple[Any, ...] = (torch.stack([self._image(i) for i in chunk]),)
            else:
                inputs = self._pad([self._items[i] for i in chunk])
            labels = None
            if self._labels is not None:
                labels = torch.tensor([self._labels[i] for i in chunk], dtype=torch.long)
            yield inputs, labels

    def split(self, n_calib: int, seed: int = 0) -> tuple[list[int], list[int]]:
        """Seeded, disjoint (calibration, evaluation) positions, each sorted.

        ``n_calib`` is capped so that at least one example is left for evaluation.

        Example::

            >>> d = Dataset(DatasetSpec("x.txt", "sentences"), "sentences", 5, None, [])
            >>> d.split(2)
            ([1, 2], [0, 3, 4])
        """
        if isinstance(n_calib, bool) or not isinstance(n_calib, int) or n_calib < 0:
            raise QuantbenchError(f"calibration examples must be an integer >= 0, got {n_calib!r}")
        k = min(n_calib, self.size - 1)
        perm = list(range(self.size))
        random.Random(seed).shuffle(perm)
        return sorted(perm[:k]), sorted(perm[k:])

    def texts(self) -> list[str]:
        """The sentences or texts (pairs joined by ``' || '``), in position order."""
        if self._texts is None:
            raise QuantbenchError(f"dataset '{self.spec.path}' ({self.kind}) has no texts")
        return list(self._texts)

    # -- helpers

    def _image(self, i: int) -> Any:
        from PIL import Image

        path = self._items[i]
        if self._transform is None:
            self._transform = _image_transform(self.spec)
        try:
            with Image.open(path) as im:
                img = im.convert("RGB")
        except Exception as e:  # it decoded at load time: changed since?
            raise QuantbenchError(
                f"cannot decode image '{path}': {first_line(e, with_type=False)}"
            ) from None
        return self._transform(img)

    def _pad(self, seqs: list[list[int]]) -> tuple[Any, Any]:
        import torch

        longest = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), longest), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), longest), dtype=torch.long)
        for row, s in enumerate(seqs):
            cols = slice(longest - len(s), longest) if self._pad_left else slice(0, len(s))
            ids[row, cols] = torch.tensor(s, dtype=torch.long)
            mask[row, cols] = 1
        return ids, mask


def _image_transform(spec: DatasetSpec) -> Any:
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Resize(spec.resize),
            transforms.CenterCrop(spec.crop),
            transforms.ToTensor(),
            transforms.Normalize(spec.mean, spec.std),
        ]
    )


def _subset_order(n: int, spec: DatasetSpec) -> list[int]:
    """All positions in order, or (with a limit below n) a seeded permutation of them."""
    order = list(range(n))
    if spec.limit is not None and spec.limit < n:
        random.Random(spec.seed).shuffle(order)
    return order


def _pick(n: int, spec: DatasetSpec) -> list[int]:
    """Seeded, order-stable subset of min(limit, n) positions."""
    keep = n if spec.limit is None else min(spec.limit, n)
    return sorted(_subset_order(n, spec)[:keep])
