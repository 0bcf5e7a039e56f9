"""quantbench installs like a library: its wheel, in a new virtual environment, beside a
release of a dependency other than the tested one (in pyproject.toml's range), runs.

torch is the one exception to "installed fresh": its CUDA build is about 5 GB installed
(several minutes of unpacking on a 2-core machine, every run). The new environment sees
torch and only what torch itself requires (sympy, triton, the nvidia libraries, ...)
through a ``.pth`` file naming a folder of links to exactly those distributions in this
environment; every other requirement, torchvision included, is installed into the new
environment by pip from the wheel's metadata, with constraints.txt (PyYAML moved to its
lower bound). The new environment has no --system-site-packages and no PYTHONPATH, so a
missing requirement or package file fails here. About 6 minutes on a busy 2-core
machine (pip unpacking some 110 wheels); pip takes them from its configured indexes (here
this machine's local wheel files first, then PyPI: some 70 MB, onnxruntime, onnx,
transformers and torchao the largest), the big ones (torch) never.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
# A light dependency at another release than constraints.txt's: the lower bound of its
# range in pyproject.toml, so the bound itself is what this test checks.
OTHER = ("PyYAML", "6.0.3")
NOT_COPIED = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "quantbench-runs",
              "test-artifacts", "*.db", ".pytest_cache", ".ruff_cache")  # fmt: skip


def _run(argv: list, cwd: Path, timeout: float = 600) -> str:
    # The new environment must not see this checkout's sources through PYTHONPATH.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip
    assert proc.returncode == 0, f"{argv}: {proc.stdout[-1500:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _build(tmp: Path) -> tuple[Path, Path]:
    """An sdist and a wheel of a copy of the checkout, by setuptools' own build hooks
    (the ones pip and `python -m build` call)."""
    tree = tmp / "tree"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(*NOT_COPIED))
    hooks = (
        "from setuptools import build_meta as b; s = b.build_sdist('dist'); "
        "w = b.build_wheel('dist'); print('built', s, w)"
    )  # setuptools prints too
    out = _run([sys.executable, "-c", hooks], tree)
    sdist, wheel = next(ln for ln in out.splitlines() if ln.startswith("built ")).split()[1:]
    return tree / "dist" / sdist, tree / "dist" / wheel


def _link_torch(venv_py: Path, folder: Path) -> None:
    """torch and what it requires, as links to this environment's copies, on the new
    environment's path (nothing else of this environment)."""
    tool = load_script("tools/constraints.py", "constraints_tool")
    folder.mkdir()
    for name in tool.closure(set(), ["torch"]):
        if canonicalize_name(name) == "setuptools":  # the new venv has its own
            continue
        dist = metadata.distribution(name)
        base = Path(dist.locate_file(""))
        tops = {f.parts[0] for f in dist.files or [] if f.parts[0] not in ("..", "__pycache__")}
        for top in tops:
            if not (folder / top).exists() and (base / top).exists():
                (folder / top).symlink_to(base / top)
    site = _run([venv_py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                folder)  # fmt: skip
    (Path(site.strip()) / "torch_only.pth").write_text(f"{folder}\n")


@pytest.mark.slow
def test_wheel_in_a_fresh_environment_beside_another_release(tmp_path):
    sdist, wheel = _build(tmp_path)
    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    assert {"examples/lab.yaml", "examples/python_api.py", "constraints.txt"} <= names
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    assert "quantbench/py.typed" in names
    assert any(n.startswith("quantbench/models/configs/") for n in names)

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], tmp_path)
    py = venv / "bin" / "python"
    _link_torch(py, tmp_path / "torch-only")
    other = f"{OTHER[0]}=={OTHER[1]}"
    pins = [line for line in (ROOT / "constraints.txt").read_text().splitlines()
            if not line.lower().startswith(OTHER[0].lower() + "==")]  # fmt: skip
    (tmp_path / "constraints.txt").write_text("\n".join([*pins, other, ""]))
    _run([py, "-m", "pip", "install", "-q", "-c", tmp_path / "constraints.txt", wheel, other],
         tmp_path, timeout=1200)  # fmt: skip
    _run([py, "-m", "pip", "check"], tmp_path)

    where = _run([py, "-c", "import quantbench, yaml; print(quantbench.__file__); "
                  "print(yaml.__version__)"], tmp_path).split()  # fmt: skip
    assert where[0].startswith(str(venv)) and where[1] == OTHER[1]
    assert _run([venv / "bin" / "quantbench", "--version"], tmp_path).strip() == "quantbench 0.1.0"
    listed = _run([venv / "bin" / "quantbench", "list", "recipes", "--check"], tmp_path)
    assert "static-int8" in listed and "ort-dynamic-int8" in listed and "torchao" in listed
    # onnx, onnxruntime, torchao came with the wheel; only the optional extras' are missing
    missing = [line for line in listed.splitlines() if "missing package" in line]
    assert missing and all(
        any(extra in line for extra in ("executorch", "openvino", "nncf")) for line in missing
    ), missing
    shutil.rmtree(venv)  # about 800 MB; kept when the test fails, to look at


def test_constraints_pin_every_requirement_within_its_range():
    """constraints.txt (what make installs) agrees with pyproject.toml's ranges: a range
    edited without regenerating it, or a pin outside its range, fails here."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [Requirement(r) for r in project["dependencies"]]
    declared += [Requirement(r) for rs in project["optional-dependencies"].values() for r in rs]
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    for req in declared:
        pinned = pins.get(canonicalize_name(req.name))
        assert pinned is not None, f"{req.name} is not in constraints.txt (make constraints)"
        assert req.specifier.contains(pinned), f"{req.name}=={pinned} is outside {req}"
        assert req.specifier.contains(OTHER[1]) or canonicalize_name(req.name) != "pyyaml"
