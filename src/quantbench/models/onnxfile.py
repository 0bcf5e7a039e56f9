"""ONNX files as models: ``onnx:<file>`` or any name ending in ``.onnx``.

The file is read and checked once (:func:`read_onnx`): a file that is not ONNX, a
truncated one, missing external data, a graph with no inputs, an input of a type that
cannot be fed, or an op ONNX Runtime cannot load is a :class:`QuantbenchError` naming
the file. The family comes from the graph's declared inputs:

- ``text``: an integer ``input_ids`` of rank 2 (``attention_mask``, ``token_type_ids``,
  ``position_ids`` beside it are made from it when data gives only ids and mask);
- ``vision``: a single 4-D float input (N, C, H, W);
- ``tensor``: anything else (tabular, audio, several inputs);

``options: {family: ...}`` overrides it. Symbolic dims: the first is the batch, a text
model's sequence axis and a vision model's height/width follow the size sweep
(``options: {sweep_dim: name}`` makes another the one it varies), any other takes
``options: {dims: {name: n}}`` (default :data:`~quantbench.recipes.onnx.given.OTHER_DIM`,
said in a note).

Example::

    >>> lm = load_model("onnx:model.onnx")                                # doctest: +SKIP
    >>> lm.family, [p.name for p in lm.module.signature.inputs]           # doctest: +SKIP
    ('text', ['input_ids', 'attention_mask'])
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from quantbench.errors import QuantbenchError, first_line, shown, unknown_name

PREFIX = "onnx:"
OPTIONS = ("dims", "family", "sweep_dim")
FAMILIES = ("vision", "text", "tensor")
_FEEDABLE = ("float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool")
_TEXT_NAMES = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


def onnx_path(name: str) -> str | None:
    """The file of an ONNX model name (``onnx:<file>`` or ``<file>.onnx``), else None."""
    if name.startswith(PREFIX):
        return name[len(PREFIX) :]
    if name.lower().endswith(".onnx"):
        return name
    return None


def _check_file(text: str) -> Path:
    if not text:
        raise QuantbenchError(f"model '{PREFIX}' needs a file after '{PREFIX}'")
    path = Path(text).expanduser()
    if not path.exists():
        raise QuantbenchError(f"ONNX model '{text}' does not exist")
    if not path.is_file():
        raise QuantbenchError(f"ONNX model '{text}' is not a file")
    if path.stat().st_size == 0:
        raise QuantbenchError(f"ONNX model '{text}' is empty (0 bytes)")
    return path


def _external_files(m: Any, path: Path) -> list[str]:
    """The external data files the graph's weights live in; missing or short ones (a
    copy cut off midway) are an input error."""
    import onnx

    need: dict[Path, int] = {}
    for t in m.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        where = (path.parent / info.get("location", "")).resolve()
        end = int(info.get("offset", 0) or 0) + int(info.get("length", 0) or 0)
        need[where] = max(need.get(where, 0), end)
    for f, end in need.items():
        if not f.is_file():
            raise QuantbenchError(
                f"ONNX model '{path}': its external data file '{f.name}' is missing"
            )
        if f.stat().st_size < end:
            raise QuantbenchError(
                f"ONNX model '{path}': its external data file '{f.name}' is truncated "
                f"({f.stat().st_size} bytes, the graph reads up to {end})"
            )
    return [str(f) for f in need]


def _parse(path: Path) -> Any:
    import onnx

    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise QuantbenchError(
            f"'{path}' is not an ONNX model (truncated or another format): "
            f"{first_line(e, with_type=False)}"
        ) from None
    if not m.graph.node and not m.graph.input:
        raise QuantbenchError(f"'{path}' is not an ONNX model (no graph in it)")
    return m


def _check_graph(path: Path) -> None:
    import onnx

    try:
        # by path: the checker finds external data relative to the file's directory
        onnx.checker.check_model(str(path))
    except Exception as e:
        raise QuantbenchError(
            f"ONNX model '{path}' is not valid: {first_line(e, with_type=False)}"
        ) from None


def _ports(m: Any, path: Path) -> list[Any]:
    import numpy as np
    import onnx

    from quantbench.recipes.onnx.given import Port

    inits = {i.name for i in m.graph.initializer}
    ports = []
    for vi in m.graph.input:
        if vi.name in inits:
            continue  # an initializer listed as an input (old exporters): a weight
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type"):
            raise QuantbenchError(
                f"ONNX model '{path}': input '{vi.name}' is not a tensor (sequences and maps "
                "cannot be fed)"
            )
        try:
            dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)).name
        except Exception:
            dtype = onnx.TensorProto.DataType.Name(tt.elem_type).lower()
        if dtype not in _FEEDABLE:
            kind = onnx.TensorProto.DataType.Name(tt.elem_type).lower()
            raise QuantbenchError(
                f"ONNX model '{path}': input '{vi.name}' is {kind}: quantbench feeds numeric "
                "tensors only"
            )
        if not tt.HasField("shape"):
            raise QuantbenchError(
                f"ONNX model '{path}': input '{vi.name}' declares no shape, so there is "
                "nothing to build inputs from"
            )
        dims: list[int | str] = []
        for axis, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(int(d.dim_value))
            else:
                dims.append(d.dim_param or f"{vi.name}:{axis}")
        ports.append(Port(vi.name, dtype, tuple(dims)))
    if not ports:
        raise QuantbenchError(
            f"ONNX model '{path}' declares no inputs: there is nothing to feed it"
        )
    if not m.graph.output:
        raise QuantbenchError(f"ONNX model '{path}' declares no outputs")
    return ports


def family_of(ports: list[Any]) -> str:
    """text: an integer ``input_ids`` of rank 2; vision: one 4-D float input; else tensor."""
    for p in ports:
        if p.name == "input_ids" and p.dtype.startswith(("int", "uint")) and len(p.dims) == 2:
            return "text"
    if len(ports) == 1 and ports[0].dtype.startswith("float") and len(ports[0].dims) == 4:
        return "vision"
    return "tensor"


def _vocab(m: Any) -> int | None:
    """Rows of the embedding table that ``input_ids`` indexes (through Casts)."""
    inits = {i.name: i for i in m.graph.initializer}
    names = {"input_ids"}
    for n in m.graph.node:  # the graph's nodes are topologically sorted
        if (
            n.op_type in ("Cast", "Identity", "Reshape", "Flatten")
            and n.input
            and n.input[0] in names
        ):
            names.update(n.output)
    rows = [
        int(inits[n.input[0]].dims[0])
        for n in m.graph.node
        if n.op_type == "Gather" and len(n.input) > 1 and n.input[1] in names
        and n.input[0] in inits and inits[n.input[0]].dims
    ]  # fmt: skip
    return min(rows) if rows else None


def _options(path: Path, options: dict[str, Any]) -> tuple[str | None, dict[str, int]]:
    for key in options:
        if key not in OPTIONS:
            raise QuantbenchError(
                f"ONNX model '{path}': {unknown_name('option', str(key), OPTIONS)}"
            )
    family = options.get("family")
    if family is not None and family not in FAMILIES:
        raise QuantbenchError(
            f"ONNX model '{path}': {unknown_name('family', str(family), FAMILIES)}"
        )
    dims = options.get("dims") or {}
    if not isinstance(dims, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in dims.values()
    ):
        raise QuantbenchError(
            f"ONNX model '{path}': dims must map dim names to positive integers, got {shown(dims)}"
        )
    return family, {str(k): int(v) for k, v in dims.items()}


def _signature(m: Any, path: Path, options: dict[str, Any]) -> tuple[Any, list[str]]:
    """The graph's :class:`Signature` and the notes on the dims it had to choose."""
    from quantbench.recipes.onnx.given import OTHER_DIM, Signature

    ports = _ports(m, path)
    family, values = _options(path, options)
    family = family or family_of(ports)
    batch = {p.dims[0] for p in ports if p.dims and isinstance(p.dims[0], str)}
    size: set[str] = set()
    for p in ports:
        if family == "text" and p.name in _TEXT_NAMES and len(p.dims) == 2:
            size.add(p.dims[1]) if isinstance(p.dims[1], str) else None
        if family == "vision" and len(p.dims) == 4:
            size.update(d for d in p.dims[2:] if isinstance(d, str))
    symbols = {d for p in ports for d in p.dims if isinstance(d, str)}
    sweep = options.get("sweep_dim")
    if sweep is not None:  # the user's choice of the dim the size sweep varies
        if sweep not in symbols or sweep in batch:
            raise QuantbenchError(
                f"ONNX model '{path}': "
                f"{unknown_name('sweep_dim', str(sweep), sorted(symbols - batch))}"
            )
        size = {str(sweep)}
    size -= batch
    unknown = sorted(set(values) - symbols)
    if unknown:
        raise QuantbenchError(
            f"ONNX model '{path}': {unknown_name('symbolic dim', unknown[0], sorted(symbols))}"
        )
    batch -= set(values)
    size -= set(values)
    notes = []
    for d in sorted(symbols - batch - size - set(values)):
        notes.append(
            f"symbolic dim '{d}' is neither the batch nor the input size: set to {OTHER_DIM} "
            f"(choose with options: {{dims: {{{d}: N}}}})"
        )
    params = [tuple(int(x) for x in t.dims) for t in m.graph.initializer]
    sig = Signature(ports, family, frozenset(batch), frozenset(size), values, _vocab(m), params,
                    _layers(m))  # fmt: skip
    return sig, notes


