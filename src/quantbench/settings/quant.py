"""How models are quantized: the recipes, their own settings, the variants added to
them (``+compile``, ``+fallback``), calibration and quantization-aware training
(``spec.quant``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from quantbench.errors import QuantbenchError, clip
from quantbench.settings.base import Cli, Settings
from quantbench.settings.values import AnyMap, Flag, NameList, PosFloat, PosInt, inline_mapping

LAB_RECIPES = ["fp32", "dynamic-int8", "static-int8"]


def _recipe_options(value: Any) -> Any:
    """An inline YAML/JSON mapping (the CLI flag) or a mapping of mappings."""
    if isinstance(value, str):
        try:
            value = inline_mapping(value, "recipe_options")
        except QuantbenchError as e:
            raise ValueError(str(e)) from None
    if not isinstance(value, dict):
        raise ValueError(
            "recipe_options must map recipe names to settings, e.g. "
            "{ort-static-int8: {calibrate_method: entropy}}"
        )
    for r, options in value.items():
        if not isinstance(options, dict):
            raise ValueError(f"recipe_options for '{clip(str(r))}' must be a mapping of settings")
    return {str(r): dict(o) for r, o in value.items()}


class Quant(Settings):
    """How models are quantized."""

    title = "recipes and calibration"

    recipes: NameList = Field(
        default_factory=lambda: list(LAB_RECIPES),
        description="recipe names (quantbench list recipes), or 'all'",
    )
    recipe_options: Annotated[
        dict[str, AnyMap], BeforeValidator(_recipe_options), Cli(metavar="MAPPING")
    ] = Field(
        default_factory=dict,
        description="a recipe's own settings, {recipe: {setting: value}} (quantbench list "
        "recipes shows them); on the command line an inline YAML/JSON mapping, e.g. "
        "'{static-int8: {per_channel: false}}'",
    )
    compile: Flag = Field(
        False, description="add <recipe>+compile variants of the eager torch recipes "
        "(each also timed under torch.compile)",
    )  # fmt: skip
    fallback: Flag = Field(
        False, description="add <recipe>+fallback variants that keep sensitive layers float "
        "until the accuracy bar is met",
    )  # fmt: skip
    fallback_max_layers: PosInt = Field(8, description="... at most this many layers")
    calib_batches: PosInt = Field(8, description="static recipes: calibration batches")
    calib_batch_size: PosInt = Field(4, description="... of this many inputs each")
    qat_steps: PosInt = Field(100, description="qat-int8 fine-tuning steps")
    qat_lr: PosFloat = Field(1e-4, description="qat-int8 learning rate")
