"""Kind ``tensors``: a model's inputs as tensors in a file, for models of your own
(tabular rows, audio, several inputs).

- ``.npy``: one array, the first dimension is the examples (one input, no labels);
- ``.npz``: one array per input, named by its key (the forward's argument names, when
  they match); a key named ``label``/``labels``/``y``/``target``/``targets`` (or the
  dataset's ``label_column``) holds the class indices;
- ``.pt``/``.pth``: ``torch.save`` of a tensor, a tuple/list or a dict of tensors (read
  with ``weights_only=True``: never pickled code); a tuple ``(x, y)`` whose ``y`` is 1-D
  integers is inputs and labels, as ``TensorDataset`` holds them;
- ``.csv``/``.tsv``: a header row and numeric features, one row per example; the
  ``label`` column (``label_column``) holds class indices.

Files are bounded (:data:`MAX_BYTES`, also what a compressed file expands to), and a
file that is not what its name says is refused in one line.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from quantbench.datasets.base import _pick
from quantbench.datasets.batches import LABEL_KEYS
from quantbench.datasets.in_memory import MemoryDataset, examples_of
from quantbench.datasets.spec import TENSORS, DatasetSpec
from quantbench.errors import QuantbenchError

MAX_BYTES = 2 << 30  # 2 GiB of tensors, on disk or once expanded


def load_tensors(spec: DatasetSpec) -> MemoryDataset:
    """Read a tensors file into examples (``limit``: a seeded subset)."""
    path = Path(spec.path)
    _check_size(path)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        batch = _read_csv(path, spec.label_column)
    elif suffix in (".npy", ".npz"):
        batch = _read_numpy(path, spec.label_column)
    else:
        from quantbench.fileformat import torch_load

        batch = torch_load(path, "a tensors file (torch.save of tensors, a tuple or a dict)")
        if isinstance(batch, dict) and spec.label_column in batch:
            batch = {("label" if k == spec.label_column else k): v for k, v in batch.items()}
    items, labels, names = examples_of([batch], where=f"dataset '{path}'")
    keep = _pick(len(items), spec)
    items = [items[i] for i in keep]
    labels = [labels[i] for i in keep] if labels else None
    from quantbench.datasets.batches import infer_family

    return MemoryDataset(
        spec=spec, kind=TENSORS, size=len(items), skipped=[], _items=items, _labels=labels,
        classes=[str(i) for i in range(max(labels) + 1)] if labels else None,
        _int_labels=True, family=infer_family(items[0][0]), input_names=names,
    )  # fmt: skip


def _check_size(path: Path) -> None:
    size = path.stat().st_size
    if zipfile.is_zipfile(path):  # .npz and torch.save files: what they expand to
        try:
            with zipfile.ZipFile(path) as z:
                size = max(size, sum(i.file_size for i in z.infolist()))
        except (zipfile.BadZipFile, OSError):
            pass  # the reader below says what is wrong
    if size > MAX_BYTES:
        raise QuantbenchError(
            f"dataset '{path}' holds {size / 2**30:.1f} GiB of tensors, more than the "
            f"{MAX_BYTES / 2**30:.0f} GiB quantbench reads; give a subset"
        )


def _tensor(a: Any, path: Path, key: str) -> Any:
    import numpy as np
    import torch

    if a.dtype.kind not in "biuf":
        raise QuantbenchError(
            f"dataset '{path}': array '{key}' holds {a.dtype} values, not numbers"
        )
    if a.ndim == 0:
        raise QuantbenchError(f"dataset '{path}': array '{key}' is a scalar, not examples")
    t = torch.from_numpy(np.ascontiguousarray(a))
    if t.is_floating_point():
        return t.float()
    return t.long() if a.dtype.kind in "iu" else t


def _read_numpy(path: Path, label_column: str) -> Any:
    import numpy as np

    from quantbench.fileformat import expecting, not_a

    npz = path.suffix.lower() == ".npz"
    expected = "a NumPy .npz archive" if npz else "a NumPy .npy array"
    with open(path, "rb") as f:
        head = f.read(6)
    if not head.startswith(b"PK\x03\x04" if npz else b"\x93NUMPY"):
        raise not_a(path, expected)
    with expecting(path, expected, ("a ZIP archive", "binary data")):
        try:
            loaded = np.load(path, allow_pickle=False)  # never pickled objects
            if isinstance(loaded, np.ndarray):
                return _tensor(loaded, path, path.stem)
            with loaded:
                arrays = {k: loaded[k] for k in loaded.files}
        except ValueError as e:
            if "Object arrays" not in str(e):
                raise
            raise QuantbenchError(
                f"dataset '{path}' holds Python objects, not numbers (quantbench never "
                "unpickles them: that can run code); save numeric arrays"
            ) from None
    if not arrays:
        raise QuantbenchError(f"dataset '{path}' holds no array")
    return {("label" if k == label_column else k): _tensor(a, path, k) for k, a in arrays.items()}


def _read_csv(path: Path, label_column: str) -> Any:
    import csv
    import io

    import torch

    from quantbench.datasets.tokens import _read_text_file

    text = _read_text_file(path)
    rows = list(csv.reader(io.StringIO(text), delimiter="\t" if path.suffix == ".tsv" else ","))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise QuantbenchError(f"dataset '{path}' is empty")
    header = rows[0]
    try:
        [float(c) for c in header]
        header, body = [f"f{i}" for i in range(len(header))], rows  # no header row
    except ValueError:
        body = rows[1:]
    if not body:
        raise QuantbenchError(f"dataset '{path}' has a header row and no data")
    label = next((c for c in (label_column, *LABEL_KEYS) if c in header), None)
    values: list[list[float]] = []
    for n, row in enumerate(body, 2 if body is not rows else 1):
        if len(row) != len(header):
            raise QuantbenchError(
                f"dataset '{path}': line {n} has {len(row)} values, the header {len(header)}"
            )
        try:
            values.append([float(c) for c in row])
        except ValueError as e:
            raise QuantbenchError(f"dataset '{path}': line {n}: {e}") from None
    table = torch.tensor(values, dtype=torch.float32)
    features = [i for i, c in enumerate(header) if c != label]
    if not features:
        raise QuantbenchError(f"dataset '{path}' has no feature column besides '{label}'")
    x = table[:, features]
    if label is None:
        return x
    y = table[:, header.index(label)]
    if not torch.equal(y, y.round()) or bool((y < 0).any()):
        raise QuantbenchError(
            f"dataset '{path}': column '{label}' must hold class indices (integers >= 0)"
        )
    return {"x": x, "label": y.long()}
