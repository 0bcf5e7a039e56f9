"""Model registry: the lab's eight aliases, ``hf:<id-or-dir>`` and ``tv:<name>``.

Every loaded model is wrapped so that ``module(*inputs)`` returns one tensor, which
keeps recipes, timing, FX tracing and ONNX export uniform across families.

Example::

    >>> from quantbench.models import load_model
    >>> m = load_model("resnet18")                      # random weights, seed 0
    >>> x = m.make_inputs(batch_size=1, input_size=224)
    >>> m.module(*x).shape
    torch.Size([1, 1000])
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from quantbench import handover
from quantbench.errors import QuantbenchError, first_line, unknown_name
from quantbench.results import Family

VISION, TEXT = Family.VISION, Family.TEXT


@dataclass(frozen=True)
class Alias:
    """A short name users type, bound to an exact architecture."""

    name: str
    family: str
    source: str  # "hf" (config shipped in models/configs) or "tv" (torchvision builder)
    target: str  # config file stem / torchvision builder name
    hub_id: str  # where pretrained weights come from
    description: str


ALIASES: dict[str, Alias] = {
    a.name: a
    for a in [
        Alias("bert", TEXT, "hf", "bert-base-uncased", "bert-base-uncased", "BERT base, uncased (110M)"),
        Alias("albert", TEXT, "hf", "albert-base-v2", "albert-base-v2", "ALBERT base v2 (12M, shared layers)"),
        Alias("distilbert", TEXT, "hf", "distilbert-base-uncased", "distilbert-base-uncased", "DistilBERT base, uncased (66M)"),
        Alias("longformer", TEXT, "hf", "longformer-base-4096", "allenai/longformer-base-4096", "Longformer base, 4096 tokens (149M)"),
        Alias("mobilenet_v2", VISION, "tv", "mobilenet_v2", "mobilenet_v2", "torchvision MobileNetV2 (3.5M)"),
        Alias("resnet18", VISION, "tv", "resnet18", "resnet18", "torchvision ResNet-18 (11.7M)"),
        Alias("squeezenet", VISION, "tv", "squeezenet1_0", "squeezenet1_0", "torchvision SqueezeNet 1.0 (1.2M)"),
        Alias("mnasnet", VISION, "tv", "mnasnet1_0", "mnasnet1_0", "torchvision MNASNet 1.0 (4.4M)"),
    ]
}  # fmt: skip

# Transformers whose position ids start after the padding index (RoBERTa lineage).
_POSITION_OFFSET_TYPES = {"roberta", "longformer", "xlm-roberta", "camembert", "bart"}


@dataclass
class ModelInfo:
    """What is known about a model before building it (cheap; used for validation)."""

    name: str
    family: str
    max_input_size: int | None
    description: str


@dataclass
class LoadedModel:
    """A built model ready to quantize and measure."""

    name: str
    family: str
    module: Any  # torch.nn.Module whose forward takes positional tensors, returns a tensor
    weights: str  # human description: "random (seed 0)", "pretrained (bert-base-uncased)", a path
    random_weights: bool
    is_classifier: bool
    max_input_size: int | None
    make_inputs: Callable[..., tuple]
    description: str = ""
    notes: list[str] = field(default_factory=list)
    # "classification" (logits), "embedding" (one pooled vector per input, as
    # sentence-transformers models give) or "features" (a base model's hidden states)
    task: str = "classification"
    num_outputs: int | None = None  # classes, for classifiers
    source_dir: str | None = None  # the local directory it came from (tokenizer lives there)


def list_models() -> list[tuple[str, str, str]]:
    """(name, family, description) of every alias."""
    return [(a.name, a.family, a.description) for a in ALIASES.values()]


def _config_path(stem: str) -> Any:
    return resources.files("quantbench.models").joinpath("configs", f"{stem}.json")


def _shipped_config(stem: str) -> Any:
    from transformers import AutoConfig

    raw = json.loads(_config_path(stem).read_text(encoding="utf-8"))
    raw = {k: v for k, v in raw.items() if not k.startswith("_")}
    return AutoConfig.for_model(raw.pop("model_type"), **raw)


def _split(name: str) -> tuple[str, str]:
    """'hf:x' -> ('hf', 'x'); 'tv:x' -> ('tv', 'x'); 'py:f.py:C' -> ('py', 'f.py:C');
    alias -> ('alias', name)."""
    for prefix in ("hf:", "tv:", "py:", "mem:"):
        if name.startswith(prefix):
            rest = name[len(prefix) :]
            if not rest:
                raise QuantbenchError(f"model '{name}' needs a name after '{prefix}'")
            return prefix[:-1], rest
    if name not in ALIASES:
        raise unknown_name(
            "model",
            name,
            list(ALIASES) + ["hf:<id-or-dir>", "tv:<name>", "py:<file.py>:<name>", "onnx:<file>"],
        )
    return "alias", name


def _tv_builders() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


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


def model_info(name: str, options: dict[str, Any] | None = None) -> ModelInfo:
    """Family and limits of a model without building it (for up-front validation)."""
    from quantbench.models import onnxfile

    if onnxfile.onnx_path(name) is not None:
        return ModelInfo(**onnxfile.onnx_info(name, options))
    kind, ref = _split(name)
    if kind == "alias":
        a = ALIASES[ref]
        if a.source == "hf":
            return ModelInfo(
                name, a.family, _hf_max_positions(_shipped_config(a.target)), a.description
            )
        return ModelInfo(name, a.family, None, a.description)
    if kind == "tv":
        if ref not in _tv_builders():
            raise unknown_name("torchvision classification model", ref, _tv_builders())
        return ModelInfo(name, VISION, None, f"torchvision {ref}")
    if kind == "py":
        _py_factory(ref)
        return ModelInfo(name, VISION, None, f"{ref} (your own module)")
    if kind == "mem":
        m = handover.get(name, "model")
        return ModelInfo(name, m.family, m.max_input_size, m.description)
    config = _hf_config(ref)
    if _is_image_classifier(config):
        return ModelInfo(name, VISION, None, f"Hugging Face {ref}")
    return ModelInfo(name, TEXT, _hf_max_positions(config), f"Hugging Face {ref}")


def load_model(
    name: str, weights: str = "auto", seed: int = 0, options: dict[str, Any] | None = None
) -> LoadedModel:
    """Build ``name`` with ``weights``: ``random`` (seeded), ``pretrained``, or a local path.

    ``auto`` (the default) means random weights for the aliases and ``tv:`` models (no
    download needed) and the model's own weights for ``hf:<id-or-dir>``.

    ``options`` (from a YAML model entry) may set ``num_classes`` for torchvision models.
    """
    import torch

    from quantbench.models import onnxfile

    options = dict(options or {})
    if onnxfile.onnx_path(name) is not None:
        return LoadedModel(**onnxfile.load_onnx(name, weights, options))
    kind, ref = _split(name)
    torch.manual_seed(seed)
    if kind == "py":
        return _load_py(name, ref, weights, options)
    if kind == "mem":
        return _load_memory(name)
    if kind == "tv" or (kind == "alias" and ALIASES[ref].source == "tv"):
        builder = ALIASES[ref].target if kind == "alias" else ref
        if kind == "tv" and builder not in _tv_builders():
            raise unknown_name("torchvision classification model", builder, _tv_builders())
        return _load_tv(name, builder, weights, seed, options)
    if kind == "alias":
        a = ALIASES[ref]
        return _load_hf(
            name, config=_shipped_config(a.target), hub_id=a.hub_id, weights=weights, seed=seed
        )
    return _load_hf(name, config=None, hub_id=ref, weights=weights, seed=seed)


# --------------------------------------------------------------------------- torchvision


def _vision_inputs(batch_size: int, input_size: int, seed: int = 0) -> tuple:
    import torch

    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch_size, 3, input_size, input_size, generator=g),)


def _read_state_dict(path: Path) -> dict[str, Any]:
    import torch

    from quantbench.fileformat import torch_load

    obj = torch_load(path, "a weights file (a state_dict saved with torch.save)")
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise QuantbenchError(f"weights file '{path}' does not hold a state_dict of tensors")
    return obj


def _load_state_dict_strict(module: Any, sd: dict[str, Any], arch: str, path: Path) -> None:
    own = module.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [k for k in own if k in sd and tuple(own[k].shape) != tuple(sd[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        if shapes:
            k = shapes[0]
            parts.append(
                f"{len(shapes)} shape mismatches (e.g. {k}: file {tuple(sd[k].shape)}, "
                f"model {tuple(own[k].shape)})"
            )
        hint = " (set num_classes in the model entry?)" if shapes else ""
        raise QuantbenchError(
            f"state_dict '{path}' does not fit architecture {arch}: {'; '.join(parts)}{hint}"
        )
    module.load_state_dict(sd, strict=True)


def _load_tv(
    name: str, builder: str, weights: str, seed: int, options: dict[str, Any]
) -> LoadedModel:
    import torchvision

    kwargs: dict[str, Any] = {}
    if "num_classes" in options:
        kwargs["num_classes"] = int(options["num_classes"])
    random_weights = False
    if weights in ("random", "auto"):
        module = torchvision.models.get_model(builder, weights=None, **kwargs)
        desc, random_weights = f"random (seed {seed})", True
        if _degenerate(module) and reestimate_batchnorm(module, seed):
            desc += ", BatchNorm statistics re-estimated on synthetic images"
    elif weights == "pretrained":
        try:
            module = torchvision.models.get_model(builder, weights="DEFAULT", **kwargs)
        except Exception as e:
            why = first_line(e, with_type=False)
            raise QuantbenchError(
                f"cannot load pretrained torchvision weights for {builder}: not in the torch hub "
                f"cache ({_torch_hub_dir()}) and download failed: {why}. "
                f"Use --weights random or a local state_dict file"
            ) from None
        desc = f"pretrained (torchvision {builder} DEFAULT)"
    else:
        path = _weights_path(weights)
        if path.is_dir():
            raise QuantbenchError(
                f"weights '{path}' is a directory; a torchvision model needs a state_dict file"
            )
        module = torchvision.models.get_model(builder, weights=None, **kwargs)
        _load_state_dict_strict(module, _read_state_dict(path), builder, path)
        desc = str(path)
    return LoadedModel(
        name=name,
        family=VISION,
        module=module.eval(),
        weights=desc,
        random_weights=random_weights,
        is_classifier=True,
        max_input_size=None,
        make_inputs=_vision_inputs,
        description=f"torchvision {builder}",
        num_outputs=int(kwargs.get("num_classes", 1000)),
    )


def _py_factory(ref: str) -> Any:
    """The class or function ``NAME`` in ``file.py`` of ``'file.py:NAME'``."""
    import hashlib
    import importlib.util

    path_text, _, attr = ref.rpartition(":")
    if not path_text or not attr:
        raise QuantbenchError(f"model 'py:{ref}' must be py:<file.py>:<class or function>")
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise QuantbenchError(f"model file '{path_text}' does not exist")
    mod_name = "quantbench_user_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    if mod_name in sys.modules:
        mod = sys.modules[mod_name]
    else:
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise QuantbenchError(f"model file '{path_text}' is not a Python module")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = mod  # pickling / FX need to find the classes again
        try:
            spec.loader.exec_module(mod)
        except Exception as e:
            del sys.modules[mod_name]
            raise QuantbenchError(
                f"model file '{path_text}' failed to import: {first_line(e)}"
            ) from None
    if not hasattr(mod, attr):
        names = [n for n in dir(mod) if not n.startswith("_") and callable(getattr(mod, n))]
        raise unknown_name(f"class or function in '{path_text}'", attr, names)
    return getattr(mod, attr)


def _load_py(name: str, ref: str, weights: str, options: dict[str, Any]) -> LoadedModel:
    """A model of your own: a class or factory in a Python file, with a state_dict file."""
    import torch

    factory = _py_factory(ref)
    kwargs = {"num_classes": int(options["num_classes"])} if "num_classes" in options else {}
    try:
        module = factory(**kwargs)
    except Exception as e:
        raise QuantbenchError(
            f"model 'py:{ref}' could not be built: {first_line(e, with_type=False)}"
        ) from None
    if not isinstance(module, torch.nn.Module):
        raise QuantbenchError(
            f"model 'py:{ref}' built a {type(module).__name__}, not a torch module"
        )
    desc, random_weights = "random (as your code initialises it)", True
    if weights not in ("auto", "random"):
        if weights == "pretrained":
            raise QuantbenchError(
                f"model 'py:{ref}' has no pretrained weights; give a state_dict file"
            )
        path = _weights_path(weights)
        _load_state_dict_strict(module, _read_state_dict(path), ref, path)
        desc, random_weights = str(path), False
    outputs = getattr(module, "num_classes", None) or kwargs.get("num_classes")
    return LoadedModel(
        name=name, family=VISION, module=module.eval(), weights=desc,
        random_weights=random_weights, is_classifier=True, max_input_size=None,
        make_inputs=_vision_inputs, description=f"{ref} (your own module)",
        num_outputs=int(outputs) if outputs else None,
    )  # fmt: skip


def _load_memory(name: str) -> LoadedModel:
    """A module handed to the Python API, as its own copy (quantizing never touches yours)."""
    import copy

    m = handover.get(name, "model")
    return dataclasses.replace(m, module=copy.deepcopy(m.module).eval(), notes=list(m.notes))


def in_memory_model(
    module: Any,
    name: str | None = None,
    family: str = VISION,
    make_inputs: Callable[..., tuple] | None = None,
    max_input_size: int | None = None,
    num_outputs: int | None = None,
) -> str:
    """Register an ``nn.Module`` for the Python API; returns its model name (``mem:model:...``).

    ``make_inputs(batch_size, input_size, seed=0) -> tuple`` builds synthetic inputs for
    calibration and timing; images of ``3 x size x size`` by default for vision models.
    A text model needs ``make_inputs`` unless it has a Hugging Face ``config.vocab_size``.
    """
    import torch

    if not isinstance(module, torch.nn.Module):
        raise QuantbenchError(f"a model must be a torch.nn.Module, got {type(module).__name__}")
    family = Family(family) if family in (VISION, TEXT) else family
    if family not in (VISION, TEXT):
        raise unknown_name("family", str(family), [VISION, TEXT])
    if make_inputs is None:
        if family == VISION:
            make_inputs = _vision_inputs
        elif getattr(getattr(module, "config", None), "vocab_size", None):
            make_inputs = _text_inputs_factory(module.config)
        else:
            raise QuantbenchError(
                "a text model given as a module needs make_inputs(batch_size, seq_len, seed)"
            )
    label = name or type(module).__name__
    lm = LoadedModel(
        name=label, family=family, module=module, weights="as given (in-memory module)",
        random_weights=False, is_classifier=num_outputs is not None or family == VISION,
        max_input_size=max_input_size, make_inputs=make_inputs,
        description=f"{type(module).__name__} (in-memory module)", num_outputs=num_outputs,
    )  # fmt: skip
    return handover.put("model", lm, label)


def _degenerate(module: Any) -> bool:
    """Whether a randomly initialised classifier's outputs have all but vanished."""
    import torch

    g = torch.Generator().manual_seed(12345)
    with torch.no_grad():
        out = module.eval()(torch.randn(2, 3, 224, 224, generator=g))
    return float(out.float().std()) < 1e-4


