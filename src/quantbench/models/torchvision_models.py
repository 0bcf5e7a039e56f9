"""torchvision models (``tv:<name>`` and the vision aliases) and synthetic images."""

from __future__ import annotations

from typing import Any

from quantbench.errors import QuantbenchError, first_line
from quantbench.models.base import (
    VISION,
    LoadedModel,
    _load_state_dict_strict,
    _read_state_dict,
    _torch_hub_dir,
    _weights_path,
)


def _vision_inputs(batch_size: int, input_size: int, seed: int = 0) -> tuple:
    import torch

    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch_size, 3, input_size, input_size, generator=g),)


def _tv_builders() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


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
