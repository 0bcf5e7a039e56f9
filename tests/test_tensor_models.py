"""Models of your own with inputs taken from the data given (issue 19, part 1): the
"tensor" family (tabular, several inputs, a 1-channel CNN), from Python and the CLI,
bad data files, and PT2E at an image size other than the export's."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch

import quantbench
from conftest import fast_overrides
from quantbench.cli import main
from quantbench.datasets.batches import params_of, split_batch
from quantbench.errors import QuantbenchError

FAST = fast_overrides(measure=["size", "fidelity", "latency"], tensor_batch_sizes=[1, 3])


class MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3)
        )

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.net(rows)


class TwoInputs(torch.nn.Module):
    """Numeric features and category indices (int64): the tabular multi-input case."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(5, 4)
        self.net = torch.nn.Sequential(torch.nn.Linear(8 + 3 * 4, 16), torch.nn.ReLU())
        self.head = torch.nn.Linear(16, 2)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        cats = self.emb(x_cat).flatten(1)
        return self.head(self.net(torch.cat([x_num, cats], dim=1)))


class GrayCNN(torch.nn.Module):
    """1 input channel, 8x8, and a Linear that fixes the spatial size."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def _loader(*tensors: torch.Tensor, batch_size: int = 8) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(*tensors), batch_size=batch_size
    )


def _cells(result) -> dict:
    return {c.recipe: c for c in result.results}


def test_batches_are_told_apart_by_the_forward_signature() -> None:
    x, y = torch.randn(4, 64), torch.randint(0, 3, (4,))
    mlp = params_of(MLP())
    two = params_of(TwoInputs())
    num, cat = torch.randn(4, 8), torch.randint(0, 5, (4, 3))
    assert split_batch((x, y), mlp).names == ("rows",)
    assert split_batch((x, y), mlp).labels is y
    assert split_batch(x, mlp).labels is None
    assert split_batch((num, cat), two).labels is None  # two inputs, no label
    s = split_batch((num, cat, y), two)
    assert s.names == ("x_num", "x_cat") and s.labels is y
    s = split_batch({"x_cat": cat, "label": y, "x_num": num}, two)  # keys in any order
    assert s.names == ("x_num", "x_cat") and s.inputs[1] is cat and s.labels is y
    assert split_batch({"x_num": num, "x_cat": cat}, two, labels=None).labels is None
    with pytest.raises(QuantbenchError, match="'extra' is not an argument"):
        split_batch({"x_num": num, "x_cat": cat, "extra": y}, two)
    with pytest.raises(QuantbenchError, match="needs 2"):
        split_batch((num,), two)


def test_tabular_mlp_from_python_with_a_dataloader(tmp_path) -> None:
    torch.manual_seed(0)
    loader = _loader(torch.randn(32, 64), torch.randint(0, 3, (32,)))
    result = quantbench.run(
        models=[MLP().eval()], recipes=["dynamic-int8", "static-int8"], calibration=loader,
        out=str(tmp_path / "o"), **FAST,
    )  # fmt: skip
    cells = _cells(result)
    assert {c.family for c in cells.values()} == {"tensor"}
    for recipe in ("fp32", "dynamic-int8", "static-int8"):
        assert cells[recipe].status == "ok", (recipe, cells[recipe].error)
    assert "mem:dataset:calibration" in " ".join(cells["static-int8"].notes)
    assert any("rows (N, 64) float32" in n for n in cells["fp32"].notes)
    # only the batch is swept: every point at the data's own 64 features
    points = {(p.batch_size, p.input_size) for p in cells["static-int8"].latency}
    assert points == {(1, 64), (3, 64)}


@pytest.mark.parametrize("form", ["dict", "tuple"])
def test_a_multi_input_model_with_dict_or_tuple_batches(tmp_path, form) -> None:
    torch.manual_seed(0)
    num, cat, y = torch.randn(24, 8), torch.randint(0, 5, (24, 3)), torch.randint(0, 2, (24,))
    if form == "dict":  # keys in another order than the forward's, and a label
        batches = [{"x_cat": cat[i : i + 8], "label": y[i : i + 8], "x_num": num[i : i + 8]}
                   for i in range(0, 24, 8)]  # fmt: skip
    else:
        batches = list(_loader(num, cat, y))
    result = quantbench.run(
        models=[TwoInputs().eval()], recipes=["dynamic-int8", "static-int8"],
        calibration=batches, dataset=batches, out=str(tmp_path / "o"),
        **{**FAST, "measure": ["size", "fidelity"]},
    )  # fmt: skip
    cells = _cells(result)
    for recipe in ("fp32", "dynamic-int8", "static-int8"):
        assert cells[recipe].status == "ok", (recipe, cells[recipe].error)
    assert cells["fp32"].accuracy is not None  # labels were told apart and scored
    assert any("x_num (N, 8) float32; x_cat (N, 3) int64" in n for n in cells["fp32"].notes)


def test_a_one_channel_cnn_takes_its_inputs_from_its_dataloader(tmp_path) -> None:
    torch.manual_seed(0)
    loader = _loader(torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,)))
    result = quantbench.run(
        models=[GrayCNN().eval()], recipes=["static-int8"], calibration=loader,
        out=str(tmp_path / "o"), **{**FAST, "measure": ["size", "fidelity"]},
    )  # fmt: skip
    cells = _cells(result)
    assert cells["static-int8"].status == "ok", cells["static-int8"].error
    assert cells["fp32"].family == "tensor"


def test_a_model_that_does_not_take_its_inputs_is_one_line_with_the_way_out(tmp_path) -> None:
    result = quantbench.run(  # no data: images of 3 channels, which the model refuses
        models=[GrayCNN().eval()], recipes=["dynamic-int8"], out=str(tmp_path / "o"),
        **{**FAST, "measure": ["size"]},
    )  # fmt: skip
    errors = {c.error for c in result.results}
    (error,) = errors
    assert "does not run on its vision inputs ((2, 3, 32, 32) float32)" in error
    assert "make_inputs" in error and "input_spec" in error and "\n" not in error


def test_input_spec_names_dynamic_dims_and_they_are_swept(tmp_path) -> None:
    class Pool(torch.nn.Module):  # (N, T, 6) -> mean over time -> Linear
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(6, 2)

        def forward(self, audio: torch.Tensor) -> torch.Tensor:
            return self.fc(audio.mean(dim=1))

    entry = quantbench.model(
        Pool().eval(), input_spec={"dynamic": {"audio": {1: "time"}}, "sizes": [5, 10]}
    )
    result = quantbench.run(
        models=[entry], recipes=["dynamic-int8"], calibration=[torch.randn(4, 10, 6)],
        out=str(tmp_path / "o"), **FAST,
    )  # fmt: skip
    cell = _cells(result)["dynamic-int8"]
    assert cell.status == "ok", cell.error
    assert {p.input_size for p in cell.latency if p.sweep == "input_size"} == {5, 10}
    with pytest.raises(QuantbenchError, match="unknown input 'sound'"):
        quantbench.run(
            models=[quantbench.model(Pool().eval(), input_spec={"dynamic": {"sound": [1]}})],
            recipes=["fp32"], calibration=[torch.randn(4, 10, 6)], out=str(tmp_path / "p"),
            **{**FAST, "measure": ["size"]},
        )  # fmt: skip


MODEL_PY = textwrap.dedent(
    """
    import torch

    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(),
                                           torch.nn.Linear(8, 3))

        def forward(self, x):
            return self.net(x)
    """
)


def _cli(out, *args: str) -> int:
    argv = ["run", "--recipes", "static-int8", "--measure", "size,fidelity", "--no-isolate",
            "--calib-batches", "2", "--calib-batch-size", "4", "--fidelity-batch-size", "2",
            "--no-progress", "--out", str(out), *args]  # fmt: skip
    return main(argv)


def test_cli_py_model_with_npy_and_csv_data_files(tmp_path, capsys) -> None:
    (tmp_path / "mlp.py").write_text(MODEL_PY)
    model = f"py:{tmp_path / 'mlp.py'}:MLP"
    rng = np.random.default_rng(0)
    np.save(tmp_path / "rows.npy", rng.normal(size=(20, 6)).astype(np.float32))
    rows = ["a,b,c,d,e,f,label"] + [
        ",".join(f"{v:.3f}" for v in rng.normal(size=6)) + f",{i % 3}" for i in range(20)
    ]
    (tmp_path / "rows.csv").write_text("\n".join(rows) + "\n")
    assert _cli(tmp_path / "a", "--models", model, "--calibration", str(tmp_path / "rows.npy")) == 0
    assert "2 cells: 2 ok" in capsys.readouterr().out
    assert _cli(tmp_path / "b", "--models", model, "--dataset", str(tmp_path / "rows.csv"),
                "--calibration", str(tmp_path / "rows.npy")) == 0  # fmt: skip
    cells = json.loads((tmp_path / "b" / "results.json").read_text())["results"]
    assert {(c["recipe"], c["status"], c["family"]) for c in cells} == {
        ("fp32", "ok", "tensor"),
        ("static-int8", "ok", "tensor"),
    }
    assert {(c["accuracy"]["metric"], c["accuracy"]["n"]) for c in cells} == {("top1", 20)}


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("empty.npy", b"", "is not a NumPy .npy array: the file is empty"),
        ("text.npy", b"1,2,3\n", "is not a NumPy .npy array"),
        ("objects.npz", None, "holds Python objects, not numbers"),
        ("bad.csv", b"a,b,label\n1,2,0\n3,x,1\n", "line 3: could not convert string to float"),
        ("labels.csv", b"a,b,label\n1,2,0.5\n", "column 'label' must hold class indices"),
        ("pickled.pt", None, "pickles Python objects"),
    ],
)
def test_bad_data_files_are_one_line_and_exit_2(tmp_path, capsys, name, content, expected):
    (tmp_path / "mlp.py").write_text(MODEL_PY)
    path = tmp_path / name
    if name == "objects.npz":
        np.savez(path, x=np.array([{"a": 1}, {"b": 2}], dtype=object))
    elif name == "pickled.pt":
        torch.save({"x": torch.zeros(2, 6), "why": QuantbenchError("x")}, path)
    else:
        path.write_bytes(content)
    rc = _cli(
        tmp_path / "o", "--models", f"py:{tmp_path / 'mlp.py'}:MLP", "--calibration", str(path)
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and expected in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_pt2e_program_runs_at_sizes_other_than_the_export(tmp_path) -> None:
    """A torchvision-style CNN whose last map is 1x1 at 32 px, exported at 32 px: the
    program must take 64 px (was "Guard failed: x.size()[2] <= 32")."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    from quantbench.models import LoadedModel
    from quantbench.recipes import pt2e

    layers, c = [], 3
    for out_c in (8, 8, 16, 16, 16):  # five stride-2 stages: 32 px -> 1x1
        layers += [torch.nn.Conv2d(c, out_c, 3, 2, 1), torch.nn.BatchNorm2d(out_c), torch.nn.ReLU()]
        c = out_c
    net = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(c, 10)).eval()  # fmt: skip
    lm = LoadedModel("cnn", "vision", net, "random", True, True, None, lambda *a, **k: ())
    example = (torch.randn(2, 3, 32, 32),)
    quantizer, _ = pt2e._pt2e_quantizer()
    with pt2e._quiet_export():
        prepared, _ = pt2e._export_and_prepare(lm, example, quantizer)
        prepared(*example)
        converted = convert_pt2e(prepared)
    for size in (32, 48, 64):
        x = torch.randn(1, 3, size, size)
        assert converted(x).shape == (1, 10)
        assert torch.nn.functional.cosine_similarity(converted(x), net(x)).item() > 0.9


