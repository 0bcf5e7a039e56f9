"""Shared fixtures: tiny models built from configs, never downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quantbench.runner import quiet_libraries

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the hub
quiet_libraries()

# Every worker of the tests (spawned, or a CLI run in a subprocess: both inherit the
# environment) loads tests/fault_hooks.py, which does nothing unless a test sets
# $QUANTBENCH_FAULT. Production code knows only the generic hook seam.
FAULT_HOOK = f"{Path(__file__).with_name('fault_hooks.py')}:inject_fault"
os.environ.setdefault("QUANTBENCH_TEST_HOOKS", FAULT_HOOK)


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


def load_script(rel_path: str, name: str):
    """Import a script of the repo (examples/, benchmarks/) as a module, by path."""
    import importlib.util

    path = Path(__file__).parent.parent / rel_path
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# examples/digits.py: the same code writes, trains and documents the digits flow.
DIGITS = load_script("examples/digits.py", "quantbench_digits_example")
digits_spec = DIGITS.data_spec


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's digits as ImageFolder PNGs: train/ (1200) and test/ (597)."""
    return DIGITS.write_digits(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="session")
def digits_model(digits_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(model name, state_dict path): examples/digits_cnn.py trained on digits/train."""
    out = tmp_path_factory.mktemp("digits-model") / "digits_cnn.pt"
    return DIGITS.MODEL, DIGITS.train(digits_dir, out)


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
