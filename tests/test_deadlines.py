"""Nothing hangs (issue 17, class 4): every endpoint quantbench connects to (a PostgreSQL
store, a Ray cluster) that refuses, or accepts and never answers, is one line on stderr
and exit 2 within 15 s, for every command that connects, and leaves no store file or
output directory behind; a store that stops answering mid-run is an error, not a hang.
The endpoints are real sockets on this machine (conftest.SilentServer, TcpProxy)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import SilentServer, TcpProxy, fast_overrides, free_port
from quantbench.cli import main
from quantbench.errors import QuantbenchError

SRC = str(Path(__file__).resolve().parent.parent / "src")
LIMIT_S = 15.0

# Every command that opens the store (RUN and SWEEP need not exist: the store is reached
# first); "run" is added with a config file by the test.
STORE_COMMANDS = [
    ["runs"], ["show", "r1"], ["export", "r1"], ["report", "r1"], ["report", "--sweep", "s1"],
    ["compare", "r1", "r2"], ["compare", "--machines", "r1", "r2"], ["compare", "--sweep", "s1"],
    ["run", "--resume", "r1"],
]  # fmt: skip


def _config(tmp_path: Path, **extra) -> Path:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({"models": ["squeezenet"], "recipes": ["fp32"],
                                   "measure": ["size"], **fast_overrides(), **extra}))  # fmt: skip
    return cfg


def _timed_main(args: list[str], capsys) -> tuple[int, str, float]:
    t0 = time.monotonic()
    code = main(args)
    took = time.monotonic() - t0
    return code, capsys.readouterr().err, took


def _assert_refused(code: int, err: str, took: float, needle: str, what) -> None:
    assert code == 2, (what, err)
    assert err.count("\n") == 1 and err.startswith("quantbench: error: "), (what, err)
    assert needle in err, (what, err)
    assert took <= LIMIT_S, (what, took)


def test_a_closed_postgresql_port_fails_at_once_for_every_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    url = f"postgresql://qb@127.0.0.1:{free_port()}/db"
    cfg = _config(tmp_path)
    for cmd in [*STORE_COMMANDS, ["run", "--config", str(cfg), "--out", "o"]]:
        code, err, took = _timed_main([*cmd, "--store", url], capsys)
        _assert_refused(code, err, took, "is unreachable: connection failed", cmd)
        assert took < 5, (cmd, took)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.yaml"]  # nothing left behind


@pytest.mark.slow
def test_a_silent_postgresql_fails_within_15_s_for_every_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cfg = _config(tmp_path)
    with SilentServer("127.0.0.1") as silent:
        url = f"postgresql+psycopg://qb@127.0.0.1:{silent.port}/db"
        for cmd in [*STORE_COMMANDS, ["run", "--config", str(cfg), "--out", "o"]]:
            code, err, took = _timed_main([*cmd, "--store", url], capsys)
            _assert_refused(code, err, took, "is unreachable: no answer in 5 s", cmd)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.yaml"]


@pytest.mark.slow  # seconds of real processes or runs: the everyday suite stays under 5 minutes
def test_a_silent_postgresql_fails_within_15_s_in_a_fresh_process(tmp_path):
    """The whole CLI, from its start (imports included), as a user runs it; the URL from
    $QUANTBENCH_STORE."""
    with SilentServer("127.0.0.1") as silent:
        env = {**os.environ, "PYTHONPATH": SRC,
               "QUANTBENCH_STORE": f"postgresql://qb@localhost:{silent.port}/db"}  # fmt: skip
        for cmd in (["runs"],):  # (every command, in-process: the slow test above)
            t0 = time.monotonic()
            r = subprocess.run([sys.executable, "-m", "quantbench.cli", *cmd], env=env,
                               cwd=tmp_path, capture_output=True, text=True, timeout=60)  # fmt: skip
            _assert_refused(r.returncode, r.stderr, time.monotonic() - t0,
                            "is unreachable: no answer in 5 s", cmd)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- Ray


def _ray_run(tmp_path: Path, address: str | None, capsys) -> tuple[int, str, float]:
    cfg = _config(tmp_path, executor="ray")
    args = ["run", "--config", str(cfg), "--store", str(tmp_path / "q.db"),
            "--out", str(tmp_path / "o"), "--no-progress"]  # fmt: skip
    return _timed_main(args + (["--ray-address", address] if address else []), capsys)


@pytest.mark.slow  # seconds of real processes or runs: the everyday suite stays under 5 minutes
def test_a_silent_or_closed_ray_address_fails_within_15_s(tmp_path, monkeypatch, capsys):
    pytest.importorskip("ray")
    closed = f"127.0.0.1:{free_port()}"
    with SilentServer() as silent:
        cases = [
            (closed, None, "Connection refused"),
            ("no-such-host.invalid:6379", None, "at no-such-host.invalid:6379: "),
            (f"127.0.0.1:{silent.port}", None, "accepts connections but does not answer"),
            (None, closed, "Connection refused"),  # $RAY_ADDRESS is probed as well
        ]
        for address, env_address, needle in cases:
            if env_address:
                monkeypatch.setenv("RAY_ADDRESS", env_address)
            code, err, took = _ray_run(tmp_path, address, capsys)
            monkeypatch.delenv("RAY_ADDRESS", raising=False)
            _assert_refused(code, err, took, needle, (address, env_address))
            assert "cannot connect to Ray at" in err
            # a refused sweep leaves neither a store nor an output directory
            assert sorted(p.name for p in tmp_path.iterdir()) == ["run.yaml"], (address, err)


def test_resuming_a_sweep_on_a_closed_ray_address_fails_at_once(tmp_path, capsys):
    pytest.importorskip("ray")
    from quantbench.store import open_store

    db = tmp_path / "q.db"
    st = open_store(db)
    st.begin_run({"id": "r1", "started_at": "2026-01-01", "sweep_id": "sweep-1", "node": "a",
                  "spec": {"models": [{"name": "squeezenet"}], "executor": "ray"}})  # fmt: skip
    st.close()
    before = db.read_bytes()
    address = f"127.0.0.1:{free_port()}"
    code, err, took = _timed_main(
        ["run", "--resume", "sweep-1", "--store", str(db), "--ray-address", address], capsys
    )
    _assert_refused(code, err, took, "Connection refused", "resume")
    assert db.read_bytes() == before


def test_the_ray_probe_answers_in_bounded_time_for_a_service_that_is_not_ray():
    """An HTTP server where the GCS should be: refused in one line, not retried."""
    pytest.importorskip("ray")
    import http.server
    import threading

    from quantbench.runner.ray_connect import probe

    server = http.server.ThreadingHTTPServer(("", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        t0 = time.monotonic()
        with pytest.raises(QuantbenchError, match="cannot connect to Ray at") as e:
            probe(f"127.0.0.1:{server.server_address[1]}")
        assert time.monotonic() - t0 <= LIMIT_S and "\n" not in str(e.value)
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- mid-run


@pytest.mark.slow
def test_a_store_that_stops_answering_mid_write_is_an_error_not_a_hang(
    pg_with_password, monkeypatch
):
    """A real server behind a proxy that goes silent: the write in flight fails at the
    round-trip deadline, the next connection at the connect timeout."""
    from quantbench import postgres
    from quantbench import store as store_mod
    from quantbench.results import CellResult

    url, _, port = pg_with_password
    monkeypatch.setattr(postgres, "QUERY_TIMEOUT_S", 3.0)
    proxy = TcpProxy(("127.0.0.1", port))
    try:
        st = store_mod.open_store(url.replace(f":{port}/", f":{proxy.port}/"))
        st.begin_run({"id": "mid-1", "started_at": "2026-01-01", "spec": {}})
        assert st.write_cells("mid-1", [CellResult(model="m", recipe="fp32")]) == 1
        proxy.silence()
        t0 = time.monotonic()
        with pytest.raises(QuantbenchError, match=r"no answer from the server in 3 s"):
            st.write_cells("mid-1", [CellResult(model="m", recipe="int8")])
        assert time.monotonic() - t0 < 3.0 + 5
        t0 = time.monotonic()  # the pool's next connection meets the silence at connect
        with pytest.raises(Exception, match="connection timeout expired|no answer"):
            st.begin_run({"id": "mid-1", "started_at": "2026-01-01", "spec": {}})
        assert time.monotonic() - t0 <= LIMIT_S
        st.close()
    finally:
        proxy.close()
    st = store_mod.open_store(url)  # what reached the server is there, once
    assert [(r["model"], r["recipe"]) for r in st.cell_rows("mid-1")] == [("m", "fp32")]
    st.close()


@pytest.mark.slow
def test_a_run_whose_store_goes_silent_ends_and_keeps_every_cell(pg_with_password, tmp_path):
    """The whole CLI, its default deadlines: the store goes silent once the run is in
    it; the run still ends (each write waits one deadline at most), every cell in
    results.json."""
    import json

    from quantbench.store import open_store

    url, _, port = pg_with_password
    proxy = TcpProxy(("127.0.0.1", port))
    cfg = _config(tmp_path)
    cfg.write_text(yaml.safe_dump({**yaml.safe_load(cfg.read_text()),
                                   "models": ["squeezenet", "resnet18"]}))  # fmt: skip
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "quantbench.cli", "run", "--config", str(cfg), "--store",
           url.replace(f":{port}/", f":{proxy.port}/"), "--out", str(out), "--no-progress"]  # fmt: skip
    # Silenced as soon as the run's row is in: every cell is measured after that.
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": SRC},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        direct = open_store(url)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            runs = [r for r in direct.runs() if r["out_dir"] == str(out)]
            if runs:
                proxy.silence()
                assert not direct.cell_rows(runs[0]["id"])
                break
            time.sleep(0.1)
        direct.close()
        assert proxy.silent.is_set(), "the run never reached the store"
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
        proxy.close()
    assert time.monotonic() - t0 < 240
    results = json.loads((out / "results.json").read_text())["results"]
    assert {(c["model"], c["recipe"]) for c in results} == {
        ("squeezenet", "fp32"), ("resnet18", "fp32")}  # fmt: skip
    assert "not stored" in err and "Traceback" not in err, err
