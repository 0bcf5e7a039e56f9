"""The Python API: names or objects in, the same validation as the CLI."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import quantbench
from quantbench.datasets import load_dataset, memory_dataset, parse_dataset
from quantbench.errors import QuantbenchError

ROOT = Path(__file__).parent.parent


def _script(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(body))
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)  # fmt: skip


def test_a_script_without_a_main_guard_is_told_in_one_line(tmp_path) -> None:
    out = _script(
        tmp_path,
        f"""
        import quantbench
        try:
            quantbench.run(models=["squeezenet"], recipes=["fp32"], measure=["size"],
                           out={str(tmp_path / "o")!r}, store={str(tmp_path / "q.db")!r})
        except quantbench.QuantbenchError as e:
            print("REFUSED:", e)
    """,
    )
    assert "REFUSED: run() is called at the top level of script.py (line 4)" in out.stdout
    assert '__name__ == "__main__"' in out.stdout
    assert not (tmp_path / "o").exists()  # refused before anything ran


def test_an_unguarded_call_through_a_function_is_found_too(tmp_path) -> None:
    out = _script(
        tmp_path,
        f"""
        import quantbench

        def main():
            quantbench.run(models=["squeezenet"], recipes=["fp32"], measure=["size"],
                           out={str(tmp_path / "o")!r}, store={str(tmp_path / "q.db")!r})

        try:
            main()
        except quantbench.QuantbenchError as e:
            print("REFUSED:", e)
    """,
    )
    assert "REFUSED: run() is called at the top level of script.py (line 9)" in out.stdout


@pytest.mark.slow  # seconds to tens of seconds: the everyday suite stays under 5 minutes
def test_a_guarded_script_runs_its_workers(tmp_path) -> None:
    out = _script(
        tmp_path,
        f"""
        import quantbench

        if __name__ == "__main__":
            r = quantbench.run(models=["squeezenet"], recipes=["fp32"], measure=["size"],
                               out={str(tmp_path / "o")!r}, store={str(tmp_path / "q.db")!r})
            print("STATUS", [str(c.status) for c in r.results])
    """,
    )
    assert "STATUS ['ok']" in out.stdout, out.stderr


def test_unknown_setting_is_refused_with_a_suggestion(tmp_path) -> None:
    with pytest.raises(QuantbenchError, match="Did you mean 'models'"):
        quantbench.run(modles=["resnet18"], out=str(tmp_path / "o"))


def test_batches_become_a_dataset() -> None:
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.randn(10, 3, 8, 8), torch.arange(10) % 4),
        batch_size=4,
    )
    ds = load_dataset(parse_dataset(memory_dataset(loader, "val")))
    assert ds.size == 10 and ds.family == "vision" and ds.classes == ["0", "1", "2", "3"]
    (x,), y = next(ds.batches(3, [0, 1, 9]))
    assert x.shape == (3, 3, 8, 8) and y.shape == (3,)
    calib = load_dataset(parse_dataset(memory_dataset([torch.randn(2, 3, 8, 8)])))
    assert calib.classes is None and calib.size == 2
    with pytest.raises(QuantbenchError, match="some batches have labels"):
        memory_dataset([(torch.randn(2, 3, 4, 4), torch.tensor([0, 1])), torch.randn(2, 3, 4, 4)])
    with pytest.raises(QuantbenchError, match="not held by this process"):
        parse_dataset("mem:dataset:never-registered")


def test_an_in_memory_module_with_batches_and_eval_fn(tmp_path) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(8, 4)).eval()  # fmt: skip
    data = [(torch.randn(8, 3, 16, 16), torch.randint(0, 4, (8,))) for _ in range(3)]
    labels = torch.cat([y for _, y in data])
    calls = []

    def agreement(model) -> float:  # your metric: agreement with the fp32 predictions
        calls.append(model)
        with torch.inference_mode():
            pred = torch.cat([model(x).argmax(1) for x, _ in data])
        return float((pred == net(torch.cat([x for x, _ in data])).argmax(1)).float().mean())

    before = {k: v.clone() for k, v in net.state_dict().items()}
    result = quantbench.run(
        models=[quantbench.model(net, name="tiny")], recipes=["dynamic-int8", "static-int8"],
        calibration=[x for x, _ in data], eval_fn=agreement,
        image_sizes=[16], vision_batch_sizes=[1], min_time_s=0.0, min_runs=3, warmup=1,
        out=str(tmp_path / "o"), store=str(tmp_path / "q.db"),
    )  # fmt: skip
    cells = {c.recipe: c for c in result.results}
    assert set(cells) == {"fp32", "dynamic-int8", "static-int8"}
    assert all(c.model == "tiny" and c.status == "ok" for c in cells.values()), cells
    assert cells["fp32"].accuracy.metric == "agreement" and cells["fp32"].accuracy.value == 1.0
    assert cells["static-int8"].accuracy.relative is not None and len(calls) >= 3
    assert "in-memory" in cells["fp32"].weights
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # untouched
    assert labels.shape == (24,)


@pytest.mark.slow
def test_the_readme_example_runs(tmp_path) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "python_api.py")],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    lines = {
        ln.split()[0]: ln for ln in out.stdout.splitlines() if ln.startswith(("fp32", "static"))
    }
    assert "bar met" in lines["static-int8"] and "top1 0.9" in lines["fp32"]
