"""Kind ``imagefolder``: a directory ``root/<class>/<image>`` (torchvision ImageFolder
layout); images that do not decode are skipped and listed."""

from __future__ import annotations

import os
from pathlib import Path

from quantbench.datasets.base import Dataset, _subset_order
from quantbench.datasets.spec import IMAGEFOLDER, DatasetSpec
from quantbench.errors import QuantbenchError, first_line

# torchvision.datasets.folder.IMG_EXTENSIONS, without importing torchvision here.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _scan_images(root: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """(classes, [(file, class index)]) in ImageFolder order; hidden entries ignored."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except PermissionError:
        raise QuantbenchError(
            f"cannot read dataset directory '{root}': permission denied"
        ) from None
    except OSError as e:
        raise QuantbenchError(f"cannot read dataset directory '{root}': {e.strerror}") from None
    entries = [e for e in entries if not e.name.startswith(".")]
    if not entries:
        raise QuantbenchError(f"dataset directory '{root}' is empty")
    classes = [e.name for e in entries if e.is_dir()]
    if not classes:
        raise QuantbenchError(
            f"dataset directory '{root}' has no class subfolders (expected "
            f"{root}/<class>/<image>, the torchvision ImageFolder layout)"
        )
    items: list[tuple[str, int]] = []

    def fail(e: OSError) -> None:
        raise QuantbenchError(f"cannot read dataset directory '{e.filename}': {e.strerror}")

    for index, name in enumerate(classes):
        for dirpath, dirnames, filenames in os.walk(root / name, onerror=fail, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fname in sorted(filenames):
                if not fname.startswith(".") and fname.lower().endswith(IMAGE_EXTENSIONS):
                    items.append((os.path.join(dirpath, fname), index))
    if not items:
        raise QuantbenchError(
            f"dataset directory '{root}' has no image files in its {len(classes)} class "
            f"subfolders (extensions: {', '.join(IMAGE_EXTENSIONS)})"
        )
    return classes, items


def _decode_problem(path: str) -> str | None:
    """None if ``path`` decodes completely, else why not."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
    except Exception as e:  # UnidentifiedImageError, OSError (truncated), DecompressionBomb...
        return first_line(e)
    return None


def _load_imagefolder(spec: DatasetSpec) -> Dataset:
    from concurrent.futures import ThreadPoolExecutor

    root = Path(spec.path)
    if not root.is_dir():
        raise QuantbenchError(f"dataset '{root}' is not a directory (kind imagefolder)")
    classes, items = _scan_images(root)
    order = _subset_order(len(items), spec)
    want = len(items) if spec.limit is None else min(spec.limit, len(items))
    good: list[int] = []
    skipped: list[tuple[str, str]] = []
    pos = 0
    # Walk the (seeded) order, checking that files decode, until `want` good ones are found.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        while len(good) < want and pos < len(order):
            chunk = order[pos : pos + max(want - len(good), 8)]
            pos += len(chunk)
            for i, problem in zip(
                chunk, pool.map(_decode_problem, [items[i][0] for i in chunk]), strict=True
            ):
                if problem is None:
                    if len(good) < want:
                        good.append(i)
                else:
                    skipped.append((items[i][0], problem))
    if not good:
        file, reason = skipped[0]
        raise QuantbenchError(
            f"none of the {len(skipped)} images in dataset '{root}' could be decoded "
            f"(e.g. '{file}': {reason})"
        )
    good.sort()
    skipped.sort()
    return Dataset(
        spec=spec,
        kind=IMAGEFOLDER,
        size=len(good),
        classes=classes,
        skipped=skipped,
        _items=[items[i][0] for i in good],
        _labels=[items[i][1] for i in good],
    )
