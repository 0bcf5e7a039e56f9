"""Kind ``sentences``: a ``.txt`` file, one sentence per non-empty line (no labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantbench.datasets.base import Dataset
from quantbench.datasets.spec import DatasetSpec
from quantbench.datasets.tokens import _read_text_file, _text_dataset
from quantbench.errors import QuantbenchError


def _load_sentences(spec: DatasetSpec, tokenizer: Any) -> Dataset:
    path = Path(spec.path)
    lines = [line.strip() for line in _read_text_file(path).splitlines()]
    sentences = [s for s in lines if s]
    if not sentences:
        raise QuantbenchError(f"dataset '{path}' has no sentences (one per non-empty line)")
    return _text_dataset(spec, tokenizer, sentences, None, None, None)
