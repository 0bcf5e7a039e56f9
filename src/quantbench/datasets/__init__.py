"""Dataset registry: labelled images, labelled texts and plain sentences for evaluation
and calibration.

Three kinds, inferred from the path when not given:

* ``imagefolder`` -- a directory ``root/<class>/<image>`` (torchvision ImageFolder layout);
* ``text`` -- a ``.csv``/``.tsv`` (header row), ``.jsonl`` or ``.json`` file of labelled texts;
* ``sentences`` -- a ``.txt`` file, one sentence per non-empty line (no labels).

Validation of the spec is cheap (nothing is decoded); :func:`load_dataset` reads the
files, skips images that do not decode (and says which) and tokenizes texts.

Example::

    >>> from quantbench.datasets import parse_dataset, load_dataset
    >>> spec = parse_dataset({"path": "val/", "limit": 500})      # doctest: +SKIP
    >>> data = load_dataset(spec)                                  # doctest: +SKIP
    >>> for (images,), labels in data.batches(32):                 # doctest: +SKIP
    ...     logits = model(images)
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantbench import memory
from quantbench.errors import QuantbenchError, first_line, unknown_name

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

IMAGEFOLDER, TEXT, SENTENCES, MEMORY = "imagefolder", "text", "sentences", "memory"

KINDS: dict[str, str] = {
    IMAGEFOLDER: "directory of <class>/<image> files (torchvision ImageFolder layout)",
    TEXT: "labelled texts: .csv/.tsv with a header row, .jsonl or .json list of objects",
    SENTENCES: "plain .txt file, one sentence per non-empty line (no labels)",
    MEMORY: "batches handed to the Python API (a DataLoader or an iterable of batches)",
}

_SUFFIX_KIND = {
    ".csv": TEXT,
    ".tsv": TEXT,
    ".jsonl": TEXT,
    ".json": TEXT,
    ".txt": SENTENCES,
}

# torchvision.datasets.folder.IMG_EXTENSIONS, without importing torchvision here.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

_INT_LABEL = re.compile(r"\s*\+?\d+\s*")


@dataclass(frozen=True)
class DatasetSpec:
    """Where the data is and how to turn it into model inputs.

    Example::

        >>> DatasetSpec("reviews.csv", "text", limit=100).max_length
        128
    """

    path: str
    kind: str
    limit: int | None = None  # evaluate on a seeded random subset of at most this many
    seed: int = 0
    # imagefolder
    resize: int = 256  # shorter side resized to this, then center crop
    crop: int = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    # text
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    max_length: int = 128

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML/JSON-friendly dict; ``parse_dataset(spec.to_dict()) == spec``."""
        d = dataclasses.asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d


_SPEC_FIELDS = [f.name for f in dataclasses.fields(DatasetSpec)]


def list_kinds() -> list[tuple[str, str]]:
    """(kind, description) of every dataset kind."""
    return list(KINDS.items())


# --------------------------------------------------------------------------- spec


def _infer_kind(path: Path, what: str) -> str:
    if path.is_dir():
        return IMAGEFOLDER
    kind = _SUFFIX_KIND.get(path.suffix.lower())
    if kind is None:
        raise QuantbenchError(
            f"{what} '{path}': cannot tell its kind from the name (a directory is imagefolder, "
            f".csv/.tsv/.jsonl/.json is text, .txt is sentences); set kind: one of "
            f"{', '.join(KINDS)}"
        )
    return kind