def _layers(m: Any) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Nodes that carry a weight initializer: name -> (op, weight shape)."""
    inits = {i.name: tuple(int(d) for d in i.dims) for i in m.graph.initializer}
    out = {}
    for n in m.graph.node:
        w = n.input[0] if n.op_type == "Gather" else (n.input[1] if len(n.input) > 1 else "")
        if n.op_type in ("MatMul", "Gemm", "Conv", "Gather") and n.name and w in inits:
            out[n.name] = (n.op_type, inits[w])
    return out


def _outputs(m: Any, family: str) -> tuple[str, int | None]:
    """(task, classes) from the first output's declared shape."""
    out = m.graph.output[0]
    dims = [
        d.dim_value if d.HasField("dim_value") else None for d in out.type.tensor_type.shape.dim
    ]
    classes = dims[-1] if len(dims) == 2 and dims[-1] else None
    if family != "text":
        return ("classification" if classes else "features"), classes
    if len(dims) == 2 and "logit" in out.name.lower():
        return "classification", classes
    return ("embedding" if len(dims) == 2 else "features"), None


@functools.lru_cache(maxsize=16)
def _read(
    path_text: str, display: str, stamp: tuple[int, int], options_key: str
) -> tuple[Any, ...]:
    path, shown_as = Path(path_text), Path(display)
    try:
        m = _parse(path)
        files = [str(path), *_external_files(m, path)]
        _check_graph(path)
        return _described(m, path, files, options_key)
    except QuantbenchError as e:  # name the file as the user gave it
        raise QuantbenchError(str(e).replace(str(path), str(shown_as))) from None


