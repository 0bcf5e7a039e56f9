"""ONNX Runtime's profiler: each node's kernel time per ``model_run``, from the JSON a
session with ``enable_profiling`` writes."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from typing import Any

from quantbench.measure.profile import OpTimes, enough


def profile(module: Any, inputs: tuple, runs: int) -> list[OpTimes]:
    """Each pass of a fresh session of ``module``'s file (an ``OrtModule``), with the
    same options and ``enable_profiling``: node kernel times from the JSON it writes,
    grouped by the ``model_run`` they fall in."""
    import onnxruntime as ort

    tmp = tempfile.mkdtemp(prefix="quantbench-ort-profile-")
    try:
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = module.threads, 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "ort")
        sess = ort.InferenceSession(module.path, so, providers=[module.provider])  # as timed
        names = [i.name for i in sess.get_inputs()]
        feeds = {n: t.detach().cpu().numpy() for n, t in zip(names, inputs, strict=True)}
        sess.run(None, feeds)  # warm, dropped below (the first model_run)
        walls: list[float] = []
        start = time.perf_counter()
        while not enough(len(walls), start, runs):
            t0 = time.perf_counter()
            sess.run(None, feeds)
            walls.append(time.perf_counter() - t0)
        with open(sess.end_profiling()) as f:
            events = json.load(f)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _ort_passes(events, walls)


def _ort_passes(events: list[dict[str, Any]], walls: list[float]) -> list[OpTimes]:
    model_runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                        if e.get("name") == "model_run")[1:]  # fmt: skip
    passes = [OpTimes({}, w) for w in walls[: len(model_runs)]]
    for e in events:
        name = str(e.get("name", ""))
        if e.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        op = str((e.get("args") or {}).get("op_name") or name)
        for i, (lo, hi) in enumerate(model_runs[: len(passes)]):
            if lo <= e["ts"] <= hi:
                passes[i].ops[op] = passes[i].ops.get(op, 0.0) + e["dur"] / 1e6
                break
    return passes