def _check_int(value: Any, name: str, what: str, path: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise QuantbenchError(
            f"{what} '{path}': {name} must be an integer >= {minimum}, got {value!r}"
        )
    return value


def _check_triple(value: Any, name: str, what: str, path: Any, positive: bool) -> tuple:
    ok = isinstance(value, (list, tuple)) and len(value) == 3
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if ok and positive:
        ok = all(v > 0 for v in value)
    if not ok:
        need = "3 positive numbers" if positive else "3 numbers (one per RGB channel)"
        raise QuantbenchError(f"{what} '{path}': {name} must be {need}, got {value!r}")
    return tuple(float(v) for v in value)


def _check_column(value: Any, name: str, what: str, path: Any, optional: bool = False) -> Any:
    if optional and value is None:
        return None
    if not isinstance(value, str) or not value:
        raise QuantbenchError(f"{what} '{path}': {name} must be a column name, got {value!r}")
    return value


def parse_dataset(value: str | dict[str, Any], what: str = "dataset") -> DatasetSpec:
    """A path (kind inferred) or a mapping ``{"path": ..., "kind": ..., <field>: ...}``.

    Cheap checks only (nothing is decoded): the path exists, the kind is known and fits
    the path, no unknown keys, and values are in range.

    Example::

        >>> import tempfile, pathlib
        >>> d = tempfile.mkdtemp()
        >>> parse_dataset({"path": d, "limit": 10}).kind
        'imagefolder'
    """
    if isinstance(value, (str, os.PathLike)):
        raw: dict[str, Any] = {"path": os.fspath(value)}
    elif isinstance(value, dict):
        raw = dict(value)
    else:
        raise QuantbenchError(
            f"{what} must be a path or a mapping with a 'path', got {type(value).__name__}"
        )
    if "path" not in raw or not isinstance(raw["path"], (str, os.PathLike)) or not raw["path"]:
        raise QuantbenchError(f"{what} needs a 'path', got {value!r}")
    if memory.is_memory(raw["path"]):  # batches handed to the Python API
        memory.get(str(raw["path"]), "dataset")
        return DatasetSpec(path=str(raw["path"]), kind=MEMORY)
    path = Path(os.fspath(raw.pop("path"))).expanduser()
    unknown = sorted(set(raw) - set(_SPEC_FIELDS))
    if unknown:
        raise QuantbenchError(
            f"{what} '{path}': unknown keys {unknown} (valid: {', '.join(_SPEC_FIELDS)})"
        )
    if not path.exists():
        raise QuantbenchError(f"{what} '{path}' does not exist")
    kind = raw.pop("kind", None)
    if kind is None:
        kind = _infer_kind(path, what)
    elif kind not in KINDS:
        raise QuantbenchError(f"{what} '{path}': {unknown_name('dataset kind', str(kind), KINDS)}")
    if kind == IMAGEFOLDER and not path.is_dir():
        raise QuantbenchError(
            f"{what} '{path}': kind imagefolder needs a directory of <class>/<image>, got a file"
        )
    if kind != IMAGEFOLDER and path.is_dir():
        raise QuantbenchError(f"{what} '{path}': kind {kind} needs a file, got a directory")

    out: dict[str, Any] = {}
    if raw.get("limit") is not None:
        out["limit"] = _check_int(raw.pop("limit"), "limit", what, path)
    raw.pop("limit", None)
    for name, minimum in (("seed", 0), ("resize", 1), ("crop", 1), ("max_length", 1)):
        if name in raw:
            out[name] = _check_int(raw.pop(name), name.replace("_", "-"), what, path, minimum)
    for name in ("mean", "std"):
        if name in raw:
            out[name] = _check_triple(raw.pop(name), name, what, path, positive=name == "std")
    for name in ("text_column", "label_column", "text_pair_column"):
        if name in raw:
            out[name] = _check_column(
                raw.pop(name), name.replace("_", "-"), what, path, name == "text_pair_column"
            )
    spec = DatasetSpec(path=str(path), kind=kind, **out)
    if spec.crop > spec.resize:
        raise QuantbenchError(
            f"{what} '{path}': crop ({spec.crop}) must not exceed resize ({spec.resize})"
        )
    return spec


# --------------------------------------------------------------------------- dataset


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


def load_dataset(spec: DatasetSpec, tokenizer_dir: str | None = None) -> Dataset:
    """Read ``spec``'s files; texts and sentences are tokenized with ``tokenizer_dir``.

    Images that do not decode are skipped and listed in ``Dataset.skipped``.
    """
    if spec.kind not in KINDS:
        raise unknown_name("dataset kind", spec.kind, KINDS)
    if spec.kind == MEMORY:
        return memory.get(spec.path, "dataset")
    if spec.kind == IMAGEFOLDER:
        return _load_imagefolder(spec)
    tokenizer = _load_tokenizer(spec, tokenizer_dir)
    if spec.kind == SENTENCES:
        return _load_sentences(spec, tokenizer)
    return _load_text(spec, tokenizer)


# --------------------------------------------------------------------------- images


def _scan_images(root: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """(classes, [(file, class index)]) in ImageFolder order; hidden entries ignored."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except PermissionError:
        raise QuantbenchError(
            f"cannot read dataset directory '{root}': permission denied"
        ) from None
    except OSError as e:
        raise QuantbenchError(f"cannot read dataset directory '{root}': {e.strerror}") from None
    entries = [e for e in entries if not e.name.startswith(".")]
    if not entries:
        raise QuantbenchError(f"dataset directory '{root}' is empty")
    classes = [e.name for e in entries if e.is_dir()]
    if not classes:
        raise QuantbenchError(
            f"dataset directory '{root}' has no class subfolders (expected "
            f"{root}/<class>/<image>, the torchvision ImageFolder layout)"
        )
    items: list[tuple[str, int]] = []

    def fail(e: OSError) -> None:
        raise QuantbenchError(f"cannot read dataset directory '{e.filename}': {e.strerror}")

    for index, name in enumerate(classes):
        for dirpath, dirnames, filenames in os.walk(root / name, onerror=fail, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fname in sorted(filenames):
                if not fname.startswith(".") and fname.lower().endswith(IMAGE_EXTENSIONS):
                    items.append((os.path.join(dirpath, fname), index))
    if not items:
        raise QuantbenchError(
            f"dataset directory '{root}' has no image files in its {len(classes)} class "
            f"subfolders (extensions: {', '.join(IMAGE_EXTENSIONS)})"
        )
    return classes, items


def _decode_problem(path: str) -> str | None:
    """None if ``path`` decodes completely, else why not."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
    except Exception as e:  # UnidentifiedImageError, OSError (truncated), DecompressionBomb...
        return first_line(e)
    return None


def _load_imagefolder(spec: DatasetSpec) -> Dataset:
    from concurrent.futures import ThreadPoolExecutor

    root = Path(spec.path)
    if not root.is_dir():
        raise QuantbenchError(f"dataset '{root}' is not a directory (kind imagefolder)")
    classes, items = _scan_images(root)
    order = _subset_order(len(items), spec)
    want = len(items) if spec.limit is None else min(spec.limit, len(items))
    good: list[int] = []
    skipped: list[tuple[str, str]] = []
    pos = 0
    # Walk the (seeded) order, checking that files decode, until `want` good ones are found.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        while len(good) < want and pos < len(order):
            chunk = order[pos : pos + max(want - len(good), 8)]
            pos += len(chunk)
            for i, problem in zip(
                chunk, pool.map(_decode_problem, [items[i][0] for i in chunk]), strict=True
            ):
                if problem is None:
                    if len(good) < want:
                        good.append(i)
                else:
                    skipped.append((items[i][0], problem))
    if not good:
        file, reason = skipped[0]
        raise QuantbenchError(
            f"none of the {len(skipped)} images in dataset '{root}' could be decoded "
            f"(e.g. '{file}': {reason})"
        )
    good.sort()
    skipped.sort()
    return Dataset(
        spec=spec,
        kind=IMAGEFOLDER,
        size=len(good),
        classes=classes,
        skipped=skipped,
        _items=[items[i][0] for i in good],
        _labels=[items[i][1] for i in good],
    )


# --------------------------------------------------------------------------- texts

_TOKENIZER_FILES = ("tokenizer.json", "merges.txt", "tekken.json")


def _has_tokenizer_files(d: Path) -> bool:
    for f in d.iterdir():
        name = f.name.lower()
        if name in _TOKENIZER_FILES or name.startswith("vocab.") or name.endswith(".model"):
            return True
    return False


def _load_tokenizer(spec: DatasetSpec, tokenizer_dir: str | None) -> Any:
    if tokenizer_dir is None:
        raise QuantbenchError(
            f"dataset '{spec.path}' ({spec.kind}) needs a tokenizer directory, and none was given"
        )
    d = Path(tokenizer_dir).expanduser()
    if not d.is_dir():
        raise QuantbenchError(f"no tokenizer in '{tokenizer_dir}': not a directory")
    try:
        has_files = _has_tokenizer_files(d)
    except OSError as e:
        raise QuantbenchError(f"no tokenizer in '{tokenizer_dir}': {e.strerror}") from None
    if not has_files:
        raise QuantbenchError(
            f"no tokenizer in '{tokenizer_dir}' (no tokenizer.json, vocab.* or *.model file; "
            "save one there with tokenizer.save_pretrained)"
        )
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(d), local_files_only=True)
    except Exception as e:
        raise QuantbenchError(
            f"no tokenizer in '{tokenizer_dir}': {first_line(e, with_type=False)}"
        ) from None
    if len(tok) <= len(set(tok.all_special_ids)):  # built from defaults: nothing real loaded
        raise QuantbenchError(
            f"no tokenizer in '{tokenizer_dir}': its vocabulary holds only special tokens"
        )
    return tok


def _tokenize(
    tokenizer: Any, spec: DatasetSpec, texts: list[str], pairs: list[str] | None
) -> list[list[int]]:
    if not texts:
        return []
    enc = tokenizer(texts, pairs, truncation=True, max_length=spec.max_length)
    return [list(ids) for ids in enc["input_ids"]]


def _text_dataset(
    spec: DatasetSpec,
    tokenizer: Any,
    texts: list[str],
    pairs: list[str] | None,
    labels: list[int] | None,
    classes: list[str] | None,
    int_labels: bool = False,
) -> Dataset:
    keep = _pick(len(texts), spec)
    texts = [texts[i] for i in keep]
    pairs = None if pairs is None else [pairs[i] for i in keep]
    shown = texts if pairs is None else [f"{a} || {b}" for a, b in zip(texts, pairs, strict=True)]
    pad = tokenizer.pad_token_id
    return Dataset(
        spec=spec,
        kind=spec.kind,
        size=len(keep),
        classes=classes,
        skipped=[],
        _items=_tokenize(tokenizer, spec, texts, pairs),
        _labels=None if labels is None else [labels[i] for i in keep],
        _texts=shown,
        _pad_id=int(pad) if pad is not None else 0,
        _pad_left=getattr(tokenizer, "padding_side", "right") == "left",
        _int_labels=int_labels,
    )


def _read_text_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise QuantbenchError(
            f"dataset '{path}' is not UTF-8 text (byte {e.start}: {e.reason})"
        ) from None
    except OSError as e:
        raise QuantbenchError(f"cannot read dataset '{path}': {e.strerror}") from None


def _load_sentences(spec: DatasetSpec, tokenizer: Any) -> Dataset:
    path = Path(spec.path)
    lines = [line.strip() for line in _read_text_file(path).splitlines()]
    sentences = [s for s in lines if s]
    if not sentences:
        raise QuantbenchError(f"dataset '{path}' has no sentences (one per non-empty line)")
    return _text_dataset(spec, tokenizer, sentences, None, None, None)


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
    path = memory.put("dataset", ds, label)
    ds.spec = DatasetSpec(path=path, kind=MEMORY)
    return path


def kind_family(spec: DatasetSpec) -> str:
    """The model family a dataset feeds: vision for images, text otherwise."""
    if spec.kind == MEMORY:
        return memory.get(spec.path, "dataset").family
    return "vision" if spec.kind == IMAGEFOLDER else "text"


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


# --------------------------------------------------------------------------- checks


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
