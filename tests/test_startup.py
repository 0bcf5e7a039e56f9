"""Start-up: the commands that measure nothing import none of the heavy libraries.

One child process (a fresh interpreter: this one has torch loaded already) runs each
command through ``quantbench.cli.main`` in turn and reports, after each, which heavy
libraries ``sys.modules`` holds, and what was printed on stderr. Times are not asserted
(the machine is shared): ``make bench-startup`` prints them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from quantbench.store import open_store
from test_store import _stored_run

SRC = Path(__file__).resolve().parents[1] / "src"
# Each takes seconds to import (torch alone: several on this machine); none is needed to
# describe, list or read back what was measured.
HEAVY = ("torch", "torchvision", "torchao", "transformers", "onnx", "onnxruntime",
         "matplotlib", "ray", "sklearn", "scipy", "pandas")  # fmt: skip

CHILD = r"""
import contextlib, io, json, sys
heavy = json.loads(sys.argv[1])
commands = json.loads(sys.argv[2])
loaded = lambda: sorted(m for m in heavy if m in sys.modules)
report = {"import quantbench.cli": None}
import quantbench.cli
report["import quantbench.cli"] = [loaded(), 0, ""]
for argv in commands:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = quantbench.cli.main(argv)
        except SystemExit as e:  # --help, --version: argparse exits
            code = e.code
    report[" ".join(argv)] = [loaded(), code, err.getvalue()]
print(json.dumps(report))
"""


def test_commands_that_measure_nothing_import_no_heavy_library(tmp_path):
    db = tmp_path / "q.db"
    st = open_store(db)
    _stored_run(st, "base")
    st.close()
    s = ["--store", str(db)]
    commands = [
        ["--version"], ["--help"], ["run", "--help"], ["schema"],
        ["list", "recipes"], ["list", "models"], ["list", "datasets"], ["list", "presets"],
        ["runs", *s], ["show", "base", *s], ["show", "nope", *s],
        ["export", "base", "--format", "json", *s], ["export", "base", "--format", "csv", *s],
        ["compare", "--help"], ["report", "--help"], ["doctor", "--help"],
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-W", "default", "-c", CHILD, json.dumps(HEAVY), json.dumps(commands)],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Warning" not in proc.stderr, proc.stderr[-2000:]  # none from any import
    report = json.loads(proc.stdout)
    assert {k: v[0] for k, v in report.items() if v[0]} == {}
    codes = {k: v[1] for k, v in report.items()}
    assert codes["show nope " + " ".join(s)] == 2  # a failure path stays light too
    assert all(codes[" ".join(c)] in (0, None) for c in commands if c[:2] != ["show", "nope"])
    for cmd, (_, _, err) in report.items():
        assert "Warning" not in err and "W1" not in err, (cmd, err)


def test_output_cut_short_by_its_reader_is_not_an_error():
    """`quantbench list recipes | head -1`: nothing on stderr, the SIGPIPE exit status,
    whether the reader left before a write in the command or before the last flush."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    for what in ("recipes", "presets"):  # ~10 KB (flushed while printing), a few lines
        r, w = os.pipe()
        os.close(r)  # the reader has gone before the first write: deterministic
        proc = subprocess.run([sys.executable, "-m", "quantbench", "list", what], stdout=w,
                              stderr=subprocess.PIPE, env=env, timeout=120)  # fmt: skip
        os.close(w)
        assert (proc.stderr, proc.returncode) == (b"", 141), what
