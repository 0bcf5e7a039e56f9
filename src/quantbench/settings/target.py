"""What is measured, and where: the models, their weights, the seed, the device, the
quantized engine (``spec.target``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator

from quantbench.errors import unknown_name
from quantbench.settings.base import Settings
from quantbench.settings.model_ref import ModelRef, models_value
from quantbench.settings.values import NonNegInt, Text

LAB_MODELS = [
    "bert", "albert", "distilbert", "longformer",
    "mobilenet_v2", "resnet18", "squeezenet", "mnasnet",
]  # fmt: skip
DEVICES = ("cpu", "cuda", "auto")


class Target(Settings):
    """What is measured, and where."""

    title = "models and where they run"

    models: Annotated[list[ModelRef], BeforeValidator(models_value)] = Field(
        default_factory=lambda: [ModelRef(m) for m in LAB_MODELS],
        description="models to measure: names (aliases, hf:<id-or-dir>, tv:<builder>, "
        "py:<file>:<obj>, onnx:<file> or <file>.onnx), or entries {name, source, arch, path, "
        "weights, num_classes, options, dataset, calibration, image_sizes, seq_lens} (on the "
        "command line as inline YAML: '{name: ..., options: {input_spec: ...}}' or a list); "
        "default: the eight lab models",
    )
    weights: Text = Field(
        "auto", description="random | pretrained | PATH (auto: the default per model)"
    )
    seed: NonNegInt = Field(0, description="seed for random weights and inputs")
    device: Text = Field(
        "cpu", description="where models run: cpu, cuda, or auto (cuda when torch sees a GPU, "
        "else cpu; resolved once and stored). CPU-only recipes are unsupported cells on cuda",
    )  # fmt: skip
    engine: Text | None = Field(
        None, description="quantized engine (default: x86 on x86-64, qnnpack on ARM)"
    )

    @field_validator("models")
    @classmethod
    def _distinct_models(cls, value: list[ModelRef]) -> list[ModelRef]:
        seen: set[str] = set()
        for ref in value:
            if ref.name in seen:
                raise ValueError(f"model '{ref.name}' is listed twice")
            seen.add(ref.name)
        return value

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value not in DEVICES:
            raise ValueError(str(unknown_name("device", value, DEVICES)))
        return value
