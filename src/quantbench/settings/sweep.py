"""Which shapes are timed: the input-size and batch-size sweeps per family, the reference
shape the report's single numbers quote, the full grid (``spec.sweep``). Which points a
model's sweep holds: :func:`quantbench.shapes.sweep_points`."""

from __future__ import annotations

from pydantic import Field

from quantbench.settings.base import Settings
from quantbench.settings.values import Flag, IntList, PosInt

DEFAULT_IMAGE_SIZES = [64, 128, 160, 224, 256]
DEFAULT_SEQ_LENS = [32, 64, 128, 256, 512]
DEFAULT_BATCH_SIZES = [1, 2, 4, 8]
# The lab's reference input sizes and batch: where a spec leaves the reference shape
# automatic, the sweep's size nearest these (:mod:`quantbench.shapes`).
LAB_REF_SIZES: dict[str, int] = {"vision": 224, "text": 128}
LAB_REF_BATCH = 1

# A setting that is not a field: sets both families' batch sweeps (a family's own key,
# given in the same place, wins).
BATCH_SIZES_ALIAS = "batch_sizes"
BATCH_SIZES_HELP = (
    "batch sweep of both families (a family's own key wins); not stored: it sets "
    "vision_batch_sizes and text_batch_sizes"
)


class Sweep(Settings):
    """The shapes each model is timed at."""

    title = "sweeps and the reference shape"

    image_sizes: IntList = Field(
        default_factory=lambda: list(DEFAULT_IMAGE_SIZES),
        description="vision: latency vs image size (px, square), at batch 1",
    )
    vision_batch_sizes: IntList = Field(
        default_factory=lambda: list(DEFAULT_BATCH_SIZES),
        description="vision: latency vs batch size, at the reference image size",
    )
    seq_lens: IntList | None = Field(
        None,
        description="text: latency vs sequence length, at batch 1 (default: "
        "32..512, plus 1024 for long-context models)",
    )
    text_batch_sizes: IntList = Field(
        default_factory=lambda: list(DEFAULT_BATCH_SIZES),
        description="text: latency vs batch size, at the reference sequence length",
    )
    ref_batch: PosInt | None = Field(
        None,
        description="the reference batch size the report's single numbers quote (default "
        f"{LAB_REF_BATCH}); added to the batch sweeps",
    )
    ref_image_size: PosInt | None = Field(
        None,
        description="the reference image size (px): the batch sweep runs there and the "
        f"report quotes it (default: the model's sweep size nearest {LAB_REF_SIZES['vision']})",
    )
    ref_seq_len: PosInt | None = Field(
        None,
        description="the reference sequence length: the batch sweep runs there and the "
        f"report quotes it (default: the model's sweep size nearest {LAB_REF_SIZES['text']})",
    )
    grid: Flag = Field(
        False, description="time every batch size x input size, not only the two sweeps "
        "(fills the speedup heatmap; the sweeps alone time a cross)",
    )  # fmt: skip
