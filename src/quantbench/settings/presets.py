"""Presets: named sets of settings a run starts from (the file's and the flags' settings
apply over them). ``quantbench list presets`` lists them."""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # The lab: eight models, three recipes, both sweeps per family.
    "lab": {},
    # A few points of each sweep on one model per family: a couple of minutes.
    "quick": {
        "models": ["resnet18", "distilbert"],
        "image_sizes": [64, 128, 224],
        "vision_batch_sizes": [1, 4],
        "seq_lens": [32, 128],
        "text_batch_sizes": [1, 4],
        "min_time_s": 0.2,
    },
    # The targets benchmark (benchmarks/targets.py): every model x every recipe, at the
    # reference shape only (batch 1, 224 px / 128 tokens).
    "targets": {
        "recipes": ["all"],
        "image_sizes": [224],
        "vision_batch_sizes": [1],
        "seq_lens": [128],
        "text_batch_sizes": [1],
        "fidelity_batch_size": 16,  # top-1 agreement over 16 inputs, not 4
    },
}
