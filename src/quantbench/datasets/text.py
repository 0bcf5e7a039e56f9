"""Kind ``text``: labelled texts in a ``.csv``/``.tsv`` (header row), ``.jsonl`` or
``.json`` file; integer labels are class indices, other labels name classes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from quantbench.datasets.base import Dataset
from quantbench.datasets.spec import DatasetSpec
from quantbench.datasets.tokens import _read_text_file, _text_dataset
from quantbench.errors import QuantbenchError

_INT_LABEL = re.compile(r"\s*\+?\d+\s*")


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """(columns, [(line number, row)]) of a CSV/TSV, JSONL or JSON file."""
    import csv
    import io
    import json

    text = _read_text_file(path)
    suffix = path.suffix.lower()
    rows: list[tuple[int, dict[str, Any]]] = []
    if suffix in (".jsonl", ".json"):
        if suffix == ".json":
            try:
                data = json.loads(text) if text.strip() else []
            except json.JSONDecodeError as e:
                raise QuantbenchError(
                    f"dataset '{path}' is not valid JSON: line {e.lineno}: {e.msg}"
                ) from None
            if not isinstance(data, list):
                raise QuantbenchError(f"dataset '{path}' must hold a JSON list of objects")
            numbered = [(i + 1, obj) for i, obj in enumerate(data)]
            where = "item"
        else:
            numbered = []
            for lineno, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    numbered.append((lineno, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise QuantbenchError(
                        f"dataset '{path}': line {lineno} is not valid JSON ({e.msg})"
                    ) from None
            where = "line"
        for n, obj in numbered:
            if not isinstance(obj, dict):
                raise QuantbenchError(
                    f"dataset '{path}': {where} {n} is not a JSON object (got {type(obj).__name__})"
                )
            rows.append((n, obj))
        columns = list(dict.fromkeys(k for _, obj in rows for k in obj))
        return columns, rows
    reader = csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
    try:
        columns = [c for c in (reader.fieldnames or []) if c is not None]
        for row in reader:
            rows.append((reader.line_num, row))
    except csv.Error as e:
        raise QuantbenchError(f"dataset '{path}': line {reader.line_num}: {e}") from None
    if not columns:
        raise QuantbenchError(f"dataset '{path}' is empty (expected a header row)")
    return columns, rows


def _load_text(spec: DatasetSpec, tokenizer: Any) -> Dataset:
    path = Path(spec.path)
    columns, rows = _read_rows(path)
    if not rows:
        raise QuantbenchError(f"dataset '{path}' has no rows")
    wanted = [spec.text_column, spec.label_column]
    if spec.text_pair_column is not None:
        wanted.insert(1, spec.text_pair_column)
    for col in wanted:
        if col not in columns:
            raise QuantbenchError(
                f"dataset '{path}' has no column '{col}' (columns: {', '.join(columns)})"
            )
    texts: list[str] = []
    pairs: list[str] | None = [] if spec.text_pair_column is not None else None
    raw_labels: list[Any] = []
    for n, row in rows:
        values = []
        for col in wanted:
            v = row.get(col)
            if v is None or (isinstance(v, str) and col == spec.label_column and not v.strip()):
                raise QuantbenchError(f"dataset '{path}': line {n} has no value for '{col}'")
            if isinstance(v, (dict, list)):
                raise QuantbenchError(
                    f"dataset '{path}': line {n}: '{col}' must be a string or number"
                )
            values.append(v)
        texts.append(str(values[0]))
        if pairs is not None:
            pairs.append(str(values[1]))
        raw_labels.append(values[-1])
    labels, classes, int_labels = _label_indices(raw_labels)
    return _text_dataset(spec, tokenizer, texts, pairs, labels, classes, int_labels)


def _is_int_label(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return v >= 0
    return isinstance(v, str) and _INT_LABEL.fullmatch(v) is not None


def _label_indices(raw: list[Any]) -> tuple[list[int], list[str], bool]:
    """Integer labels are class indices; other labels index their sorted unique strings."""
    if all(_is_int_label(v) for v in raw):
        labels = [int(v) for v in raw]
        return labels, [str(i) for i in range(max(labels) + 1)], True
    names = [str(v).strip() for v in raw]
    classes = sorted(set(names))
    index = {c: i for i, c in enumerate(classes)}
    return [index[c] for c in names], classes, False
