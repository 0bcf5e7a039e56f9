"""Credentials are used, never written down (issue 17, class 2): a store URL's password
never reaches results.json, results.csv, the reports, exports, the store's own tables,
the console or a recorded traceback; PGPASSWORD, ~/.pgpass and $QUANTBENCH_STORE give it
without a URL. The end-to-end tests run against a real PostgreSQL server that requires a
password (conftest.pg_with_password)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import PG_PASSWORD, fast_overrides, free_port
from quantbench.cli import main
from quantbench.redact import scrub, strip_url
from quantbench.store import open_store

SRC = str(Path(__file__).resolve().parent.parent / "src")


def test_strip_url_removes_the_password_in_every_form():
    cases = {
        "postgresql://qb:pw-1234@db/bench": "postgresql://qb@db/bench",
        "postgresql+psycopg://qb:pw-1234@db:5432/bench": "postgresql+psycopg://qb@db:5432/bench",
        "postgres://qb:pw-1234@db/bench": "postgres://qb@db/bench",
        # as SQLAlchemy reads it: the password runs to the '@', '/' and '?' included
        "postgresql://qb:pw/12?34@db/bench": "postgresql://qb@db/bench",
        "postgresql://qb:p%40w-1234@db/bench": "postgresql://qb@db/bench",
        "postgresql://me@corp.example:pw-1234@db/bench": "postgresql://me@corp.example@db/bench",
        "postgresql://qb@db/bench?password=pw-1234&sslmode=require":
            "postgresql://qb@db/bench?sslmode=require",
        "postgresql://qb@/bench?host=/run/pg&sslpassword=pw-1234&port=5433":
            "postgresql://qb@/bench?host=/run/pg&port=5433",
        "mysql+pymysql://qb@db/bench?auth_token=pw-1234": "mysql+pymysql://qb@db/bench",
        # nothing to remove
        "postgresql://qb@db:5432/bench": "postgresql://qb@db:5432/bench",
        "sqlite:////tmp/a:b@c.db": "sqlite:////tmp/a:b@c.db",
        "results/quantbench.db": "results/quantbench.db",
        "10.0.0.5:6379": "10.0.0.5:6379",
    }  # fmt: skip
    for url, want in cases.items():
        assert strip_url(url) == want, url
    # Free text (a driver's message, a command line): URLs stripped, seen passwords masked.
    text = scrub("at 'postgresql://u:pw-1234@h/db?password=xyz9' (pw-1234, p@w-1234, xyz9)")
    assert text == "at 'postgresql://u@h/db' (***, ***, ***)"


def _meta(run_id: str, url: str) -> dict:
    return {"id": run_id, "started_at": "2026-01-01T00:00:00", "status": "finished",
            "store": url, "host": {"cpu": "x"},
            "spec": {"models": [{"name": "m"}], "store": url, "ray_address": None}}  # fmt: skip


def test_a_run_record_never_holds_the_password(tmp_path, capsys):
    from quantbench.runner.checks import build_spec

    pw = "rec-pw-5521"
    url = f"postgresql+psycopg://qb:{pw}@db.example/bench?sslpassword={pw}x&sslmode=require"
    spec = build_spec(overrides={"models": "squeezenet", "store": url})
    assert spec.output.store == url  # used as given...
    clean = "postgresql+psycopg://qb@db.example/bench?sslmode=require"
    assert spec.to_dict()["store"] == clean  # ...recorded without it
    db = tmp_path / "q.db"
    st = open_store(db)
    st.begin_run(_meta("r1", url))
    assert st.run_meta("r1")["store"] == clean
    st.close()
    assert pw.encode() not in db.read_bytes()
    # A run stored by an older quantbench, password and all, is shown without it.
    legacy = {"id": "old", "started_at": "2025", "status": "finished", "store": url}
    with sqlite3.connect(db) as con:
        con.execute("insert into runs (id, started_at, status, fingerprint, versions, spec, meta) "
                    "values ('old', '2025', 'finished', '{}', '{}', ?, ?)",
                    (json.dumps({"store": url}), json.dumps(legacy)))  # fmt: skip
    for cmd in (["show", "old"], ["export", "old"], ["export", "old", "--format", "csv"]):
        assert main([*cmd, "--store", str(db)]) == 0
        out = capsys.readouterr()
        assert pw not in out.out + out.err, cmd


def test_error_messages_never_print_the_password(tmp_path, monkeypatch, capsys):
    pw = "err-pw-7788"
    port = free_port()  # closed
    for url in [
        f"postgresql://qb:{pw}@127.0.0.1:{port}/db",
        f"postgresql+psycopg://qb@127.0.0.1:{port}/db?password={pw}",
        f"postgresql+psycopg://qb:{pw}@127.0.0.1:notaport/db",  # SQLAlchemy cannot parse it
        f"nosuchdialect://qb:{pw}@h/db",
    ]:
        assert main(["runs", "--store", url]) == 2
        err = capsys.readouterr().err
        assert pw not in err and err.count("\n") == 1, err
        monkeypatch.setenv("QUANTBENCH_STORE", url)  # the same, from the environment
        assert main(["runs"]) == 2
        err = capsys.readouterr().err
        assert pw not in err and err.count("\n") == 1, err
    assert "qb@127.0.0.1" in scrub(f"postgresql://qb:{pw}@127.0.0.1/db")


def test_store_precedence_flag_config_environment_default(tmp_path, monkeypatch, capsys):
    """--store > the config file's store > $QUANTBENCH_STORE > ./quantbench.db."""
    from quantbench.runner.checks import build_spec

    monkeypatch.chdir(tmp_path)
    flag, conf, env = tmp_path / "flag.db", tmp_path / "conf.db", tmp_path / "env.db"
    cfg = tmp_path / "run.yaml"
    settings = {"models": ["squeezenet"], "recipes": ["fp32"], "measure": ["size"],
                "isolate": False, **fast_overrides()}  # fmt: skip
    cfg.write_text(yaml.safe_dump({**settings, "store": str(conf)}))
    assert build_spec(config=cfg, overrides={"store": str(flag)}).output.store == str(flag)
    monkeypatch.setenv("QUANTBENCH_STORE", str(env))
    base = ["run", "--config", str(cfg), "--no-progress", "-q"]

    def run(out: str) -> str:
        assert main([*base, "--out", str(tmp_path / out)]) == 0
        return json.loads((tmp_path / out / "results.json").read_text())["run"]["id"]

    by_config = run("o1")  # the config file's store, though $QUANTBENCH_STORE is set
    assert conf.exists() and not env.exists()
    cfg.write_text(yaml.safe_dump(settings))
    by_env = run("o2")
    assert env.exists() and not (tmp_path / "quantbench.db").exists()
    # the read commands: --store, else $QUANTBENCH_STORE, else ./quantbench.db
    capsys.readouterr()
    for extra, want, other in (([], by_env, by_config), (["--store", str(conf)], by_config,
                               by_env)):  # fmt: skip
        assert main(["runs", *extra]) == 0
        listed = capsys.readouterr().out
        assert want in listed and other not in listed, (extra, listed)
    monkeypatch.delenv("QUANTBENCH_STORE")
    assert main(["runs"]) == 2
    assert "no store at 'quantbench.db'" in capsys.readouterr().err


