"""torchvision's MobileNetV2 and MNASNet at several widths, for scikit-learn's digits.

quantbench loads one with ``py:examples/digits_mobile_nets.py:<name>`` (``source: python``
with ``arch: <name>`` in a config file) and a state_dict file as its weights; the names are
the published widths: ``mobilenet_v2_0_35`` ... ``mobilenet_v2_1_4`` (``width_mult``) and
``mnasnet0_5`` ... ``mnasnet1_3`` (``alpha``). ``benchmarks/digits_mobile.py`` trains them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def mobilenet_v2(width_mult: float, num_classes: int = 10) -> torch.nn.Module:
    """torchvision's MobileNetV2 (random weights) with ``width_mult`` and ``num_classes``."""
    import torchvision

    return torchvision.models.mobilenet_v2(width_mult=width_mult, num_classes=num_classes)


def mnasnet(alpha: float, num_classes: int = 10) -> torch.nn.Module:
    """torchvision's MNASNet (random weights) with depth multiplier ``alpha``."""
    import torchvision

    return torchvision.models.MNASNet(alpha, num_classes=num_classes)


def _factory(build: Callable[..., torch.nn.Module], width: float) -> Callable[..., torch.nn.Module]:
    def make(num_classes: int = 10) -> torch.nn.Module:
        return build(width, num_classes=num_classes)

    return make


# One named factory per width: quantbench's py: loader calls NAME(num_classes=...).
mobilenet_v2_0_35 = _factory(mobilenet_v2, 0.35)
mobilenet_v2_0_5 = _factory(mobilenet_v2, 0.5)
mobilenet_v2_0_75 = _factory(mobilenet_v2, 0.75)
mobilenet_v2_1_0 = _factory(mobilenet_v2, 1.0)
mobilenet_v2_1_3 = _factory(mobilenet_v2, 1.3)
mobilenet_v2_1_4 = _factory(mobilenet_v2, 1.4)
mnasnet0_5 = _factory(mnasnet, 0.5)
mnasnet0_75 = _factory(mnasnet, 0.75)
mnasnet1_0 = _factory(mnasnet, 1.0)
mnasnet1_3 = _factory(mnasnet, 1.3)

NAMES = [
    n for n in list(globals()) if n.startswith(("mobilenet_v2_", "mnasnet")) and n[-1].isdigit()
]
