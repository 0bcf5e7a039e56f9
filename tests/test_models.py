"""Model zoo: exact architectures, hf:/tv: sources, weights from files, clear errors."""

from __future__ import annotations

import pytest
import torch

from quantbench import models as zoo
from quantbench.errors import QuantbenchError

# Published parameter counts of the checkpoints the aliases stand for (torchvision's
# model docs; the Hugging Face base models without heads).
PUBLISHED_PARAMS = {
    "bert": 109_482_240,
    "albert": 11_683_584,
    "distilbert": 66_362_880,
    "longformer": 148_659_456,
    "mobilenet_v2": 3_504_872,
    "resnet18": 11_689_512,
    "squeezenet": 1_248_424,
    "mnasnet": 4_383_312,
}


@pytest.mark.parametrize("name", list(zoo.ALIASES))
def test_alias_is_architecture_faithful(name):
    m = zoo.load_model(name)
    assert sum(p.numel() for p in m.module.parameters()) == PUBLISHED_PARAMS[name]
    assert m.random_weights and m.weights.startswith("random (seed 0)")
    x = m.make_inputs(1, 64 if m.family == "vision" else 16)
    with torch.inference_mode():
        out = m.module(*x)
    assert out.shape[0] == 1


@pytest.mark.parametrize("name", ["mobilenet_v2", "mnasnet"])
def test_random_cnns_are_not_degenerate(name):
    # Fresh MobileNetV2/MNASNet shrink activations layer by layer (outputs ~1e-9) unless
    # BatchNorm statistics are re-estimated; then quantization error is all one measures.
    m = zoo.load_model(name)
    assert "BatchNorm statistics re-estimated" in m.weights
    with torch.inference_mode():
        out = m.module(*m.make_inputs(2, 224, seed=3))
    assert out.std() > 0.01
    # models whose random outputs are fine are left as initialised
    assert "re-estimated" not in zoo.load_model("resnet18").weights


def test_random_weights_are_seeded():
    a = zoo.load_model("squeezenet", "random", seed=3).module.state_dict()
    b = zoo.load_model("squeezenet", "random", seed=3).module.state_dict()
    c = zoo.load_model("squeezenet", "random", seed=4).module.state_dict()
    k = "features.0.weight"
    assert torch.equal(a[k], b[k]) and not torch.equal(a[k], c[k])


def test_model_info_limits():
    assert zoo.model_info("bert").max_input_size == 512
    assert zoo.model_info("longformer").max_input_size == 4096
    assert zoo.model_info("resnet18").family == "vision"


def test_unknown_model_lists_valid_names_and_suggests():
    with pytest.raises(QuantbenchError, match="Did you mean 'resnet18'.*Valid models: albert"):
        zoo.model_info("resnet81")


def test_tv_builder_and_unknown_tv():
    m = zoo.load_model("tv:squeezenet1_1")
    assert m.family == "vision" and m.is_classifier
    with pytest.raises(QuantbenchError, match="unknown torchvision classification model 'nosuch'"):
        zoo.model_info("tv:nosuch")


def test_hf_dir_loads_its_own_weights(tiny_bert_dir):
    from transformers import BertModel

    m = zoo.load_model(f"hf:{tiny_bert_dir}")
    ref = BertModel.from_pretrained(tiny_bert_dir)
    assert m.weights == str(tiny_bert_dir) and not m.random_weights
    assert torch.equal(
        m.module.model.embeddings.word_embeddings.weight, ref.embeddings.word_embeddings.weight
    )
    assert m.family == "text" and not m.is_classifier and m.max_input_size == 64
    ids, mask = m.make_inputs(2, 8)
    assert ids.shape == (2, 8) and int(ids.max()) < 120
    assert m.module(ids, mask).shape == (2, 8, 32)


def test_hf_dir_random_weights_differ(tiny_bert_dir):
    m = zoo.load_model(f"hf:{tiny_bert_dir}", weights="random")
    assert m.random_weights


def test_hf_sequence_classifier(tiny_classifier_dir):
    m = zoo.load_model(f"hf:{tiny_classifier_dir}")
    assert m.is_classifier
    assert m.module(*m.make_inputs(2, 8)).shape == (2, 3)


def test_pretrained_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(QuantbenchError, match="cannot load pretrained weights for bert"):
        zoo.load_model("bert", "pretrained")


def test_tv_pretrained_offline_is_a_clear_error(monkeypatch, tmp_path):
    import torch.hub

    def refuse(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    with pytest.raises(QuantbenchError, match="cannot load pretrained torchvision weights"):
        zoo.load_model("resnet18", "pretrained")


def test_state_dict_file(resnet18_state_dict):
    m = zoo.load_model("tv:resnet18", str(resnet18_state_dict), options={"num_classes": 10})
    assert m.weights == str(resnet18_state_dict)
    assert m.module(*m.make_inputs(1, 32)).shape == (1, 10)


def test_state_dict_that_does_not_fit(resnet18_state_dict):
    with pytest.raises(QuantbenchError, match=r"does not fit architecture resnet18: .*fc.weight"):
        zoo.load_model("resnet18", str(resnet18_state_dict))  # 1000 classes expected


def test_corrupt_and_missing_weights(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(QuantbenchError, match="bad.pt' is not a weights file .*: it is text"):
        zoo.load_model("resnet18", str(bad))
    with pytest.raises(QuantbenchError, match="not 'random', 'pretrained' or an existing"):
        zoo.load_model("resnet18", str(tmp_path / "missing.pt"))
    with pytest.raises(QuantbenchError, match="does not hold a state_dict"):
        torch.save([1, 2, 3], tmp_path / "list.pt")
        zoo.load_model("resnet18", str(tmp_path / "list.pt"))
