"""Sweeps across machines without a cluster: selectors, node labels, which node resumes
which run, the settings' checks, and that a local run never imports Ray. The real
cluster is in test_ray.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from quantbench.errors import QuantbenchError
from quantbench.runner.sweeps import (
    Node,
    check_selector,
    is_sweep_id,
    labels,
    match_runs,
    matches,
    new_sweep_id,
    select,
    shared_machines,
)

XEON = {"hostname": "xeon", "cpu": "Xeon 8480", "machine": "x86_64",
        "isa_flags": ["avx2", "avx512f", "avx512_vnni", "amx_int8"]}  # fmt: skip
OLD_X86 = {"hostname": "old", "cpu": "Core i7-4770", "machine": "x86_64", "isa_flags": ["avx2"]}
PI = {"hostname": "pi5", "cpu": "Cortex-A76", "machine": "aarch64", "isa_flags": ["neon"]}


def _nodes() -> list[Node]:
    return [
        Node("aa11" * 7, "10.0.0.1", {"CPU": 56.0, "GPU": 1.0}, {"zone": "lab"}, XEON),
        Node("bb22" * 7, "10.0.0.2", {"CPU": 8.0}, {}, OLD_X86),
        Node("cc33" * 7, "10.0.0.3", {"CPU": 4.0, "edge": 1.0}, {"zone": "field"}, PI),
    ]


@pytest.mark.parametrize(
    ("selector", "hosts"),
    [
        ("all", ["xeon", "old", "pi5"]),
        ("cpu:vnni", ["xeon"]),
        ("cpu:x86", ["xeon", "old"]),
        ("cpu:arm", ["pi5"]),
        ("cpu:amx_int8", ["xeon"]),
        ("gpu", ["xeon"]),
        ("edge", ["pi5"]),  # a custom resource
        ("zone=field", ["pi5"]),  # a node label
        ("old", ["old"]),  # a hostname
        ("10.0.0.2", ["old"]),  # an address
        ("node:cc33cc33", ["pi5"]),
    ],
)
def test_selectors_match_what_nodes_report(selector, hosts):
    assert check_selector(selector) == selector
    assert [n.hostname for n in _nodes() if matches(n, selector)] == hosts


def test_several_selectors_take_any_node_matching_one():
    assert [n.hostname for n in select(_nodes(), ["cpu:vnni", "cpu:arm"])] == ["xeon", "pi5"]
    assert [n.hostname for n in select(_nodes(), None)] == ["xeon", "old", "pi5"]


def test_a_selector_matching_no_node_names_the_nodes():
    with pytest.raises(QuantbenchError, match=r"--on cpu:sve matches no alive Ray node.*pi5"):
        select(_nodes(), ["cpu:vnni", "cpu:sve"])


def test_a_node_quantbench_cannot_run_on_is_never_selected():
    nodes = _nodes()
    nodes[2].error = "ModuleNotFoundError: No module named 'quantbench'"
    assert [n.hostname for n in select(nodes, None)] == ["xeon", "old"]
    with pytest.raises(QuantbenchError, match="cpu:arm matches no"):
        select(nodes, ["cpu:arm"])


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("cpu:vnn", "unknown --on cpu kind 'vnn'. Did you mean 'vnni'?"),
        ("node:12", "a node id is 6 or more hex digits"),
        ("zone=", "is not a selector"),
        ("two words", "is not a selector"),
        ("gpu:2", "is not a selector"),
    ],
)
def test_bad_selectors_are_one_line_errors(selector, message):
    with pytest.raises(QuantbenchError, match=message):
        check_selector(selector)


def test_labels_are_hostnames_unless_a_machine_holds_several_nodes():
    nodes = _nodes()
    assert labels(nodes) == {n.node_id: n.hostname for n in nodes}
    twin = Node("dd44" * 7, "10.0.0.3", {"CPU": 4.0}, {}, PI)
    got = labels([*nodes, twin])
    assert got[twin.node_id] == "pi5:dd44dd44" and got[nodes[2].node_id] == "pi5:cc33cc33"
    assert shared_machines([*nodes, twin]) == [[nodes[2], twin]]
    assert shared_machines(nodes) == []


def _run(run_id: str, node: Node) -> dict:
    return {"id": run_id, "node": node.hostname, "host": node.host, "ray_node": node.record()}


def test_a_resumed_run_goes_to_its_node_or_to_the_same_machine_restarted():
    xeon, old, pi = _nodes()
    runs = [_run("r-xeon", xeon), _run("r-old", old), _run("r-pi", pi)]
    # The Pi was restarted (a new node id, same machine and resources); the old x86 is gone.
    pi_again = Node("ee55" * 7, "10.0.0.9", {"CPU": 4.0, "edge": 1.0}, {"zone": "field"}, PI)
    stranger = Node("ff66" * 7, "10.0.0.7", {"CPU": 4.0}, {"zone": "field"}, PI)  # no edge
    where = match_runs(runs, [stranger, xeon, pi_again])
    assert where == {"r-xeon": xeon, "r-old": None, "r-pi": pi_again}
    # Two runs on one machine (two nodes there): each keeps a node of its own.
    twin = Node("dd44" * 7, "10.0.0.3", {"CPU": 4.0, "edge": 1.0}, {"zone": "field"}, PI)
    runs = [_run("r-a", pi), _run("r-b", twin)]
    a, b = (Node(c * 28, "10.0.0.3", {"CPU": 4.0, "edge": 1.0}, {"zone": "field"}, PI)
            for c in "12")  # fmt: skip
    assert match_runs(runs, [a, b]) == {"r-a": a, "r-b": b}
    assert match_runs(runs, [a]) == {"r-a": a, "r-b": None}


def test_sweep_ids_are_never_run_ids():
    sid = new_sweep_id()
    assert is_sweep_id(sid) and not is_sweep_id("20261202-035002-dba95c")


def _spec(**overrides):
    from conftest import fast_overrides
    from quantbench.runner.checks import build_spec

    return build_spec(overrides=fast_overrides(models=["tv:squeezenet1_1"], **overrides))


def test_settings_of_a_ray_sweep_are_checked():
    spec = _spec(executor="ray", on="cpu:vnni,edge", recipes=["dynamic-int8"])
    assert spec.launch.on == ["cpu:vnni", "edge"]
    assert spec.target.engine is None  # each node resolves its own (an ARM node: qnnpack)
    assert _spec(recipes=["dynamic-int8"]).target.engine is not None  # locally: resolved here
    for bad, message in [
        ({"executor": "rey"}, "unknown executor 'rey'. Did you mean 'ray'?"),
        ({"on": "gpu"}, "--on and --ray-address need --executor ray"),
        ({"ray_address": "auto"}, "--on and --ray-address need --executor ray"),
        ({"executor": "ray", "on": "cpu:vnn"}, "unknown --on cpu kind"),
        ({"executor": "ray", "ray_address": "ray://h:10001"}, "Ray Client"),
    ]:
        with pytest.raises(QuantbenchError, match=message):
            _spec(**bad)


def test_on_is_read_from_yaml_though_yaml_reads_it_as_true(tmp_path):
    from quantbench.runner.checks import build_spec

    cfg = tmp_path / "sweep.yaml"
    cfg.write_text("models: [tv:squeezenet1_1]\nexecutor: ray\non: [cpu:arm, gpu]\n")
    assert build_spec(config=cfg).launch.on == ["cpu:arm", "gpu"]


def test_the_cli_reports_bad_sweep_flags_in_one_line(capsys):
    from quantbench.cli import main

    assert main(["run", "--models", "tv:squeezenet1_1", "--on", "cpu:vnni"]) == 2
    err = capsys.readouterr().err
    assert err == "quantbench: error: --on and --ray-address need --executor ray\n"
    assert main(["run", "--executor", "ray", "--on", "cpu:neo"]) == 2
    assert "Did you mean 'neon'?" in capsys.readouterr().err


def test_an_unreachable_cluster_fails_fast(monkeypatch):
    pytest.importorskip("ray")
    import socket

    from quantbench.runner import ray_connect

    s = socket.socket()
    s.bind(("127.0.0.1", 0))  # a port nothing listens on
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(QuantbenchError, match=rf"cannot connect to Ray at 127.0.0.1:{port}"):
        ray_connect.probe(f"127.0.0.1:{port}")


def test_without_ray_installed_a_sweep_says_how_to_get_it(monkeypatch):
    from quantbench.runner import ray_connect

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(QuantbenchError, match=r"pip install 'quantbench\[ray\]'"):
        ray_connect.import_ray()


@pytest.mark.slow  # seconds of real processes or runs: the everyday suite stays under 5 minutes
def test_a_local_run_never_imports_ray(tmp_path):
    code = (
        "import sys\n"
        "from quantbench.runner import run\n"
        "from quantbench.runner.checks import build_spec\n"
        f"spec = build_spec(overrides={{'models': 'tv:squeezenet1_1', 'recipes': ['fp32'], "
        f"'measure': ['size'], 'isolate': False, 'out': {str(tmp_path / 'o')!r}, "
        f"'store': {str(tmp_path / 'q.db')!r}}})\n"
        "result = run(spec)\n"
        "assert result.results[0].status == 'ok', result.results\n"
        "loaded = [m for m in sys.modules if m == 'ray' or m.startswith(('ray.', "
        "'quantbench.runner.ray', 'quantbench.runner.executors.ray'))]\n"
        "assert not loaded, loaded\n"
        "print('no ray')\n"
    )
    src = str(Path(__file__).resolve().parent.parent / "src")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ, "PYTHONPATH": src}, timeout=300)  # fmt: skip
    assert out.returncode == 0 and "no ray" in out.stdout, out.stderr[-2000:]


def test_a_task_ray_lost_leaves_error_cells_saying_why():
    ray = pytest.importorskip("ray")
    from quantbench.results import CellResult
    from quantbench.runner.collector import Collector
    from quantbench.runner.executors import ray as rx
    from quantbench.runner.messages import Ended, Snapshot
    from quantbench.runner.progress import ProgressBar
    from quantbench.settings import ModelRef

    ex = ray.exceptions
    for error, reason in [
        (ex.NodeDiedError("gone"), "ray node died: pi5 is dead or unreachable"),
        (ex.WorkerCrashedError(), "ray worker died: the task measuring on pi5 was killed"),
        (ex.OutOfMemoryError("oom"), "ray killed the task on pi5: the node ran out of memory"),
    ]:
        assert rx.failure_reason(ray, error, "pi5") == reason
    spec = _spec(recipes=["dynamic-int8"])
    ref = ModelRef("tv:squeezenet1_1")
    sized = CellResult(model=ref.name, recipe="fp32", size_bytes=123)
    col = Collector(ProgressBar(1, enabled=False), spec, ref, "pi5")
    col.handle(Snapshot.of([sized]))  # relayed from the node before it died
    col.handle(Ended("error", "ray node died: pi5 is dead or unreachable", lost=True))
    cells = {c.recipe: c for c in col.cells}
    assert set(cells) == {"fp32", "dynamic-int8"}
    assert all(c.status == "error" and c.details["lost"] for c in cells.values())
    assert cells["fp32"].size_bytes == 123  # measured before: kept
