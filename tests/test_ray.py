"""Sweeps on a real Ray cluster: a head and worker nodes started on this machine
(``ray.cluster_utils.Cluster``), tiny models measured on each, a node removed while it
measures, the sweep resumed. Skipped with the reason where Ray cannot start (mandatory
with ``QUANTBENCH_REQUIRE_RAY=1``, as .ci/run sets)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import fast_overrides

SRC = str(Path(__file__).resolve().parent.parent / "src")


def _skip(reason: str) -> None:
    if os.environ.get("QUANTBENCH_REQUIRE_RAY"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def modules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where each measuring worker on the nodes says whether Ray is imported in it."""
    return tmp_path_factory.mktemp("modules")


@pytest.fixture(scope="module")
def cluster(modules_dir: Path):
    """One cluster for the module (Ray starts slowly): a head and a worker node with the
    custom resource ``edge``, one CPU each. Node processes inherit this environment:
    quantbench from src/, the tests' stage hooks, the module recorder."""
    try:
        from ray.cluster_utils import Cluster
    except ImportError:
        _skip("Ray is not installed (pip install 'quantbench[ray]')")
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")])),
        "QUANTBENCH_RECORD_MODULES": str(modules_dir),
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        c.add_node(num_cpus=1, resources={"edge": 1})
        c.wait_for_nodes()
    except Exception as e:
        _skip(f"Ray cannot start here: {type(e).__name__}: {e}")
    try:
        yield c
    finally:
        c.shutdown()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _node_ids(c) -> dict[str, str]:
    """{'head' | 'edge' | other custom resource: node id} of the cluster's alive nodes."""
    import ray

    out = {}
    connected = ray.is_initialized()
    if not connected:
        ray.init(address=c.address, logging_level="WARNING", log_to_driver=False)
    try:
        for n in ray.nodes():
            if not n["Alive"]:
                continue
            res = n["Resources"]
            kind = next((k for k in ("edge", "flaky") if k in res), None)
            out[kind or ("head" if "node:__internal_head__" in res else n["NodeID"])] = n["NodeID"]
    finally:
        if not connected:
            ray.shutdown()
    return out


@pytest.mark.slow
def test_sweep_runs_one_run_per_node(cluster, tmp_path, modules_dir):
    from quantbench.runner import run
    from quantbench.runner.checks import build_spec
    from quantbench.store import open_store

    db = tmp_path / "sweep.db"
    spec = build_spec(overrides=fast_overrides(
        models=["tv:squeezenet1_1"], recipes=["fp32", "dynamic-int8"], image_sizes=[32],
        vision_batch_sizes=[1], executor="ray", ray_address=cluster.address, store=str(db),
        out=str(tmp_path / "o"),
    ))  # fmt: skip
    sweep = run(spec)
    ids = _node_ids(cluster)
    assert len(sweep.runs) == 2 and not sweep.interrupted
    store = open_store(db, create=False)
    try:
        stored = store.sweep_runs(sweep.sweep_id)
        cells = {m["id"]: store.cells(m["id"]) for m in stored}
    finally:
        store.close()
    assert sorted(m["ray_node"]["node_id"] for m in stored) == sorted(ids.values())
    assert len({m["id"] for m in stored}) == 2 and len({m["node"] for m in stored}) == 2
    for m in stored:
        assert m["sweep_id"] == sweep.sweep_id and m["status"] == "finished"
        assert m["host"]["cpu"] and m["host"]["ceilings"]["peaks"]  # measured there
        # torch's threads there: the node's one CPU, reserved whole by the task (Ray sets
        # OMP_NUM_THREADS to it, unless the environment already does)
        assert m["threads"] == int(os.environ.get("OMP_NUM_THREADS") or 1)
        got = {(c.model, c.recipe): c for c in cells[m["id"]]}
        assert set(got) == {("tv:squeezenet1_1", "fp32"), ("tv:squeezenet1_1", "dynamic-int8")}
        assert all(c.status == "ok" and c.latency and c.size_bytes for c in got.values())
        assert (Path(m["out_dir"]) / "report.md").exists()
    # Each measuring worker was a spawned process without Ray in it, as a local one.
    records = [json.loads(p.read_text()) for p in modules_dir.glob("*.json")]
    assert len(records) >= 2 and not any(r["ray"] for r in records)
    # The sweep reads back as machines side by side: a column per node, both reports.
    from quantbench.cli import main

    cmp_out, rep_out = tmp_path / "cmp", tmp_path / "rep"
    args = ["--store", str(db), "--out"]
    assert main(["compare", "--sweep", sweep.sweep_id, *args, str(cmp_out)]) == 0
    table = (cmp_out / "compare.md").read_text()
    assert all(m["node"] in table for m in stored), table
    assert main(["report", "--sweep", sweep.sweep_id, *args, str(rep_out)]) == 0
    assert (rep_out / "report.md").exists() and (rep_out / "report.html").exists()


def _cli(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "quantbench", *args, "--no-progress"],
        env={**os.environ, "PYTHONPATH": SRC, **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw,
    )  # fmt: skip


def _cells(db: Path, sweep_id: str) -> dict[str, dict[tuple[str, str], dict]]:
    """{node label: {(model, recipe): {id, status, error, lost}}} of the stored sweep."""
    from quantbench.store import open_store

    store = open_store(db, create=False)
    try:
        out = {}
        for m in store.sweep_runs(sweep_id):
            full = {(c.model, c.recipe): c for c in store.cells(m["id"])}
            out[m["node"]] = {
                (r["model"], r["recipe"]): {
                    "id": r["id"], "status": r["status"], "finished_at": r["finished_at"],
                    "error": full[(r["model"], r["recipe"])].error,
                    "lost": full[(r["model"], r["recipe"])].details.get("lost"),
                    "size": full[(r["model"], r["recipe"])].size_bytes,
                } for r in store.cell_rows(m["id"])
            }  # fmt: skip
        return out
    finally:
        store.close()


