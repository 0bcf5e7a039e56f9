"""Shared fixtures: tiny models built from configs, never downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quantbench.runner import quiet_libraries

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the hub
quiet_libraries()


@pytest.fixture(autouse=True, scope="session")
def _store_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Runs in tests go to a throwaway results store, never ./quantbench.db."""
    path = tmp_path_factory.mktemp("store") / "quantbench.db"
    old = os.environ.get("QUANTBENCH_STORE")
    os.environ["QUANTBENCH_STORE"] = str(path)
    yield
    if old is None:
        os.environ.pop("QUANTBENCH_STORE", None)
    else:
        os.environ["QUANTBENCH_STORE"] = old


def _tiny_bert_config(**extra):
    from transformers import BertConfig

    base = dict(
        vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )  # fmt: skip
    return BertConfig(**{**base, **extra})


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A save_pretrained directory of a 2-layer BERT (base model, no head)."""
    import torch
    from transformers import BertModel

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("tiny-bert")
    BertModel(_tiny_bert_config()).save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A save_pretrained directory of a 2-layer BERT sequence classifier (3 labels)."""
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("tiny-clf")
    BertForSequenceClassification(_tiny_bert_config(num_labels=3)).save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def resnet18_state_dict(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision resnet18 state_dict with 10 classes, as a user would save it."""
    import torch
    import torchvision

    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("sd") / "resnet18-10.pt"
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), path)
    return path


def fast_overrides(**kw):
    """Spec overrides for a tiny, quick run."""
    base = {
        "image_sizes": [32, 48],
        "vision_batch_sizes": [1, 2],
        "seq_lens": [8, 16],
        "text_batch_sizes": [1, 2],
        "ref_image_size": 32,
        "ref_seq_len": 16,
        "min_runs": 3,
        "min_time_s": 0.0,
        "warmup": 1,
        "calib_batches": 2,
        "calib_batch_size": 2,
        "fidelity_batch_size": 2,
    }
    base.update(kw)
    return base


DIGITS_SIZE = 16  # px: the 8x8 digits upscaled, as the example CNN expects


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's digits as ImageFolder PNGs: train/ (1200) and test/ (597)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("digits")
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    for rank, i in enumerate(order):
        split = "train" if rank < 1200 else "test"
        d = root / split / str(y[i])
        d.mkdir(parents=True, exist_ok=True)
        img = (x[i].reshape(8, 8) * 255 / 16).astype("uint8")
        Image.fromarray(img).resize((DIGITS_SIZE, DIGITS_SIZE), Image.BILINEAR).save(d / f"{i}.png")
    return root


def digits_spec(path: Path, **kw):
    return {"path": str(path), "resize": DIGITS_SIZE, "crop": DIGITS_SIZE,
            "mean": [0.5] * 3, "std": [0.5] * 3, **kw}  # fmt: skip


@pytest.fixture(scope="session")
def digits_model(digits_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(model name, state_dict path): examples/digits_cnn.py trained on digits/train."""
    import torch

    from quantbench.datasets import load_dataset, parse_dataset
    from quantbench.models import load_model

    name = f"py:{Path(__file__).parent.parent / 'examples' / 'digits_cnn.py'}:DigitsCNN"
    torch.manual_seed(0)
    model = load_model(name, "random").module.train()
    train = load_dataset(parse_dataset(digits_spec(digits_dir / "train")))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    batches = list(train.batches(train.size))  # decoded once, shuffled each epoch
    (xs,), ys = batches[0]
    for _ in range(8):
        perm = torch.randperm(train.size, generator=g)
        for i in range(0, train.size, 64):
            x, y = xs[perm[i : i + 64]], ys[perm[i : i + 64]]
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    path = tmp_path_factory.mktemp("digits-model") / "digits_cnn.pt"
    torch.save(model.state_dict(), path)
    return name, path


_POS = ["good", "great", "fine", "nice", "happy"]
_NEG = ["bad", "awful", "poor", "sad", "ugly"]
_FILL = ["the", "a", "movie", "film", "was", "is", "very", "plot", "acting", "it", "and", "so"]


def _sentiment_rows(n: int, seed: int) -> list[dict]:
    """A synthetic task: label 1 when the sentence holds a positive word, 0 a negative one."""
    import random

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randrange(2)
        words = rng.choices(_FILL, k=rng.randint(3, 9))
        words.insert(rng.randrange(len(words) + 1), rng.choice(_POS if label else _NEG))
        rows.append({"text": " ".join(words), "label": label})
    return rows


@pytest.fixture(scope="session")
def sentiment(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(classifier directory with its tokenizer, test CSV): a 2-layer BERT trained in the
    fixture on the synthetic sentiment task until it is near perfect."""
    import csv

    import torch
    from transformers import BertForSequenceClassification, BertTokenizer

    root = tmp_path_factory.mktemp("sentiment")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_POS, *_NEG, *_FILL]
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})
    torch.manual_seed(0)
    model = BertForSequenceClassification(_tiny_bert_config(num_labels=2, vocab_size=len(vocab)))
    train = _sentiment_rows(512, seed=1)
    enc = tok([r["text"] for r in train], padding=True, return_tensors="pt")
    labels = torch.tensor([r["label"] for r in train])
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(120):
        idx = torch.randint(0, len(train), (32,))
        out = model(input_ids=enc["input_ids"][idx], attention_mask=enc["attention_mask"][idx],
                    labels=labels[idx])  # fmt: skip
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    model.eval()
    d = root / "model"
    model.save_pretrained(d)
    tok.save_pretrained(d)
    test = root / "test.csv"
    with test.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["text", "label"])
        w.writeheader()
        w.writerows(_sentiment_rows(200, seed=2))
    return d, test
