"""Activation ranges for ``ort-static-int8``: onnxruntime's calibrators fed sample by
sample, written as the calibration cache ``quantize_static`` reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CALIBRATE_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


def _calibration_reader(names: list[str], batches: list[tuple]) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = [
                {n: t.detach().cpu().contiguous().numpy() for n, t in zip(names, b, strict=True)}
                for b in batches
            ]
            self.rewind()

        def get_next(self) -> dict[str, Any] | None:
            return next(self._it, None)

        def rewind(self) -> None:
            self._it = iter(self.feeds)

    return Reader()


def calibrate(
    src: Path,
    scratch: str,
    op_types: tuple[str, ...] | None,
    method: str,
    names: list[str],
    batches: list[tuple],
) -> Path:
    """Activation ranges by ``method``, written as the cache ``quantize_static`` reads.

    Calibrating here rather than inside ``quantize_static`` is what makes ``entropy``
    differ from ``minmax``: ``quantize_static`` cannot pass the histogram size, and the
    entropy calibrator's defaults (128 bins, 128 quantized bins) leave only the full
    range to choose from.

    The calibrators keep every intermediate output of every batch they are given until
    they reduce them (Longformer: over 22 GiB for 8 batches of 4 x 512 tokens), so they
    are fed one sample at a time; min/max and histograms merge across calls, so the
    ranges are the same.
    """
    from onnxruntime.quantization import CalibrationMethod, create_calibrator, save_tensors_data

    options: dict[str, Any] = {
        "minmax": {},
        "entropy": {"num_bins": 512, "num_quantized_bins": 128},
        "percentile": {"num_bins": 2048, "percentile": 99.999},
    }[method]
    calibrator = create_calibrator(
        src,
        list(op_types) if op_types else None,
        augmented_model_path=str(Path(scratch) / "augmented.onnx"),
        calibrate_method=getattr(CalibrationMethod, CALIBRATE_METHODS[method]),
        extra_options=options,
    )
    try:
        for b in batches:
            for i in range(int(b[0].shape[0])):
                calibrator.collect_data(
                    _calibration_reader(names, [tuple(t[i : i + 1] for t in b)])
                )
        ranges = calibrator.compute_data()
    finally:
        del calibrator
    cache = Path(scratch) / "calibration.json"
    save_tensors_data(ranges, cache)
    return cache
