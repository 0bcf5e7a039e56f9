"""Deployable artifacts, every format in one room: ``quantbench quantize`` and ``run
--save-artifacts`` write them, :func:`load_artifact` reads them.

- ONNX Runtime recipes write a plain ``.onnx`` file: it runs in onnxruntime with no
  quantbench installed.
- ``pt2e-static-int8`` writes a ``.pt2`` file (``torch.export.save``): plain
  ``torch.export.load(path).module()`` runs it once ``import
  torch.ao.quantization.fx._decomposed`` has registered its quantize/dequantize ops;
  :func:`load_artifact` also compiles it with Inductor freezing, as it was measured.
- torch recipes write a checkpoint holding the quantized state_dict and what is needed
  to rebuild its structure (model, recipe and its settings, engine, layers left in
  float). It loads with ``torch.load(weights_only=True)`` — no pickled code — and
  :func:`load_artifact` turns it back into a callable module by rebuilding the
  architecture and loading the weights. A ``py:<file>:<obj>`` model's checkpoint also
  holds the file's text, so it rebuilds anywhere, without the file.

The room:

- :mod:`~quantbench.artifacts.formats`: the table of formats (name, extensions, whether
  loading runs code, the module that writes and loads it); adding a format is one entry
  there and one module;
- :mod:`~quantbench.artifacts.statedict`, :mod:`~quantbench.artifacts.onnx`,
  :mod:`~quantbench.artifacts.pt2`: one module per format;
- :mod:`~quantbench.artifacts.rebuild`: a state_dict checkpoint back into a module;
- :mod:`~quantbench.artifacts.write`: what ``quantize`` and ``run --save-artifacts`` write
  and record; :mod:`~quantbench.artifacts.load`: :func:`load_artifact`;
- :mod:`~quantbench.artifacts.names`: file names and hashes.

Example::

    >>> import quantbench
    >>> quantbench.quantize("resnet18", "static-int8", "r18-int8.pt")  # doctest: +SKIP
    >>> m = load_artifact("r18-int8.pt")                               # doctest: +SKIP
    >>> m(torch.randn(1, 3, 224, 224)).shape                           # doctest: +SKIP
    torch.Size([1, 1000])
"""

from __future__ import annotations

from quantbench.artifacts.formats import FORMATS, Format, format_for_path, get_format
from quantbench.artifacts.load import load_artifact
from quantbench.artifacts.statedict import FORMAT, FORMAT_VERSION
from quantbench.artifacts.write import Written, check_output, save_variants, write_variant

__all__ = [
    "FORMAT", "FORMATS", "FORMAT_VERSION", "Format", "Written", "check_output",
    "format_for_path", "get_format", "load_artifact", "save_variants", "write_variant",
]  # fmt: skip
