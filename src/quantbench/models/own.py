"""Models of your own: ``py:<file.py>:<name>`` and modules handed to the Python API (``mem:``)."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from quantbench import handover
from quantbench.errors import QuantbenchError, first_line, unknown_name
from quantbench.models.base import (
    TENSOR,
    TEXT,
    VISION,
    LoadedModel,
    _load_state_dict_strict,
    _read_state_dict,
    _weights_path,
)
from quantbench.models.hf import _text_inputs_factory
from quantbench.models.torchvision_models import _vision_inputs
from quantbench.results import Family


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
    family = py_family(ref, options)
    return LoadedModel(
        name=name, family=family, module=module.eval(), weights=desc,
        random_weights=random_weights, is_classifier=True, max_input_size=None,
        make_inputs=_vision_inputs, description=f"{ref} (your own module)",
        num_outputs=int(outputs) if outputs else None,
        family_from_data=family == TENSOR or "family" not in options,
        input_spec=options.get("input_spec"),
    )  # fmt: skip


def py_family(ref: str, options: dict[str, Any]) -> Family:
    """A ``py:`` model's family: the entry's ``family`` option, else vision until the data
    given to it says otherwise (``family_from_data``)."""
    family = options.get("family", VISION)
    if family not in (VISION, TENSOR):
        raise unknown_name(f"family of model 'py:{ref}'", str(family), [VISION, TENSOR])
    return Family(family)


def _load_memory(name: str) -> LoadedModel:
    """A module handed to the Python API, as its own copy (quantizing never touches yours)."""
    import copy

    m = handover.get(name, "model")
    return dataclasses.replace(m, module=copy.deepcopy(m.module).eval(), notes=list(m.notes))


def in_memory_model(
    module: Any,
    name: str | None = None,
    family: str | None = None,
    make_inputs: Callable[..., tuple] | None = None,
    max_input_size: int | None = None,
    num_outputs: int | None = None,
    input_spec: Any = None,
) -> str:
    """Register an ``nn.Module`` for the Python API; returns its model name (``mem:model:...``).

    ``family`` None (the default): a Hugging Face text model (``config.vocab_size``) is
    text; any other takes its family and inputs from the data given with it (images
    ``(N, 3, H, W)``: vision; anything else: tensor, with inputs drawn from that data,
    ``input_spec`` naming its dynamic dims); without data, vision.
    ``make_inputs(batch_size, input_size, seed=0) -> tuple`` builds synthetic inputs for
    calibration and timing; images of ``3 x size x size`` by default for vision models.
    """
    import torch

    if not isinstance(module, torch.nn.Module):
        raise QuantbenchError(f"a model must be a torch.nn.Module, got {type(module).__name__}")
    families = [VISION, TEXT, TENSOR]
    if family is not None and family not in families:
        raise unknown_name("family", str(family), families)
    vocab = getattr(getattr(module, "config", None), "vocab_size", None)
    from_data = family is None and not vocab and make_inputs is None
    if family is None:
        family = TEXT if vocab else VISION
    family = Family(family)
    from_data = from_data or (family == TENSOR and make_inputs is None)
    if make_inputs is None:
        if family == TEXT and vocab:
            make_inputs = _text_inputs_factory(module.config)
        elif family == TEXT:
            raise QuantbenchError(
                "a text model given as a module needs make_inputs(batch_size, seq_len, seed)"
            )
        else:  # tensor models replace these with their data's (no data: a clear error)
            make_inputs = _vision_inputs
    label = name or type(module).__name__
    lm = LoadedModel(
        name=label, family=family, module=module, weights="as given (in-memory module)",
        random_weights=False, is_classifier=num_outputs is not None or family != TEXT,
        max_input_size=max_input_size, make_inputs=make_inputs,
        description=f"{type(module).__name__} (in-memory module)", num_outputs=num_outputs,
        family_from_data=from_data, input_spec=input_spec,
    )  # fmt: skip
    return handover.put("model", lm, label)