def _described(m: Any, path: Path, files: list[str], options_key: str) -> tuple[Any, ...]:
    import json

    import onnxruntime as ort

    sig, notes = _signature(m, path, json.loads(options_key))
    task, classes = _outputs(m, sig.family)
    if len(m.graph.output) > 1:
        notes.append(
            f"the graph has {len(m.graph.output)} outputs: the first, "
            f"'{m.graph.output[0].name}', is the one compared and scored"
        )
    try:
        so = ort.SessionOptions()
        so.log_severity_level = 4
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise QuantbenchError(
            f"onnxruntime cannot load ONNX model '{path}': {first_line(e, with_type=False)}"
        ) from None
    return sig, notes, task, classes, files


def read_onnx(text: str, options: dict[str, Any] | None = None) -> tuple[Any, ...]:
    """(Signature, notes, task, classes, files) of the ONNX file ``text``; checked once
    per file version (the same file is read by the up-front checks and the load)."""
    import json

    path = _check_file(text).resolve()
    st = path.stat()
    key = json.dumps(options or {}, sort_keys=True, default=str)
    return _read(str(path), text, (st.st_mtime_ns, st.st_size), key)


def tokenizer_dir(path: Path) -> str | None:
    """The file's directory when it holds a tokenizer (as optimum exports leave it)."""
    names = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "spiece.model")
    return str(path.parent) if any((path.parent / n).is_file() for n in names) else None


