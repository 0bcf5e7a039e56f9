"""What every model source builds: :class:`LoadedModel` (and :class:`ModelInfo`, its cheap
preview), plus the state_dict file handling that torchvision and ``py:`` models share."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantbench.errors import QuantbenchError
from quantbench.results import Family

VISION, TEXT, TENSOR = Family.VISION, Family.TEXT, Family.TENSOR


@dataclass
class ModelInfo:
    """What is known about a model before building it (cheap; used for validation)."""

    name: str
    family: str
    max_input_size: int | None
    description: str
    family_from_data: bool = False  # a model of your own: the data given decides
    input_sizes: tuple[int, ...] = ()  # tensor models: the sweep of their named dims
    ref_input_size: int | None = None  # tensor models: the data's own size


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
    # A model of your own whose family (and inputs) the data given to it decides
    # (:func:`quantbench.models.tensor.tensor_model`), and what its user said about them.
    family_from_data: bool = False
    input_spec: Any = None
    # Tensor models: the sweep of the named dynamic dims (empty: batch only) and the
    # data's own size, used for calibration and fidelity inputs.
    input_sizes: tuple[int, ...] = ()
    ref_input_size: int | None = None
    # Tensor models: each input's name and its dynamic dims {dim: name} (0 is the batch).
    input_names: tuple[str, ...] = ()
    dynamic_dims: tuple[dict[int, str], ...] = ()


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