CNN_PY = textwrap.dedent(
    """
    import torch

    def SmallNet(num_classes=10):  # torchvision-style: 5 stride-2 stages, 32 px -> 1x1
        layers, c = [], 3
        for out_c in (8, 8, 16, 16, 16):
            layers += [torch.nn.Conv2d(c, out_c, 3, 2, 1), torch.nn.BatchNorm2d(out_c),
                       torch.nn.ReLU()]
            c = out_c
        return torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                   torch.nn.Linear(c, num_classes))
    """
)


@pytest.mark.slow
def test_pt2e_on_a_32px_imagefolder_model_ends_ok_at_every_size(tmp_path) -> None:
    """The issue's case end to end: calibrated and evaluated on 32 px images, timed at
    32 and 64 px: one exported program serves both."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for k in range(10):
        (tmp_path / "val" / f"c{k}").mkdir(parents=True)
        for i in range(2):
            pixels = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "val" / f"c{k}" / f"{i}.png")
    (tmp_path / "net.py").write_text(CNN_PY)
    data = {"path": str(tmp_path / "val"), "resize": 32, "crop": 32}
    result = quantbench.run(
        models=[{"name": f"py:{tmp_path / 'net.py'}:SmallNet", "num_classes": 10}],
        recipes=["pt2e-static-int8"], dataset=data, calibration=data,
        out=str(tmp_path / "o"), **fast_overrides(image_sizes=[32, 64], vision_batch_sizes=[1]),
    )  # fmt: skip
    cell = _cells(result)["pt2e-static-int8"]
    assert cell.status == "ok", cell.error
    assert {p.input_size for p in cell.latency} == {32, 64}


def test_inputs_called_by_name_trace_and_bind_by_keyword() -> None:
    """A model whose inputs its data names in another order than its forward: the wrapper
    names them as parameters, so torch.fx traces it (static-int8) and it is called by
    position (the data's order) or by keyword; names that are not identifiers keep *args."""
    from quantbench.models.tensor import KeywordInputs, called_by_name, keyword_inputs

    class Rev(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = torch.nn.Linear(8, 2), torch.nn.Linear(4, 2)

        def forward(self, extra, feats):
            return self.a(feats) + self.b(extra)

    m = Rev().eval()
    feats, extra = torch.randn(3, 8), torch.randn(3, 4)
    w = called_by_name(m, ("feats", "extra"))
    assert isinstance(w, KeywordInputs) and w.input_names == ("feats", "extra")
    want = m(extra, feats)
    assert torch.equal(w(feats, extra), want) and torch.equal(w(extra=extra, feats=feats), want)
    traced = torch.fx.symbolic_trace(w)
    assert torch.equal(traced(feats, extra), want)
    assert called_by_name(m, ("extra", "feats")) is m  # already its own order
    odd = keyword_inputs(m, ("extra", "feats"))
    assert torch.equal(odd(extra, feats), want)

    class Kw(torch.nn.Module):
        def forward(self, **named):
            return named["not an identifier"]

    bad = keyword_inputs(Kw(), ("not an identifier",))
    assert type(bad) is KeywordInputs and torch.equal(bad(feats), feats)
