"""One model entry of the settings (:class:`ModelRef`), and the shorthands a file's entry
may use (``source: torchvision`` with ``arch``, ``path``; ``num_classes``).

Example::

    >>> model_entry({"name": "digits", "source": "torchvision", "arch": "resnet18",
    ...              "num_classes": 10}).load_name
    'tv:resnet18'
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from quantbench.errors import QuantbenchError, clip, shown, unknown_name
from quantbench.settings.base import Settings
from quantbench.settings.values import AnyMap, DataSource, IntList, Text, as_name_list


class ModelRef(Settings):
    """One model entry: name plus optional per-model weights, options and sweeps."""

    name: Text = Field(
        description="an alias (quantbench list models), hf:<id-or-dir>, tv:<builder>, "
        "py:<file>:<obj>, onnx:<file> or <file>.onnx, or a label when `source` says what to load"
    )
    weights: Text | None = Field(
        None, description="random | pretrained | PATH for this model (default: the run's)"
    )
    options: AnyMap = Field(
        default_factory=dict, description="model options, e.g. {num_classes: 10}"
    )
    image_sizes: IntList | None = Field(
        None, description="this model's image-size sweep in px (default: the run's)"
    )
    seq_lens: IntList | None = Field(
        None, description="this model's sequence-length sweep (default: the run's)"
    )
    source: Text | None = Field(
        None, description="what to load when `name` is only a label: tv:<arch>, hf:<dir>, "
        "py:<file>:<obj>, onnx:<file> (in a file: source torchvision|hf|python|onnx with "
        "arch/path)",
    )  # fmt: skip
    dataset: DataSource = Field(
        None, description="this model's evaluation data (else the run's `dataset`)"
    )
    calibration: DataSource = Field(
        None, description="this model's calibration data (else the run's `calibration`)"
    )

    def __init__(self, name: str | None = None, /, **data: Any) -> None:
        if name is not None:
            data["name"] = name
        super().__init__(**data)

    @property
    def load_name(self) -> str:
        """What the model zoo loads: ``source`` when set, else ``name``."""
        return self.source or self.name


REF_FIELDS = set(ModelRef.model_fields)
# The keys of a model entry in a file (or an override): ModelRef's, plus shorthands.
ENTRY_KEYS = sorted(REF_FIELDS | {"arch", "path", "num_classes"})
_SOURCE_KINDS = {"torchvision": "tv", "hf": "hf", "python": "py", "onnx": "onnx"}


def _source(name: str, e: dict[str, Any]) -> None:
    """``source: torchvision|hf|python`` with ``arch`` / ``path`` as what to load
    (``tv:<arch>``, ``hf:<dir>``, ``py:<file>:<obj>``), in place."""
    source, arch, path = e.pop("source", None), e.pop("arch", None), e.pop("path", None)
    for key, value in (("source", source), ("arch", arch), ("path", path)):
        if value is not None and not isinstance(value, str):
            raise QuantbenchError(f"model '{name}': {key} must be a string, got {shown(value)}")
    if source is not None and ":" not in source:
        if source not in _SOURCE_KINDS:
            raise unknown_name(f"model '{name}': source", str(source), sorted(_SOURCE_KINDS))
        kind = _SOURCE_KINDS[source]
        needs = {
            "tv": (arch, "arch (a torchvision builder, e.g. resnet18)"),
            "hf": (path or arch, "path (a save_pretrained directory) or a hub id"),
            "py": (path and arch, "path (a .py file) and arch (the class or function in it)"),
            "onnx": (path, "path (an .onnx file)"),
        }
        target, need = needs[kind]
        if not target:
            raise QuantbenchError(f"model '{name}': source {source} needs {need}")
        e["source"] = f"py:{path}:{arch}" if kind == "py" else f"{kind}:{target}"
        if kind == "tv" and path is not None and e.get("weights") is None:
            e["weights"] = str(path)  # the state_dict file
    elif source is not None:
        e["source"] = source  # already what to load: tv:<arch>, hf:<dir>, py:<file>:<obj>
    elif arch is not None or path is not None:
        raise QuantbenchError(f"model '{name}': arch/path need a source (torchvision or hf)")


def model_entry(entry: Any) -> ModelRef:
    """A model entry of a file or an override (a name, or a mapping with the shorthands
    ``source: torchvision|hf|python``, ``arch``, ``path``, ``num_classes``) as a ModelRef."""
    if isinstance(entry, ModelRef):
        return entry
    if isinstance(entry, str):
        return ModelRef(entry)
    if not isinstance(entry, dict) or "name" not in entry:
        raise QuantbenchError(f"a model entry needs a 'name', got {shown(entry)}")
    e = dict(entry)
    if not isinstance(e["name"], str):
        raise QuantbenchError(f"a model entry's name must be a string, got {shown(e['name'])}")
    name = clip(e["name"])
    for key in e:
        if key not in ENTRY_KEYS:
            raise QuantbenchError(
                f"model '{name}': {unknown_name('setting', str(key), ENTRY_KEYS)}"
            )
    _source(name, e)
    if "num_classes" in e:
        e["options"] = {**(e.get("options") or {}), "num_classes": e.pop("num_classes")}
    ref = ModelRef(**e)
    if "num_classes" in ref.options:
        n = ref.options["num_classes"]
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise QuantbenchError(
                f"model '{name}': setting 'num_classes' must be an integer > 0, got {shown(n)}"
            )
    return ref


def models_value(value: Any) -> Any:
    """'a,b' or ['a', {'name': 'b', ...}, ModelRef] -> entries ModelRef validates."""
    if isinstance(value, str):
        value = as_name_list(value)
    if not isinstance(value, (list, tuple)):
        return value
    return [{"name": v} if isinstance(v, str) else v for v in value]
