"""A model's inputs, from the data given to it: the ``load`` stage's part that decides a
model of your own's family and builds its inputs from its data's first examples, and
the check that the model runs on the inputs it will be measured with."""

from __future__ import annotations

from typing import Any

from quantbench.errors import QuantbenchError, first_line


def data_for(spec: Any, ref: Any) -> Any:
    """The data a model's inputs are taken from: its calibration data, else its
    evaluation data, else the training data (a dataset spec, or None)."""
    return (
        ref.calibration
        or spec.data.calibration
        or ref.dataset
        or spec.data.dataset
        or spec.data.train_dataset
    )


def adopt_data(lm: Any, spec: Any, ref: Any) -> Any:
    """``lm`` with its family and inputs taken from its data where they are the data's
    to decide (``family_from_data``: a module of your own without ``make_inputs``) and
    the data is tensors (not images, not texts to tokenize); else ``lm`` unchanged."""
    from quantbench import datasets

    d = data_for(spec, ref)
    if d is None or not lm.family_from_data:
        if lm.family == "tensor" and lm.family_from_data:
            raise QuantbenchError(
                f"model '{lm.name}' is a tensor model: give data its inputs come from "
                "(calibration= / dataset=, or --calibration FILE.npy|.npz|.pt|.csv), or "
                "make_inputs(batch_size, input_size, seed)"
            )
        return lm
    ds_spec = datasets.parse_dataset(d, "calibration")
    if ds_spec.kind not in (datasets.MEMORY, datasets.TENSORS):
        return lm  # images or texts: the vision / text family's own inputs
    ds = datasets.load_dataset(ds_spec)
    if ds.family == "vision" and lm.family != "tensor":
        return lm  # (N, 3, H, W) images: a vision model with its size sweep
    from quantbench.models.tensor import tensor_model

    return tensor_model(lm, ds, lm.input_spec)


def check_runs(lm: Any, inputs: tuple) -> None:
    """One forward on the inputs the run will use; a model that does not take them is one
    line that says what it was given and how to give it the right ones."""
    import torch

    try:
        with torch.inference_mode():
            lm.module(*inputs)
    except Exception as e:  # whatever the model raises on inputs it does not take
        shapes = ", ".join(f"{tuple(t.shape)} {str(t.dtype).replace('torch.', '')}" for t in inputs)
        fixed = " (or family tensor: only the batch varies)" if lm.family == "vision" else ""
        raise QuantbenchError(
            f"model '{lm.name}' does not run on its {lm.family} inputs ({shapes}): "
            f"{first_line(e)}; give the data it takes (calibration= a DataLoader, or "
            f"--calibration a .npy/.npz/.pt/.csv file){fixed}, an input_spec, or make_inputs"
        ) from None


def check_input_spec(ref: Any, ds: Any) -> None:
    """A model's ``input_spec`` checked against the data its inputs come from, before
    anything is measured (an unknown input or dim is an input error, not a failed cell)."""
    from quantbench import handover
    from quantbench.datasets import MEMORY, TENSORS

    if ds.kind not in (MEMORY, TENSORS) or not ds._items:
        return
    name = ref.load_name
    if handover.is_memory(name):
        lm = handover.get(name, "model")
        spec, from_data = lm.input_spec, lm.family_from_data
    else:
        spec, from_data = (ref.options or {}).get("input_spec"), name.startswith("py:")
    if spec is None or not from_data:
        return
    from quantbench.models.tensor import parse_input_spec

    example = ds._items[0][0]
    names = tuple(ds.input_names) or tuple(f"input_{i}" for i in range(len(example)))
    parse_input_spec(spec, names, [(ds.size, *t.shape) for t in example])
