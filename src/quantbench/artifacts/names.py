"""Where a run's artifacts go and how they are named and hashed.

Example::

    >>> safe_name("static-int8+compile")
    'static-int8+compile'
    >>> safe_name("hf:/models/x")
    'hf_models_x-e25d4b65'
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

ARTIFACTS_DIR = "artifacts"  # under a run's output directory: <out>/artifacts/<model>/


def safe_name(name: str) -> str:
    """A file name for a model or variant name. Safe names are kept (``static-int8+compile``);
    others are cleaned and get a short hash of the original, so two never collide:
    ``hf:/models/x`` -> ``hf_models_x-<8 hex>``."""
    safe = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("._-")[:80]
    if safe and safe == name:
        return safe
    return f"{safe or 'model'}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def sha256_of(paths: Path | Iterable[Path]) -> str:
    """The SHA-256 of a file, or of several read one after the other (a file and its
    companions): one file's is what ``sha256sum`` prints."""
    h = hashlib.sha256()
    for path in [paths] if isinstance(paths, Path) else paths:
        with path.open("rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()
