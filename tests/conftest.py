"""Shared fixtures: tiny models built from configs, never downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quantbench.runner import quiet_libraries

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the hub
quiet_libraries()


def _tiny_bert_config(**extra):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, **extra,
    )  # fmt: skip


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