def onnx_info(name: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ModelInfo fields of ONNX model ``name`` (the file is read and checked)."""
    text = onnx_path(name)
    text = name if text is None else text
    sig, _, _, _, files = read_onnx(text, options)
    desc = f"ONNX file {Path(text).name} ({_mib(files)})"
    return {"name": name, "family": sig.family, "max_input_size": None, "description": desc}


def _mib(files: list[str]) -> str:
    return f"{sum(os.path.getsize(f) for f in files) / 2**20:.1f} MiB"


def load_onnx(
    name: str, weights: str = "auto", options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The LoadedModel fields of ONNX model ``name``: its module is the file's ONNX
    Runtime session."""
    from quantbench.recipes.onnx.given import GivenOnnx

    text = onnx_path(name)
    text = name if text is None else text
    if weights not in ("auto", "random", "pretrained"):
        raise QuantbenchError(
            f"ONNX model '{text}' carries its own weights: weights '{weights}' does not apply"
        )
    sig, notes, task, classes, files = read_onnx(text, options)
    path = Path(text).expanduser().resolve()
    notes = list(notes)
    if weights == "random":
        notes.append(
            "weights: the file's own (an ONNX file is measured as it is, never re-initialised)"
        )
    module = GivenOnnx(path, sig, files)
    size = f"{len(sig.inputs)} input(s): " + ", ".join(
        f"{p.name} {p.dtype}[{', '.join(map(str, p.dims))}]" for p in sig.inputs
    )
    return dict(
        name=name, family=sig.family, module=module, weights=str(path), random_weights=False,
        is_classifier=task == "classification", max_input_size=None,
        make_inputs=module.make_inputs, description=f"ONNX file {path.name}, {size}",
        notes=notes, task=task, num_outputs=classes,
        source_dir=tokenizer_dir(path) if sig.family == "text" else None,
    )  # fmt: skip


def allowed_points(
    name: str, options: dict[str, Any] | None, points: list[tuple[int, int, str]]
) -> tuple[list[tuple[int, int, str]], str | None]:
    """A sweep's (batch, size, sweep) points as the ONNX file ``name`` can run them: a
    fixed dim stays the graph's, so points that become the same shape are timed once.
    Returns the points and a note when the sweep collapsed (None for other models)."""
    text = onnx_path(name)
    if text is None:
        return points, None
    sig = read_onnx(text, options)[0]
    out: list[tuple[int, int, str]] = []
    seen: set[tuple[int, int]] = set()
    for b, s, sweep in points:
        shape = sig.shape_at(b, s)
        if shape not in seen:
            seen.add(shape)
            out.append((*shape, sweep))
    if len(out) == len(points) and all(p[:2] == q[:2] for p, q in zip(out, points, strict=True)):
        return out, None
    why = []
    if sig.fixed_batch():
        why.append(f"batch fixed at {sig.fixed_batch()}")
    where = sig.size_port()
    if where is None:
        why.append(f"no input-size axis ({sig.family} model: its size is the values per example)")
    elif not any(isinstance(where[0].dims[a], str) for a in where[1]):
        why.append(f"input size fixed at {sig.shape_at(1, 1)[1]}")
    return out, (
        f"the latency sweep is the {len(out)} shape(s) the ONNX graph can run, of "
        f"{len(points)} asked: {', '.join(why) or 'fixed dims'}"
    )


def check_data(name: str, options: dict[str, Any] | None, ds_spec: Any, what: str) -> None:
    """Images for an ONNX graph of fixed height and width must be cropped to them: said
    before anything is measured (ONNX Runtime would refuse every batch)."""
    text = onnx_path(name)
    if text is None or getattr(ds_spec, "kind", None) != "imagefolder":
        return
    sig = read_onnx(text, options)[0]
    where = sig.size_port()
    if where is None or sig.family != "vision":
        return
    h, w = (where[0].dims[a] for a in where[1])
    if isinstance(h, int) and isinstance(w, int) and (h, w) != (ds_spec.crop, ds_spec.crop):
        raise QuantbenchError(
            f"ONNX model '{text}' takes {h}x{w} images and {what} '{ds_spec.path}' gives "
            f"{ds_spec.crop}x{ds_spec.crop}: set crop: {h} (and resize) in its dataset entry"
        )