def reestimate_batchnorm(module: Any, seed: int, batches: int = 4, batch_size: int = 8) -> bool:
    """Set BatchNorm running statistics from a few synthetic batches; False if it has none.

    A freshly initialised MobileNetV2 or MNASNet shrinks its activations layer by layer
    (outputs ~1e-9): every comparison against fp32 is then noise, not quantization error.
    With statistics measured on inputs (as training would leave them) each layer's output
    is normalised again, so random-weight fidelity says something about the quantizer.
    Only degenerate models get this (ResNet18 or SqueezeNet are left as initialised).
    """
    import torch

    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return False
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches below
    g = torch.Generator().manual_seed(seed + 1)
    module.train()
    with torch.no_grad():
        for _ in range(batches):
            module(torch.randn(batch_size, 3, 224, 224, generator=g))
    for bn in norms:
        bn.momentum = 0.1
    module.eval()
    return True


def _torch_hub_dir() -> str:
    import torch

    return os.path.join(torch.hub.get_dir(), "checkpoints")


def _weights_path(weights: str) -> Path:
    path = Path(weights).expanduser()
    if not path.exists():
        raise QuantbenchError(
            f"weights '{weights}' is not 'random', 'pretrained' or an existing file/directory"
        )
    return path


# --------------------------------------------------------------------------- transformers


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
    pooling, normalize = sentence_pooling(src_dir) if src_dir and not is_clf else (None, False)
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