@pytest.mark.slow
def test_node_dies_mid_task_then_resume_measures_only_what_was_lost(
    cluster, tmp_path, tiny_bert_dir
):
    import yaml

    bert = f"hf:{tiny_bert_dir}"
    pidfile = tmp_path / "hanging.pid"
    # A third node whose worker hangs in the second model (after its sizes are sent).
    flaky = cluster.add_node(num_cpus=1, resources={"flaky": 1}, env_vars={
        "QUANTBENCH_FAULT": f"{bert}:hang", "QUANTBENCH_FAULT_PIDFILE": str(pidfile),
    })  # fmt: skip
    ids = _node_ids(cluster)
    db = tmp_path / "sweep.db"
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(yaml.safe_dump(fast_overrides(
        models=["tv:squeezenet1_1", bert], recipes=["fp32"], image_sizes=[32],
        vision_batch_sizes=[1], seq_lens=[16], text_batch_sizes=[1], executor="ray",
        ray_address=cluster.address, on=[f"node:{ids['head']}", "flaky"],
    )))  # fmt: skip
    p = _cli("run", "--config", str(cfg), "--store", str(db), "--out", str(tmp_path / "o"))
    deadline = time.monotonic() + 240
    while not pidfile.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pidfile.exists(), p.communicate(timeout=60)
    cluster.remove_node(flaky)  # the node dies while its task measures
    out, err = p.communicate(timeout=240)
    assert p.returncode == 0, err  # the other cells are ok
    sweep_id = out.split("compare with: quantbench compare --sweep ")[1].split()[0]
    before = _cells(db, sweep_id)
    assert len(before) == 2
    (head,) = [k for k in before if ids["head"][:8] in k]
    (lost,) = [k for k in before if k != head]
    assert all(c["status"] == "ok" for c in before[head].values()), before[head]
    assert before[lost][("tv:squeezenet1_1", "fp32")]["status"] == "ok"  # finished before
    dead = before[lost][(bert, "fp32")]
    assert dead["status"] == "error" and dead["lost"], dead
    assert dead["error"].startswith("ray node died:"), dead
    assert dead["size"], dead  # measured before the hang: the relayed snapshot kept it

    # Resumed while one of its runs is held (another resume): refused in one line, before
    # Ray is reached and before anything changes.
    from quantbench.locks import lock_run
    from quantbench.store import open_store

    st = open_store(db, create=False)
    try:
        held = st.sweep_runs(sweep_id)[-1]["id"]
        with lock_run(st, held, "another resume"):
            r = _cli("run", "--resume", sweep_id, "--store", str(db))
            out, err = r.communicate(timeout=120)
    finally:
        st.close()
    assert r.returncode == 2 and len(err.strip().splitlines()) == 1, err
    assert f"run {held} is in use by another resume (pid {os.getpid()} on " in err, err
    assert _cells(db, sweep_id) == before

    # The machine comes back (a new Ray node, same resources): resume the sweep.
    cluster.add_node(num_cpus=1, resources={"flaky": 1})
    r = _cli("run", "--resume", sweep_id, "--store", str(db))
    out, err = r.communicate(timeout=300)
    assert r.returncode == 0, err
    after = _cells(db, sweep_id)
    assert after[head] == before[head]  # untouched: nothing re-ran there
    kept = ("tv:squeezenet1_1", "fp32")
    assert after[lost][kept] == before[lost][kept]  # stored before the death: kept
    redo = after[lost][(bert, "fp32")]
    # measured again (SQLite may hand the new row the deleted one's id: compare times)
    assert redo["status"] == "ok" and not redo["lost"]
    assert redo["finished_at"] > dead["finished_at"], (redo, dead)
    assert err.count("already stored, skipped") == 3, err  # 2 models on head, 1 on lost


@pytest.mark.slow
def test_a_sweep_never_records_the_store_password(cluster, tmp_path, pg_with_password):
    """The store URL's password on the driver's command line reaches neither the sweep's
    files nor Ray: its job table (the entrypoint Ray records) and its session files."""
    import ray
    import yaml

    from conftest import PG_PASSWORD

    url, bare, _ = pg_with_password
    ids = _node_ids(cluster)
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(yaml.safe_dump(fast_overrides(
        models=["tv:squeezenet1_1"], recipes=["fp32"], measure=["size"], executor="ray",
        ray_address=cluster.address, on=[f"node:{ids['head']}"],
    )))  # fmt: skip
    p = _cli("run", "--config", str(cfg), "--store", url, "--out", str(tmp_path / "o"))
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert PG_PASSWORD not in out + err and bare in out
    for f in (tmp_path / "o").rglob("*"):
        assert not f.is_file() or PG_PASSWORD.encode() not in f.read_bytes(), f
    connected = ray.is_initialized()
    if not connected:
        ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
    try:
        from ray._private.state import jobs

        entrypoints = [j.get("Entrypoint") or "" for j in jobs()]
    finally:
        if not connected:
            ray.shutdown()
    # this test's sweep (the cluster's job table also holds the other tests' commands)
    ours = [e for e in entrypoints if "--store" in e and str(cfg) in e]
    assert ours and all(bare in e for e in ours), entrypoints
    assert not any(PG_PASSWORD in e for e in entrypoints), entrypoints
    session = Path(cluster.head_node.get_session_dir_path())
    for f in session.rglob("*"):
        if f.is_file() and not f.is_symlink():
            assert PG_PASSWORD.encode() not in f.read_bytes(), f
