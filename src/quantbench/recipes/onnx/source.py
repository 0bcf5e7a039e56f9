"""``fp32`` of a given ONNX file: the file itself in ONNX Runtime, sized as shipped."""

from __future__ import annotations

from typing import Any

from quantbench.recipes import Artifact
from quantbench.recipes.onnx.graph import graph_facts
from quantbench.recipes.onnx.runtime import PROVIDER, RUNTIME


def given_fp32(model: Any) -> Artifact:
    """The baseline of an ONNX model: its session as loaded, what was read about it."""
    module = model.module
    facts = graph_facts(module.onnx_file)
    return Artifact(
        "fp32",
        module,
        runtime=RUNTIME,
        notes=list(model.notes),
        size_bytes=facts["size_bytes"],
        file=module.onnx_file,
        quantized_modules=facts["quantized"],
        float_modules=facts["float"],
        int8_param_fraction=facts["int8_param_fraction"],
        param_bytes_by_dtype=facts["param_bytes_by_dtype"],
        details={
            "provider": PROVIDER, "opset": facts["opset"], "intra_op_threads": module.threads,
            "source": "the ONNX file as given", "inputs": [
                {"name": p.name, "dtype": p.dtype, "dims": list(p.dims)}
                for p in module.signature.inputs
            ],
        },
    )  # fmt: skip
