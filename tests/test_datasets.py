"""Dataset registry (quantbench.datasets) and task metrics (quantbench.measure.accuracy).

Everything is built in tmp_path: tiny image folders, CSV/JSONL/JSON/TXT files and a
WordPiece tokenizer written offline.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from quantbench.datasets import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    KINDS,
    DatasetSpec,
    check_labels,
    list_kinds,
    load_dataset,
    parse_dataset,
)
from quantbench.errors import QuantbenchError
from quantbench.measure.accuracy import (
    classification_metrics,
    embedding_fidelity,
    relative,
)

WORDS = ["good", "bad", "movie", "film", "great", "awful", "the", "a", "is", "not", "plot"]
SMALL = {"resize": 32, "crop": 24}  # image transform sizes that keep the tests quick


def one_line_error(excinfo: pytest.ExceptionInfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    return msg


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT WordPiece tokenizer saved with save_pretrained (no download)."""
    from transformers import BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    d = tmp_path_factory.mktemp("tok")
    # transformers 5: `vocab` takes the dict (`vocab_file=` would be ignored silently).
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(d)
    return d


def _png(path: Path, color: tuple[int, ...], mode: str = "RGB", size=(40, 30)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    fill = color[0] if mode == "L" else color
    Image.new(mode, size, fill).save(path)


def make_imagefolder(root: Path, per_class: int = 3, corrupt: bool = True) -> Path:
    """cat/dog/fish with `per_class` PNGs each (RGB, grayscale, RGBA), plus junk."""
    modes = ["RGB", "L", "RGBA"]
    for c, name in enumerate(["cat", "dog", "fish"]):
        for i in range(per_class):
            mode = modes[i % 3]
            color = (40 * c + 10 * i, 100, 200, 255)[: len(mode) if mode != "L" else 1]
            _png(root / name / f"{i:02d}.png", color, mode)
    if corrupt:
        (root / "dog" / "broken.png").write_bytes(b"not an image at all")
        good = (root / "cat" / "00.png").read_bytes()
        (root / "fish" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "cat" / "notes.txt").write_text("ignored: not an image")
    _png(root / ".ipynb_checkpoints" / "x.png", (0, 0, 0))  # hidden: not a class
    return root


@pytest.fixture
def imagefolder(tmp_path: Path) -> Path:
    return make_imagefolder(tmp_path / "images")


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    return path


def reviews(n: int = 6) -> list[dict]:
    out = []
    for i in range(n):
        pos = i % 2 == 0
        out.append(
            {
                "text": "the movie is good" if pos else "the film is not great " * 10,
                "hypothesis": "great plot" if pos else "awful",
                "label": "pos" if pos else "neg",
            }
        )
    return out


# --------------------------------------------------------------------------- parse_dataset


def test_kinds_listed():
    assert [k for k, _ in list_kinds()] == ["imagefolder", "text", "sentences", "memory", "tensors"]
    assert set(KINDS) == {"imagefolder", "text", "sentences", "memory", "tensors"}


def test_parse_infers_kind(tmp_path: Path, imagefolder: Path):
    for name, kind in [("a.csv", "text"), ("a.jsonl", "text"), ("a.json", "text"),
                       ("a.tsv", "text"), ("a.txt", "sentences")]:  # fmt: skip
        (tmp_path / name).write_text("x")
        spec = parse_dataset(str(tmp_path / name))
        assert spec.kind == kind
        assert spec.limit is None and spec.max_length == 128
    spec = parse_dataset({"path": str(imagefolder), "limit": 5, "crop": 200})
    assert (spec.kind, spec.limit, spec.crop, spec.resize) == ("imagefolder", 5, 200, 256)
    assert spec.mean == IMAGENET_MEAN and spec.std == IMAGENET_STD


def test_parse_round_trip(tmp_path: Path):
    (tmp_path / "a.csv").write_text("x")
    spec = parse_dataset(
        {"path": str(tmp_path / "a.csv"), "text_pair_column": "b", "seed": 3,
         "mean": [0.5, 0.5, 0.5], "max_length": 64}
    )  # fmt: skip
    d = spec.to_dict()
    assert d["mean"] == [0.5, 0.5, 0.5] and d["kind"] == "text"
    json.dumps(d)
    assert parse_dataset(d) == spec


@pytest.mark.parametrize(
    "extra, needle",
    [
        ({"limt": 3}, "unknown keys ['limt']"),
        ({"kind": "imagefoldr"}, "Did you mean 'imagefolder'"),
        ({"limit": 0}, "limit must be an integer >= 1"),
        ({"limit": True}, "limit must be an integer >= 1"),
        ({"crop": 300}, "crop (300) must not exceed resize (256)"),
        ({"mean": [0.5, 0.5]}, "mean must be 3 numbers"),
        ({"std": [0.2, 0.0, 0.2]}, "std must be 3 positive numbers"),
        ({"max_length": 0}, "max-length must be an integer >= 1"),
        ({"kind": "text"}, "kind text needs a file, got a directory"),
    ],
)
def test_parse_rejects(imagefolder: Path, extra: dict, needle: str):
    with pytest.raises(QuantbenchError) as e:
        parse_dataset({"path": str(imagefolder), **extra}, what="eval dataset")
    msg = one_line_error(e)
    assert needle in msg
    assert msg.startswith(f"eval dataset '{imagefolder}'")


def test_parse_rejects_paths(tmp_path: Path):
    with pytest.raises(QuantbenchError, match="does not exist"):
        parse_dataset(str(tmp_path / "missing.csv"))
    (tmp_path / "data.parquet").write_text("x")
    with pytest.raises(QuantbenchError, match="cannot tell its kind") as e:
        parse_dataset(str(tmp_path / "data.parquet"))
    one_line_error(e)
    with pytest.raises(QuantbenchError, match="kind imagefolder needs a directory"):
        parse_dataset({"path": str(tmp_path / "data.parquet"), "kind": "imagefolder"})
    with pytest.raises(QuantbenchError, match="needs a 'path'"):
        parse_dataset({"kind": "text"})
    # An explicit kind overrides the suffix.
    assert parse_dataset({"path": str(tmp_path / "data.parquet"), "kind": "sentences"}).kind == (
        "sentences"
    )


# --------------------------------------------------------------------------- imagefolder


def test_imagefolder_loads_and_skips_corrupt(imagefolder: Path):
    import torch

    data = load_dataset(parse_dataset({"path": str(imagefolder), **SMALL}))
    assert data.kind == "imagefolder"
    assert data.classes == ["cat", "dog", "fish"]
    assert data.size == 9
    assert sorted(Path(f).name for f, _ in data.skipped) == ["broken.png", "truncated.png"]
    assert all(reason for _, reason in data.skipped)
    batches = list(data.batches(4))
    assert [b[0][0].shape[0] for b in batches] == [4, 4, 1]
    (x,), y = batches[0]
    assert x.shape == (4, 3, 24, 24) and x.dtype == torch.float32
    assert y.dtype == torch.long
    labels = torch.cat([b[1] for b in batches]).tolist()
    assert labels == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    with pytest.raises(QuantbenchError, match="has no texts"):
        data.texts()


def test_imagefolder_normalization(tmp_path: Path):
    import torch

    _png(tmp_path / "d" / "white" / "a.png", (255, 255, 255))
    _png(tmp_path / "d" / "gray" / "b.png", (255,), mode="L")  # grayscale -> 3 channels
    data = load_dataset(parse_dataset({"path": str(tmp_path / "d"), **SMALL}))
    (x,), y = next(data.batches(2))
    expected = [(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    for row in range(2):
        assert torch.allclose(x[row].mean(dim=(1, 2)), torch.tensor(expected), atol=1e-5)
    assert y.tolist() == [0, 1]  # gray, white (sorted folder names)


def test_imagefolder_indices_and_limit(tmp_path: Path):
    import torch

    root = make_imagefolder(tmp_path / "im", per_class=4)  # 12 good images, 2 corrupt
    full = load_dataset(parse_dataset({"path": str(root), **SMALL}))
    _, y = next(full.batches(3, indices=[11, 0, 5]))
    assert y.tolist() == [2, 0, 1]

    def pick(limit: int, seed: int):
        data = load_dataset(
            parse_dataset({"path": str(root), "limit": limit, "seed": seed, **SMALL})
        )
        (x,), y = next(data.batches(100))
        return data, x, y

    a, xa, ya = pick(5, 0)
    b, xb, yb = pick(5, 0)
    assert a.size == 5 and torch.equal(xa, xb) and torch.equal(ya, yb)
    assert a.classes == ["cat", "dog", "fish"]  # a subset keeps the full class list
    assert ya.tolist() == sorted(ya.tolist())  # order-stable
    sizes_and_data = [pick(5, s) for s in (1, 2, 3)]
    assert any(not torch.equal(x, xa) for _, x, _ in sizes_and_data)
    # A limit above the number of decodable images keeps them all.
    assert pick(50, 0)[0].size == 12


def test_imagefolder_errors(tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(QuantbenchError, match="is empty") as e:
        load_dataset(parse_dataset(str(empty)))
    assert str(empty) in one_line_error(e)

    flat = tmp_path / "flat"
    _png(flat / "a.png", (1, 2, 3))
    with pytest.raises(QuantbenchError, match="no class subfolders") as e:
        load_dataset(parse_dataset(str(flat)))
    one_line_error(e)

    noimg = tmp_path / "noimg"
    (noimg / "cat").mkdir(parents=True)
    (noimg / "cat" / "readme.md").write_text("x")
    with pytest.raises(QuantbenchError, match="no image files") as e:
        load_dataset(parse_dataset(str(noimg)))
    one_line_error(e)

    bad = tmp_path / "bad"
    for c in ("a", "b"):
        (bad / c).mkdir(parents=True)
        (bad / c / "x.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.raises(QuantbenchError, match="none of the 2 images") as e:
        load_dataset(parse_dataset(str(bad)))
    assert str(bad) in one_line_error(e)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_imagefolder_unreadable(tmp_path: Path):
    root = make_imagefolder(tmp_path / "im", per_class=1, corrupt=False)
    os.chmod(root / "dog", 0)
    try:
        with pytest.raises(QuantbenchError, match="cannot read dataset directory"):
            load_dataset(parse_dataset(str(root)))
    finally:
        os.chmod(root / "dog", 0o755)


def test_imagefolder_unreadable_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = make_imagefolder(tmp_path / "im", per_class=1, corrupt=False)
    spec = parse_dataset(str(root))

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "scandir", denied)
    with pytest.raises(QuantbenchError) as e:
        load_dataset(spec)
    assert f"cannot read dataset directory '{root}': permission denied" in one_line_error(e)


# --------------------------------------------------------------------------- text


def test_csv_pairs(tmp_path: Path, tokenizer_dir: Path):
    import torch

    path = write_csv(tmp_path / "nli.csv", reviews(), ["text", "hypothesis", "label"])
    spec = parse_dataset({"path": str(path), "text_pair_column": "hypothesis", "max_length": 12})
    data = load_dataset(spec, tokenizer_dir=str(tokenizer_dir))
    assert (data.kind, data.size, data.classes) == ("text", 6, ["neg", "pos"])
    assert data.texts()[0] == "the movie is good || great plot"
    (ids, mask), y = next(data.batches(2))
    assert ids.dtype == torch.long and mask.dtype == torch.long
    assert ids.shape == mask.shape and ids.shape[0] == 2
    assert ids.shape[1] == 12  # the long second example is truncated to max_length
    assert y.tolist() == [1, 0]  # pos, neg (sorted label names)
    row = ids[0][mask[0].bool()].tolist()  # the short example is padded
    assert row[0] == 2 and row.count(3) == 2  # [CLS] a [SEP] b [SEP]
    assert mask[0].sum() < 12 and (ids[0][~mask[0].bool()] == 0).all()  # [PAD] = 0
    assert mask[1].all()


def test_jsonl_and_json_int_labels(tmp_path: Path, tokenizer_dir: Path):
    rows = [{"sentence": "good film", "y": 2}, {"sentence": "bad", "y": 0},
            {"sentence": "great", "y": "2"}]  # fmt: skip
    jl = tmp_path / "d.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    js = tmp_path / "d.json"
    js.write_text(json.dumps(rows))
    tsv = tmp_path / "d.tsv"
    tsv.write_text("sentence\ty\n" + "".join(f"{r['sentence']}\t{r['y']}\n" for r in rows))
    for path in (jl, js, tsv):
        spec = parse_dataset({"path": str(path), "text_column": "sentence", "label_column": "y"})
        data = load_dataset(spec, tokenizer_dir=str(tokenizer_dir))
        assert data.classes == ["0", "1", "2"]  # integer labels are the class indices
        (ids, mask), y = next(data.batches(8))
        assert y.tolist() == [2, 0, 2]
        assert ids.shape == (3, 4)  # [CLS] good film [SEP]
        check_labels(data, 3, "m")
        check_labels(data, 5, "m")  # labels may cover only part of a larger head
        with pytest.raises(QuantbenchError) as e:
            check_labels(data, 2, "tiny-clf")
        assert "dataset '" in one_line_error(e)
        assert "has 3 classes but model 'tiny-clf' outputs 2" in str(e.value)


def test_text_errors(tmp_path: Path, tokenizer_dir: Path):
    tok = str(tokenizer_dir)
    path = write_csv(tmp_path / "a.csv", reviews(2), ["text", "hypothesis", "label"])
    spec = parse_dataset({"path": str(path), "label_column": "sentiment"})
    with pytest.raises(QuantbenchError) as e:
        load_dataset(spec, tokenizer_dir=tok)
    assert "no column 'sentiment' (columns: text, hypothesis, label)" in one_line_error(e)
    assert str(path) in str(e.value)

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": 0}\n\n{"text": "b", "label": 1\n')
    with pytest.raises(QuantbenchError, match="line 3 is not valid JSON") as e:
        load_dataset(parse_dataset(str(bad)), tokenizer_dir=tok)
    one_line_error(e)

    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(QuantbenchError, match="is empty"):
        load_dataset(parse_dataset(str(empty)), tokenizer_dir=tok)
    header = tmp_path / "header.csv"
    header.write_text("text,label\n")
    with pytest.raises(QuantbenchError, match="has no rows"):
        load_dataset(parse_dataset(str(header)), tokenizer_dir=tok)
    hole = tmp_path / "hole.csv"
    hole.write_text("text,label\ngood,1\nbad,\n")
    with pytest.raises(QuantbenchError, match="line 3 has no value for 'label'"):
        load_dataset(parse_dataset(str(hole)), tokenizer_dir=tok)


def test_tokenizer_required(tmp_path: Path, tiny_bert_dir: Path):
    (tmp_path / "s.txt").write_text("good movie\n")
    spec = parse_dataset(str(tmp_path / "s.txt"))
    with pytest.raises(QuantbenchError, match="needs a tokenizer directory") as e:
        load_dataset(spec)
    one_line_error(e)
    # A model directory without tokenizer files, and one with only a vocab file.
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n")
    # transformers 5 ignores BertTokenizerFast(vocab_file=...): only special tokens are saved.
    from transformers import BertTokenizerFast

    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS]))
    hollow = tmp_path / "hollow"
    BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt")).save_pretrained(hollow)
    for d in (tiny_bert_dir, tmp_path / "missing", lone, hollow):
        with pytest.raises(QuantbenchError) as e:
            load_dataset(spec, tokenizer_dir=str(d))
        assert one_line_error(e).startswith(f"no tokenizer in '{d}'")


# --------------------------------------------------------------------------- sentences


def test_sentences_limit_and_split(tmp_path: Path, tokenizer_dir: Path):
    lines = [f"{w} movie" for w in WORDS] + ["", "   "]
    path = tmp_path / "s.txt"
    path.write_text("\n".join(lines))
    tok = str(tokenizer_dir)
    full = load_dataset(parse_dataset(str(path)), tokenizer_dir=tok)
    assert (full.size, full.classes, full.skipped) == (len(WORDS), None, [])
    (ids, mask), y = next(full.batches(4))
    assert y is None and ids.shape == (4, 4) and mask.all()
    check_labels(full, 7, "anything")  # no-op for sentences

    def texts(limit: int, seed: int) -> list[str]:
        spec = parse_dataset({"path": str(path), "limit": limit, "seed": seed})
        return load_dataset(spec, tokenizer_dir=tok).texts()

    a = texts(4, 0)
    assert len(a) == 4 and a == texts(4, 0)
    assert a == [t for t in full.texts() if t in a]  # order-stable
    assert any(texts(4, s) != a for s in (1, 2, 3))
    assert texts(100, 0) == full.texts()

    calib, evals = full.split(4, seed=0)
    assert len(calib) == 4 and len(evals) == full.size - 4
    assert not set(calib) & set(evals) and sorted(calib + evals) == list(range(full.size))
    assert full.split(4, seed=0) == (calib, evals)
    assert full.split(4, seed=1) != (calib, evals)
    calib, evals = full.split(1000)
    assert len(evals) == 1 and len(calib) == full.size - 1
    assert full.split(0) == ([], list(range(full.size)))
    with pytest.raises(QuantbenchError):
        full.split(-1)

    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(QuantbenchError, match="no sentences"):
        load_dataset(parse_dataset(str(empty)), tokenizer_dir=tok)


def test_check_labels_imagefolder(imagefolder: Path):
    data = load_dataset(parse_dataset({"path": str(imagefolder), **SMALL}))
    check_labels(data, 3, "tv:resnet18")
    for outputs in (2, 1000):
        with pytest.raises(QuantbenchError) as e:
            check_labels(data, outputs, "resnet18")
        msg = one_line_error(e)
        assert (
            f"dataset '{imagefolder}' has 3 classes but model 'resnet18' outputs {outputs}" in msg
        )


def test_spec_defaults():
    spec = DatasetSpec("x", "imagefolder")
    assert (spec.resize, spec.crop, spec.seed, spec.label_column) == (256, 224, 0, "label")


# --------------------------------------------------------------------------- metrics


def test_classification_metrics():
    import torch

    labels = torch.tensor([0, 1, 1, 0])
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]])  # preds 0 1 0 1
    m = classification_metrics(logits, labels)
    assert m["top1"] == 0.5 and m["macro_f1"] == pytest.approx(0.5) and m["n"] == 4
    assert "top5" not in m

    preds = torch.tensor([0, 1, 1, 1])  # class 0: F1 2/3; class 1: F1 0.8
    m = classification_metrics(torch.nn.functional.one_hot(preds, 2).float(), [0, 0, 1, 1])
    assert m["top1"] == 0.75
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)

    # Six classes: label ranked 1st, 3rd, 6th -> top1 1/3, top5 2/3.
    scores = torch.arange(6, 0, -1).float()  # class 0 best ... class 5 worst
    logits = scores.repeat(3, 1)
    m = classification_metrics(logits, torch.tensor([0, 2, 5]))
    assert m["top1"] == pytest.approx(1 / 3) and m["top5"] == pytest.approx(2 / 3)

    with pytest.raises(ValueError):
        classification_metrics(torch.zeros(3, 2), torch.zeros(2))


