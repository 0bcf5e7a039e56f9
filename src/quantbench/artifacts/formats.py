"""The artifact formats quantbench ships: one entry each, and the module that implements it.

A recipe names its format (``Recipe.file_format``); ``quantize`` and ``run
--save-artifacts`` write it, :func:`quantbench.artifacts.load_artifact` reads it back. This
table is pure data (it imports no library and none of quantbench's upper rooms), so the
recipe registry checks names against it and listings read it without loading torch.

Adding a format is one :class:`Format` entry in :data:`FORMATS` plus its module, which
defines:

- ``load(path: Path, trust_code: bool) -> Any`` (required): the file as a callable. It
  refuses a file that is not what its name says in one line (:mod:`quantbench.fileformat`),
  and a file whose loading runs code unless ``trust_code``;
- ``write(art: Artifact, path: Path, meta: dict) -> None`` (optional): write ``art`` to
  ``path`` atomically (:mod:`quantbench.files`). Without it, the file the recipe wrote
  (``Artifact.file``) is copied, with its companions.

Example::

    >>> get_format("onnx").extension
    '.onnx'
    >>> format_for_path("model.pt2").name
    'pt2'
    >>> format_for_path("model.pth").name  # any other name: a quantbench checkpoint
    'state_dict'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from quantbench.errors import unknown_name


@dataclass(frozen=True)
class Format:
    """One kind of file quantbench ships.

    ``extensions``: the first is the file a user names (``-o model.onnx``); the others are
    companions written beside it under the same stem (OpenVINO's ``.bin`` next to its
    ``.xml``); size and hash cover them all. ``what`` names the format in the one line that
    refuses a file ("an ONNX model"). ``runs_code`` says why loading it runs code, so that
    it needs ``trust_code=True`` (None: loading never runs code); ``runs_code_if`` narrows
    that to some models (a ``py:`` model's checkpoint holds its source). ``any_name``: the
    format is written under any name, and a file no other format claims by extension is
    read as this one. ``overhead``: the file holds metadata beside what ``run`` sizes,
    recorded as ``overhead_bytes``; otherwise the file is what was sized.
    """

    name: str
    extensions: tuple[str, ...]
    what: str
    module: str
    runs_code: str | None = None
    runs_code_if: Callable[[str], bool] | None = None
    any_name: bool = False
    overhead: bool = False

    @property
    def extension(self) -> str:
        return self.extensions[0]

    def files(self, path: str | Path) -> list[Path]:
        """The file at ``path`` and its companions."""
        p = Path(path)
        return [p, *(p.with_suffix(ext) for ext in self.extensions[1:])]

    def size(self, path: str | Path) -> int:
        """Bytes shipped: the file and its companions, as ``du`` sees them."""
        return sum(f.stat().st_size for f in self.files(path))

    def needs_trust(self, model: str) -> str | None:
        """Why loading this format's file of ``model`` runs code (None: it does not)."""
        if self.runs_code is None or (self.runs_code_if and not self.runs_code_if(model)):
            return None
        return self.runs_code

    def impl(self) -> ModuleType:
        """The module that writes and loads this format (imported on first use)."""
        return importlib.import_module(self.module)


def _py_model(model: str) -> bool:
    return model.startswith("py:")


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "state_dict", (".pt",), "a quantbench artifact (a torch checkpoint)",
            "quantbench.artifacts.statedict",
            runs_code="it holds the source of your model, which rebuilding it runs",
            runs_code_if=_py_model, any_name=True, overhead=True,
        ),
        Format("onnx", (".onnx",), "an ONNX model", "quantbench.artifacts.onnx"),
        Format(
            "pt2", (".pt2",), "a .pt2 program (torch.export.save)", "quantbench.artifacts.pt2",
            runs_code="a .pt2 program is unpickled as it loads",
        ),
        Format("pte", (".pte",), "an ExecuTorch program (.pte)", "quantbench.artifacts.pte"),
        Format(
            "openvino-ir", (".xml", ".bin"), "an OpenVINO IR (.xml)",
            "quantbench.artifacts.openvino",
        ),
    )
}  # fmt: skip


def get_format(name: str) -> Format:
    """The format named ``name``; an unknown one lists the valid names."""
    if name not in FORMATS:
        raise unknown_name("file format", name, FORMATS)
    return FORMATS[name]


def format_for_path(path: str | Path) -> Format:
    """The format a file's name says it is: by its extension (or a companion's), else the
    format written under any name (a quantbench checkpoint)."""
    suffix = Path(path).suffix
    for f in FORMATS.values():
        if suffix in f.extensions and not f.any_name:
            return f
    return next(f for f in FORMATS.values() if f.any_name)
