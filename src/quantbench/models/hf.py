"""Transformers models: the text aliases (configs shipped in models/configs) and ``hf:<id-or-dir>``."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from quantbench.errors import QuantbenchError, first_line
from quantbench.models.base import TEXT, VISION, LoadedModel, _weights_path
from quantbench.models.torchvision_models import _vision_inputs

# Transformers whose position ids start after the padding index (RoBERTa lineage).
_POSITION_OFFSET_TYPES = {"roberta", "longformer", "xlm-roberta", "camembert", "bart"}


def _config_path(stem: str) -> Any:
    return resources.files("quantbench.models").joinpath("configs", f"{stem}.json")


def _shipped_config(stem: str) -> Any:
    from transformers import AutoConfig

    raw = json.loads(_config_path(stem).read_text(encoding="utf-8"))
    raw = {k: v for k, v in raw.items() if not k.startswith("_")}
    return AutoConfig.for_model(raw.pop("model_type"), **raw)


def _hf_max_positions(config: Any) -> int | None:
    n = getattr(config, "max_position_embeddings", None)
    if n is None:
        return None
    if getattr(config, "model_type", "") in _POSITION_OFFSET_TYPES:
        n -= (getattr(config, "pad_token_id", 1) or 1) + 1
    return int(n)


def _hf_config(ref: str) -> Any:
    from transformers import AutoConfig

    where = "directory" if Path(ref).exists() else "Hugging Face model id"
    try:
        return AutoConfig.from_pretrained(ref)  # trust_remote_code stays False
    except Exception as e:  # OSError offline, ValueError on a bad directory
        if "trust_remote_code" in str(e) or "contains custom code" in str(e):
            raise QuantbenchError(
                f"{where} '{ref}' needs its own Python code to load (auto_map in its "
                "config); quantbench never runs code that comes with a model"
            ) from None
        raise QuantbenchError(
            f"cannot read the config of {where} '{ref}': {first_line(e, with_type=False)}"
        ) from None


def _is_image_classifier(config: Any) -> bool:
    archs = getattr(config, "architectures", None) or []
    return any(a.endswith("ForImageClassification") for a in archs)


def _is_sequence_classifier(config: Any) -> bool:
    archs = getattr(config, "architectures", None) or []
    return any(a.endswith("ForSequenceClassification") for a in archs)


def _text_wrapper(model: Any, is_classifier: bool, pooling: str | None = None) -> Any:
    from quantbench.models.wrappers import TextModel

    return TextModel(model, is_classifier, pooling).eval()


def sentence_pooling(model_dir: Path) -> tuple[str | None, bool]:
    """(pooling, normalize) of a sentence-transformers directory; (None, False) otherwise.

    Such a directory lists its modules in ``modules.json``; the Pooling module's config
    says which pooling it uses (mean, cls or max) and a Normalize module L2-normalises.
    """
    try:
        mods = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None, False
    pooling, normalize = None, False
    for m in mods if isinstance(mods, list) else []:
        kind = str(m.get("type", ""))
        if kind.endswith("Pooling"):
            try:
                cfg = json.loads(
                    (model_dir / m.get("path", "") / "config.json").read_text(encoding="utf-8")
                )
            except (OSError, json.JSONDecodeError):
                cfg = {"pooling_mode_mean_tokens": True}
            for mode in ("mean", "cls", "max"):
                if cfg.get(f"pooling_mode_{mode}_tokens") or cfg.get(f"pooling_mode_{mode}_token"):
                    pooling = mode
                    break
        elif kind.endswith("Normalize"):
            normalize = True
    return pooling, normalize


def _vision_wrapper(model: Any) -> Any:
    from quantbench.models.wrappers import ImageModel

    return ImageModel(model).eval()


def _text_inputs_factory(config: Any) -> Callable[..., tuple]:
    vocab = int(config.vocab_size)
    special = [
        getattr(config, k, None)
        for k in ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id")
    ]
    low = max([s for s in special if isinstance(s, int)] + [0]) + 1
    low = min(low, vocab - 1)

    def make(batch_size: int, input_size: int, seed: int = 0) -> tuple:
        import torch

        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(low, vocab, (batch_size, input_size), generator=g)
        return ids, torch.ones_like(ids)

    return make


def _load_hf(name: str, config: Any, hub_id: str, weights: str, seed: int) -> LoadedModel:
    import torch
    from transformers import (
        AutoModel,
        AutoModelForImageClassification,
        AutoModelForSequenceClassification,
    )

    local_dir = Path(hub_id).expanduser()
    is_local = local_dir.is_dir()
    if weights not in ("random", "pretrained", "auto"):
        path = _weights_path(weights)
        if not path.is_dir():
            raise QuantbenchError(
                f"weights '{path}' is a file; a transformers model needs a save_pretrained directory"
            )
        source, desc, random_weights = str(path), str(path), False
    elif weights == "pretrained" or (weights == "auto" and config is None):
        source, random_weights = hub_id, False
        desc = str(local_dir) if is_local else f"pretrained ({hub_id})"
    else:
        source, desc, random_weights = None, f"random (seed {seed})", True

    if config is None:
        config = _hf_config(source or hub_id)
    if _is_image_classifier(config):
        cls, family, is_clf = AutoModelForImageClassification, VISION, True
    elif _is_sequence_classifier(config):
        cls, family, is_clf = AutoModelForSequenceClassification, TEXT, True
    else:
        cls, family, is_clf = AutoModel, TEXT, False

    if source is None:
        torch.manual_seed(seed)
        model = cls.from_config(config)
    else:
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # our own progress bar is the one to watch
            model = cls.from_pretrained(source)
        except Exception as e:
            offline = (
                " (offline, and not in the Hugging Face cache)" if not Path(source).exists() else ""
            )
            why = first_line(e, with_type=False)
            raise QuantbenchError(
                f"cannot load pretrained weights for {name} from '{source}'{offline}: {why}"
            ) from None
    model.eval()
    src_dir = Path(source).expanduser() if source and Path(source).expanduser().is_dir() else None
    pool_dir = src_dir or (local_dir if is_local else None)  # random weights pool as the dir says
    pooling, normalize = sentence_pooling(pool_dir) if pool_dir and not is_clf else (None, False)
    if family == VISION:
        size = getattr(config, "image_size", 224)
        return LoadedModel(
            name=name, family=VISION, module=_vision_wrapper(model), weights=desc,
            random_weights=random_weights, is_classifier=True, max_input_size=None,
            make_inputs=_vision_inputs, description=f"{type(model).__name__} (image size {size})",
            num_outputs=int(config.num_labels), source_dir=str(src_dir) if src_dir else None,
        )  # fmt: skip
    return LoadedModel(
        name=name,
        family=TEXT,
        module=_text_wrapper(model, is_clf, f"{pooling}-normalized" if normalize else pooling),
        weights=desc,
        random_weights=random_weights,
        is_classifier=is_clf,
        max_input_size=_hf_max_positions(config),
        make_inputs=_text_inputs_factory(config),
        description=type(model).__name__ + (f" + {pooling} pooling" if pooling else ""),
        task="classification" if is_clf else "embedding" if pooling else "features",
        num_outputs=int(config.num_labels) if is_clf else None,
        source_dir=str(src_dir) if src_dir else None,
    )