def test_embedding_fidelity():
    import torch

    g = torch.Generator().manual_seed(0)
    ref = torch.randn(8, 16, generator=g)
    same = embedding_fidelity(ref, ref.clone())
    assert same["mean_cosine"] == pytest.approx(1.0) and same["min_cosine"] == pytest.approx(1.0)
    assert same["spearman"] == pytest.approx(1.0) and same["n"] == 8
    scaled = embedding_fidelity(ref, 3 * ref)  # cosine ignores scale
    assert scaled["spearman"] == pytest.approx(1.0)

    noisy = embedding_fidelity(ref, ref + 0.5 * torch.randn(8, 16, generator=g))
    assert 0.5 < noisy["mean_cosine"] < 1.0 and noisy["min_cosine"] <= noisy["mean_cosine"]
    assert 0.0 < noisy["spearman"] < 1.0

    shuffled = embedding_fidelity(ref, ref[torch.randperm(8, generator=g)])
    assert shuffled["mean_cosine"] < 0.5 and shuffled["spearman"] < noisy["spearman"]

    two = embedding_fidelity(ref[:2], ref[:2])
    assert two["spearman"] is None and two["n"] == 2
    with pytest.raises(ValueError):
        embedding_fidelity(ref, ref[:, :4])


def test_relative():
    assert relative(0.45, 0.5) == pytest.approx(0.9)
    assert relative(None, 0.5) is None and relative(0.5, None) is None
    assert relative(0.3, 0) is None
