"""Model registry: the lab's eight aliases, ``hf:<id-or-dir>``, ``tv:<name>``, your own
``py:<file.py>:<name>`` and in-memory modules (``mem:``).

Every loaded model is wrapped so that ``module(*inputs)`` returns one tensor, which
keeps recipes, timing, FX tracing and ONNX export uniform across families: vision,
text, and tensor (everything else; inputs taken from the data: :mod:`.tensor`).
One module per source: :mod:`.base` (LoadedModel, state_dict files),
:mod:`.torchvision_models`, :mod:`.hf`, :mod:`.own` (``py:`` and ``mem:``).

Example::

    >>> from quantbench.models import load_model
    >>> m = load_model("resnet18")                      # random weights, seed 0
    >>> x = m.make_inputs(batch_size=1, input_size=224)
    >>> m.module(*x).shape
    torch.Size([1, 1000])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quantbench import handover
from quantbench.errors import QuantbenchError, unknown_name
from quantbench.models.base import TENSOR, TEXT, VISION, LoadedModel, ModelInfo
from quantbench.models.hf import _hf_max_positions, _load_hf, _shipped_config, sentence_pooling
from quantbench.models.own import _load_memory, _load_py, _py_factory, in_memory_model, py_family
from quantbench.models.torchvision_models import _load_tv, _tv_builders, reestimate_batchnorm

# Reached as ``zoo._name`` by runner/checks.py and artifacts/rebuild.py.
from quantbench.models.hf import _hf_config, _is_image_classifier  # noqa: F401, E402  # isort: skip
from quantbench.models.hf import _is_sequence_classifier, _text_inputs_factory  # noqa: F401, E402  # isort: skip
from quantbench.models.torchvision_models import _vision_inputs  # noqa: F401, E402  # isort: skip

__all__ = [
    "ALIASES", "TENSOR", "TEXT", "VISION", "Alias", "LoadedModel", "ModelInfo", "in_memory_model",
    "list_models", "load_model", "model_info", "reestimate_batchnorm", "sentence_pooling",
]  # fmt: skip


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


def list_models() -> list[tuple[str, str, str]]:
    """(name, family, description) of every alias."""
    return [(a.name, a.family, a.description) for a in ALIASES.values()]


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


def model_info(name: str, options: dict[str, Any] | None = None) -> ModelInfo:
    """Family and limits of a model without building it (for up-front validation)."""
    from quantbench.models import onnxfile

    if onnxfile.onnx_path(name) is not None:
        return ModelInfo(**onnxfile.onnx_info(name, options))
    kind, ref = _split(name)
    check_options(name, kind, ref, options or {})
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
        family = py_family(ref, options or {})
        from_data = family == TENSOR or "family" not in (options or {})
        return ModelInfo(name, family, None, f"{ref} (your own module)", from_data)
    if kind == "mem":
        m = handover.get(name, "model")
        return ModelInfo(name, m.family, m.max_input_size, m.description, m.family_from_data)
    config = _hf_config(ref)
    if _is_image_classifier(config):
        return ModelInfo(name, VISION, None, f"Hugging Face {ref}")
    return ModelInfo(name, TEXT, _hf_max_positions(config), f"Hugging Face {ref}")


# The options each kind of model reads (ONNX files: ``onnxfile.OPTIONS``); any other key
# would be ignored, so it is refused.
OPTIONS_OF = {"tv": ("num_classes",), "py": ("family", "input_spec", "num_classes"),
              "hf": (), "mem": ()}  # fmt: skip


def check_options(name: str, kind: str, ref: str, options: dict[str, Any]) -> None:
    """Refuse an option the model would ignore (a typo of ``num_classes``, ``input_spec``
    on a torchvision model), naming the ones it reads."""
    if kind == "alias":
        kind = ALIASES[ref].source
    valid = OPTIONS_OF.get(kind, ())
    for key in options:
        if key not in valid:
            if not valid:
                raise QuantbenchError(f"model '{name}' takes no options, got '{key}'")
            raise QuantbenchError(f"model '{name}': {unknown_name('option', str(key), valid)}")


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
