"""What the text kinds (``text``, ``sentences``) share: reading a UTF-8 file, loading the
tokenizer from a local directory and turning texts into a tokenized dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantbench.datasets.base import Dataset, _pick
from quantbench.datasets.spec import DatasetSpec
from quantbench.errors import QuantbenchError, first_line

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