# --------------------------------------------------------------------------- real server


def _cli(args: list[str], env: dict[str, str | None] | None = None, timeout: float = 300):
    """The CLI in its own process (its command line is what `ps` and Ray would see);
    ``env`` values of None unset the variable."""
    full = {**os.environ, "PYTHONPATH": SRC, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "quantbench.cli", *args],
        env={k: v for k, v in full.items() if v is not None},
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def _pg_dump(port: int) -> str:
    import glob

    pg_dump = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"))[-1]
    out = subprocess.run(
        [pg_dump, "-h", "127.0.0.1", "-p", str(port), "-U", "qb", "postgres"],
        env={**os.environ, "PGPASSWORD": PG_PASSWORD},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout


@pytest.mark.slow
def test_nothing_written_holds_the_password(pg_with_password, tmp_path):
    url, _, port = pg_with_password
    other = {"AWS_SECRET_ACCESS_KEY": "env-secret-a1b2c3", "HF_TOKEN": "hf_envtoken_d4e5f6"}
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({
        "models": ["squeezenet", "resnet18"], "recipes": ["dynamic-int8"],
        "measure": ["size", "latency"], **fast_overrides(image_sizes=[32],
                                                          vision_batch_sizes=[1]),
    }))  # fmt: skip
    out = tmp_path / "out"
    # resnet18 fails in its worker: its cells keep a traceback in details.traceback
    env = {**other, "QUANTBENCH_FAULT": "resnet18:raise"}
    outputs = []
    r = _cli(["run", "--config", str(cfg), "--store", url, "--out", str(out), "--no-progress"],
             env=env)  # fmt: skip
    outputs.append(r.stdout + r.stderr)
    assert r.returncode == 0, r.stderr
    run_id = json.loads((out / "results.json").read_text())["run"]["id"]
    results = json.loads((out / "results.json").read_text())
    assert results["run"]["store"] == url.replace(f":{PG_PASSWORD}@", "@")
    assert any(c.get("details", {}).get("traceback") for c in results["results"])
    for args in (
        ["runs"], ["show", run_id], ["export", run_id],
        ["export", run_id, "--format", "csv", "-o", str(tmp_path / "e.csv")],
        ["export", run_id, "-o", str(tmp_path / "e.json")],
        ["report", run_id, "--out", str(tmp_path / "rep")],
        ["compare", run_id, run_id, "--out", str(tmp_path / "cmp")],
    ):  # fmt: skip
        r = _cli([*args, "--store", url], env=env)
        assert r.returncode == 0, (args, r.stderr)
        outputs.append(r.stdout + r.stderr)
    dump = _pg_dump(port)
    assert run_id in dump and "squeezenet" in dump  # the dump is of the real tables
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {"results.json", "results.csv", "report.md", "report.html"} <= {p.name for p in written}
    for secret in (PG_PASSWORD, *other.values()):
        for p in written:
            assert secret.encode() not in p.read_bytes(), (secret, p)
        assert secret not in dump
        assert not any(secret in o for o in outputs), secret


