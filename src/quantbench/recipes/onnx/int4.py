"""``ort-int4-weight-only``: 4-bit weights that ONNX Runtime's CPU kernels run as they are
(``MatMulNBits`` for Linear layers, ``GatherBlockQuantized`` for the word embeddings).

What it takes to keep a sentence encoder close to fp32 at about 4.6 bits per weight,
measured on all-MiniLM-L6-v2 (``benchmarks/sentence_fidelity.py``; mean cosine of the
sentence embeddings to fp32's, MatMuls only, embeddings float):

- round-to-nearest in blocks of 32: 0.9761; HQQ (onnxruntime's): 0.9792, but its float
  zero points cost a bit per weight; GPTQ on the calibration sentences: 0.9843;
- ``accuracy_level`` (int8 activations inside the kernel) changes nothing measurable;
- int4 position embeddings cost more than the whole word table (0.9952 vs 0.9985 at
  blocks of 128): only tables gathered by the model's input ids are quantized;
- scales in fp16 (cast to fp32 once when the session loads) take blocks of 32 from
  5.1 to 4.6 bits per weight, what BERT-base needs to stay under 15% of fp32.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from quantbench.errors import QuantbenchError, UnsupportedError
from quantbench.recipes import Artifact, QuantContext, recipe
from quantbench.recipes.onnx.export import exported, graph_inputs
from quantbench.recipes.onnx.given import given_file
from quantbench.recipes.onnx.recipes import (
    _artifact,
    _excluded,
    _float_nodes,
    _new_dir,
    _preprocess,
    _quiet,
)
from quantbench.recipes.onnx.runtime import RUNTIME, require

BLOCK_SIZES = (16, 32, 64, 128, 256)
ALGORITHMS = ("gptq", "rtn", "hqq")
EMBEDDINGS = ("input", "all", "none")
SCALES = ("float16", "float32")
_NAME = "ort-int4-weight-only"
_NOTHING = (
    f"{_NAME} found no MatMul or Gather weights to quantize (it quantizes Linear layers "
    "exported as MatMul, and embedding tables; convolutions and Gemm stay float)"
)


@dataclass(frozen=True)
class OrtInt4Config:
    """Weight-only int4: MatMul weights in blocks of ``block_size`` along the input
    dimension (``MatMulNBits``), activations stay float.

    ``algorithm``: ``gptq`` (error feedback from the calibration batches' Hessians),
    ``rtn`` (round to nearest, onnxruntime's quantizer) or ``hqq`` (onnxruntime's HQQ:
    float zero points, no calibration). ``embeddings``: ``input`` quantizes the tables
    gathered by the model's input ids (the word embeddings), ``all`` every Gather table
    (position embeddings too), ``none`` keeps them float; in blocks of
    ``embeddings_block_size``. ``scales``: the file stores them in float16 or float32.
    ``accuracy_level`` 4 lets the CPU kernel compute in int8 (the fast path on VNNI).
    """

    block_size: int = 32
    symmetric: bool = False  # asymmetric (with zero points) kept MiniLM closer to fp32
    accuracy_level: int = 4
    algorithm: str = "gptq"
    embeddings: str = "input"
    embeddings_block_size: int = 128
    scales: str = "float16"

    def check(self) -> None:
        for name in ("block_size", "embeddings_block_size"):
            if getattr(self, name) not in BLOCK_SIZES:
                raise QuantbenchError(
                    f"{_NAME} {name} must be one of {', '.join(map(str, BLOCK_SIZES))}, "
                    f"got {getattr(self, name)}"
                )
        if self.accuracy_level not in (0, 1, 2, 3, 4):
            raise QuantbenchError(f"{_NAME} accuracy_level must be 0-4, got {self.accuracy_level}")
        for name, valid in (("algorithm", ALGORITHMS), ("embeddings", EMBEDDINGS),
                            ("scales", SCALES)):  # fmt: skip
            if getattr(self, name) not in valid:
                raise QuantbenchError(
                    f"{_NAME} {name} must be one of {', '.join(valid)}, got {getattr(self, name)!r}"
                )
        if self.algorithm == "hqq" and self.symmetric:
            raise QuantbenchError(f"{_NAME}: hqq is asymmetric only (float zero points)")


def _weight_matmuls(graph: Any) -> list[Any]:
    """MatMul nodes whose B is a 2-D float initializer (the Linear layers)."""
    inits = {i.name: i for i in graph.initializer}
    return [
        n
        for n in graph.node
        if n.op_type == "MatMul"
        and n.input[1] in inits
        and len(inits[n.input[1]].dims) == 2
        and inits[n.input[1]].data_type == 1
    ]


def _embedding_gathers(graph: Any, which: str) -> list[str]:
    """Gather nodes over float tables: those indexed by a graph input (``input``) or all."""
    if which == "none":
        return []
    inits = {i.name for i in graph.initializer}
    inputs = {i.name for i in graph.input} - inits
    return [
        n.name
        for n in graph.node
        if n.op_type == "Gather"
        and n.input[0] in inits
        and (which == "all" or n.input[1] in inputs)
    ]


def _gptq_pass(
    graph: Any,
    src: Any,
    config: OrtInt4Config,
    ctx: QuantContext,
    exclude: frozenset[str] = frozenset(),
) -> None:
    """Replace every weight MatMul (but those in ``exclude``) by MatMulNBits with
    GPTQ-quantized weights. A weight shared by several MatMuls is quantized once, for the
    sum of their inputs' Hessians."""
    import onnx
    from onnx import numpy_helper

    from quantbench.recipes.onnx.gptq import gptq, hessians, pack

    nodes = [n for n in _weight_matmuls(graph) if n.name not in exclude]
    if not nodes:  # only embedding tables to quantize (ORT would return every output)
        return
    inits = {i.name: i for i in graph.initializer}
    feeds = [i.name for i in graph.input if i.name not in inits]
    h = hessians(src, sorted({n.input[0] for n in nodes}), ctx.calib_inputs, feeds)
    users: dict[str, list[Any]] = {}
    for node in nodes:
        users.setdefault(node.input[1], []).append(node)
    replaced: dict[int, Any] = {}
    for base, group in users.items():
        w = numpy_helper.to_array(inits[base])
        hess = sum(h[n.input[0]] for n in {n.input[0]: n for n in group}.values())
        q, scales, zeros = gptq(w, hess, config.block_size, config.symmetric)
        t = pack(q.numpy(), scales.numpy(), zeros.numpy(), config.block_size, config.symmetric)
        new = [numpy_helper.from_array(t.packed, f"{base}_Q4"),
               numpy_helper.from_array(t.scales, f"{base}_scales")]  # fmt: skip
        if t.zero_points is not None:
            new.append(numpy_helper.from_array(t.zero_points, f"{base}_zero_points"))
        graph.initializer.extend(new)
        attrs = {"K": int(w.shape[0]), "N": int(w.shape[1]), "bits": 4,
                 "block_size": config.block_size}  # fmt: skip
        if config.accuracy_level:
            attrs["accuracy_level"] = config.accuracy_level
        for node in group:
            replaced[id(node)] = onnx.helper.make_node(
                "MatMulNBits", [node.input[0], *(i.name for i in new)], list(node.output),
                name=f"{node.name}_Q4", domain="com.microsoft", **attrs,
            )  # fmt: skip
    kept = [replaced.get(id(n), n) for n in graph.node]
    del graph.node[:]
    graph.node.extend(kept)
    used = {i for n in graph.node for i in n.input}
    stale = [i for i in graph.initializer if i.name not in used]
    for i in stale:
        graph.initializer.remove(i)


def _accuracy_level(graph: Any) -> int:
    """The accuracy_level the MatMulNBits nodes carry (0: unset, float compute)."""
    levels = [
        a.i
        for n in graph.node
        if n.op_type == "MatMulNBits"
        for a in n.attribute
        if a.name == "accuracy_level"
    ]
    return max(levels, default=0)


def _fp16_scales(model: Any) -> int:
    """Store the float32 scales (and HQQ's float zero points) of the 4-bit ops as float16,
    each behind a Cast to float32 that onnxruntime folds once when the session loads."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    casts, done = [], 0
    for n in g.node:
        if n.op_type not in ("MatMulNBits", "GatherBlockQuantized"):
            continue
        for idx in (2, 3):
            name = n.input[idx] if len(n.input) > idx else ""
            t = inits.get(name)
            if t is None or t.data_type != onnx.TensorProto.FLOAT:
                continue
            half = numpy_helper.from_array(
                numpy_helper.to_array(t).astype(np.float16), name + "_fp16"
            )
            g.initializer.remove(t)
            g.initializer.append(half)
            del inits[name]
            casts.append(
                onnx.helper.make_node("Cast", [half.name], [name], to=1, name=name + "_cast")
            )
            done += 1
    kept = list(g.node)
    del g.node[:]
    g.node.extend(casts + kept)
    return done


def _may_have_weights(model: Any) -> bool:
    """Whether a torch model has Linear or Embedding layers (an ONNX file's graph is
    looked at once it is read)."""
    import torch

    if given_file(model) is not None:
        return True
    layers = (torch.nn.Linear, torch.nn.Embedding)
    return any(isinstance(m, layers) for m in model.module.modules())


@recipe(
    _NAME,
    precision="int4 weights (MatMul blocks of 32, word embeddings blocks of 128), fp32 activations",
    runtime=RUNTIME,
    description=(
        "ONNX Runtime MatMulNBits: 4-bit Linear weights in blocks of 32 (GPTQ on the calibration "
        "batches), word embeddings as GatherBlockQuantized, fp16 scales; activations float"
    ),
    config=OrtInt4Config(),
    float_layers=True,
    quantizes=("MatMul", "Gather"),
    file_format="onnx",
    library="onnxruntime",
    config_version=2,
    baseline="ort-fp32",
)
def _ort_int4(model: Any, config: OrtInt4Config, ctx: QuantContext) -> Artifact:
    require()
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        HQQWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    config.check()
    if not _may_have_weights(model):
        raise UnsupportedError(_NOTHING)  # before exporting it
    if config.algorithm == "gptq" and not ctx.calib_inputs:
        raise UnsupportedError(f"{_NAME} with algorithm gptq needs calibration batches")
    ctx = dataclasses.replace(ctx, calib_inputs=graph_inputs(model, ctx)[1])
    exp = exported(model, ctx)
    out_dir, path = _new_dir()
    notes: list[str] = []
    t = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="quantbench-ort-pre-") as scratch:
            src = _preprocess(exp.path, scratch, notes)
            m = onnx.load(str(src))
            exclude = _float_nodes(src, model, ctx)  # layers the fallback keeps float
            gathers = [n for n in _embedding_gathers(m.graph, config.embeddings)
                       if n not in exclude]  # fmt: skip
            n_matmuls = len(_weight_matmuls(m.graph))
            if not n_matmuls and not gathers:
                raise UnsupportedError(_NOTHING)
            with _quiet(scratch):
                if gathers:
                    # int4 tables need opset 21; the quantizer would only relabel the graph
                    # (ReduceL2's axes attribute, say, is then invalid), so convert it
                    from onnx import version_converter

                    m = version_converter.convert_version(m, 21)
                    others = [n.name for n in m.graph.node if n.op_type == "Gather"]
                    q = MatMulNBitsQuantizer(
                        m, bits=4, block_size=config.embeddings_block_size,
                        is_symmetric=config.symmetric, op_types_to_quantize=("Gather",),
                        quant_axes=(("Gather", 1),),
                        nodes_to_exclude=[n for n in others if n not in gathers],
                    )  # fmt: skip
                    q.process()
                    m = q.model.model
                if config.algorithm == "gptq":
                    _gptq_pass(m.graph, src, config, ctx, frozenset(exclude))
                    if not any(o.domain == "com.microsoft" for o in m.opset_import):
                        m.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
                else:
                    algo = None
                    if config.algorithm == "hqq":
                        algo = HQQWeightOnlyQuantConfig(
                            block_size=config.block_size, bits=4, op_types_to_quantize=("MatMul",)
                        )
                    q = MatMulNBitsQuantizer(
                        m, bits=4, block_size=config.block_size, is_symmetric=config.symmetric,
                        accuracy_level=config.accuracy_level, op_types_to_quantize=("MatMul",),
                        algo_config=algo, nodes_to_exclude=exclude,
                    )  # fmt: skip
                    q.process()
                    m = q.model.model
                fp16 = _fp16_scales(m) if config.scales == "float16" else 0
                level = _accuracy_level(m.graph)
                onnx.save(m, str(path))
        quantize_s = time.perf_counter() - t
        if config.algorithm == "gptq":
            n = sum(len(b[0]) for b in ctx.calib_inputs)
            notes.append(f"GPTQ: weight rounding fitted to {n} calibration inputs "
                         f"({ctx.calib_source})")  # fmt: skip
        return _artifact(
            _NAME, path, out_dir, exp, quantize_s, notes,
            {"bits": 4, "algorithm": config.algorithm, "block_size": config.block_size,
             "symmetric": config.symmetric, "accuracy_level": level,
             "embeddings": gathers, "embeddings_block_size": config.embeddings_block_size,
             "scales": config.scales, "fp16_scale_tensors": fp16, **_excluded(exclude)},
        )  # fmt: skip
    except Exception:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
