"""The dataset kinds, :class:`DatasetSpec` (where the data is and how to turn it into
model inputs) and :func:`parse_dataset`, its cheap validation (nothing is decoded)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantbench import handover
from quantbench.errors import QuantbenchError, shown, unknown_name

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
            f"{what} '{path}': {name} must be an integer >= {minimum}, got {shown(value)}"
        )
    return value


def _check_triple(value: Any, name: str, what: str, path: Any, positive: bool) -> tuple:
    ok = isinstance(value, (list, tuple)) and len(value) == 3
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if ok and positive:
        ok = all(v > 0 for v in value)
    if not ok:
        need = "3 positive numbers" if positive else "3 numbers (one per RGB channel)"
        raise QuantbenchError(f"{what} '{path}': {name} must be {need}, got {shown(value)}")
    return tuple(float(v) for v in value)


def _check_column(value: Any, name: str, what: str, path: Any, optional: bool = False) -> Any:
    if optional and value is None:
        return None
    if not isinstance(value, str) or not value:
        raise QuantbenchError(f"{what} '{path}': {name} must be a column name, got {shown(value)}")
    return value


def dataset_arg(value: Any, what: str = "dataset") -> DatasetSpec:
    """A dataset given as a path, a mapping, or (on the command line) an inline YAML
    mapping such as ``'{path: data/val, resize: 16, crop: 16}'``; checked."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        from quantbench.settings.values import inline_mapping

        value = inline_mapping(value, what)
    return parse_dataset(value, what)


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
        raise QuantbenchError(f"{what} needs a 'path', got {shown(value)}")
    if handover.is_memory(raw["path"]):  # batches handed to the Python API
        handover.get(str(raw["path"]), "dataset")
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