@pytest.mark.slow
def test_the_password_without_a_url(pg_with_password, tmp_path):
    """PGPASSWORD and ~/.pgpass through libpq, and the whole URL in $QUANTBENCH_STORE."""
    url, bare, _ = pg_with_password
    home = tmp_path / "home"  # no ~/.pgpass of the machine's own
    home.mkdir()
    none = {"PGPASSWORD": None, "PGPASSFILE": None, "HOME": str(home)}
    r = _cli(["runs", "--store", bare], env=none)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "needs a password: set PGPASSWORD or put it in ~/.pgpass" in r.stderr
    wrong = bare.replace("qb@", "qb:not-the-password@")
    r = _cli(["runs", "--store", wrong], env=none)
    assert r.returncode == 2 and "refused the login: password authentication failed" in r.stderr
    assert "not-the-password" not in r.stderr
    r = _cli(["runs", "--store", bare], env={**none, "PGPASSWORD": PG_PASSWORD})
    assert r.returncode == 0, r.stderr
    pgpass = home / ".pgpass"
    pgpass.write_text(f"127.0.0.1:*:*:qb:{PG_PASSWORD}\n")
    pgpass.chmod(0o600)
    r = _cli(["runs", "--store", bare], env=none)
    assert r.returncode == 0, r.stderr
    pgpass.unlink()
    r = _cli(["runs"], env={**none, "QUANTBENCH_STORE": url})
    assert r.returncode == 0 and PG_PASSWORD not in r.stdout + r.stderr, r.stderr
