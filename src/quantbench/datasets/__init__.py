"""Dataset registry: labelled images, labelled texts and plain sentences for evaluation
and calibration.

Three kinds, inferred from the path when not given:

* ``imagefolder`` -- a directory ``root/<class>/<image>`` (torchvision ImageFolder layout);
* ``text`` -- a ``.csv``/``.tsv`` (header row), ``.jsonl`` or ``.json`` file of labelled texts;
* ``sentences`` -- a ``.txt`` file, one sentence per non-empty line (no labels).

A fourth kind, ``memory``, holds batches handed to the Python API (:func:`memory_dataset`).

Validation of the spec is cheap (nothing is decoded); :func:`load_dataset` reads the
files, skips images that do not decode (and says which) and tokenizes texts.

- :mod:`~quantbench.datasets.spec`: the kinds, :class:`DatasetSpec`, :func:`parse_dataset`;
- :mod:`~quantbench.datasets.base`: :class:`Dataset` and the helpers every kind shares;
- :mod:`~quantbench.datasets.registry`: :func:`load_dataset` (by kind),
  :func:`kind_family`, :func:`check_labels`;
- one module per kind: :mod:`~quantbench.datasets.images`,
  :mod:`~quantbench.datasets.text`, :mod:`~quantbench.datasets.sentences` (the two text
  kinds share :mod:`~quantbench.datasets.tokens`), :mod:`~quantbench.datasets.in_memory`.

Example::

    >>> from quantbench.datasets import parse_dataset, load_dataset
    >>> spec = parse_dataset({"path": "val/", "limit": 500})      # doctest: +SKIP
    >>> data = load_dataset(spec)                                  # doctest: +SKIP
    >>> for (images,), labels in data.batches(32):                 # doctest: +SKIP
    ...     logits = model(images)
"""

from __future__ import annotations

from quantbench.datasets.base import Dataset
from quantbench.datasets.images import IMAGE_EXTENSIONS
from quantbench.datasets.in_memory import MemoryDataset, memory_dataset
from quantbench.datasets.registry import check_labels, kind_family, load_dataset
from quantbench.datasets.spec import (
    IMAGEFOLDER,
    IMAGENET_MEAN,
    IMAGENET_STD,
    KINDS,
    MEMORY,
    SENTENCES,
    TEXT,
    DatasetSpec,
    dataset_arg,
    list_kinds,
    parse_dataset,
)

__all__ = [
    "IMAGEFOLDER",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "KINDS",
    "MEMORY",
    "SENTENCES",
    "TEXT",
    "Dataset",
    "DatasetSpec",
    "MemoryDataset",
    "check_labels",
    "dataset_arg",
    "kind_family",
    "list_kinds",
    "load_dataset",
    "memory_dataset",
    "parse_dataset",
]
