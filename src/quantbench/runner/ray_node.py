"""What a Ray node runs for a sweep (see :mod:`quantbench.runner.executors.ray`): plain
functions the driver wraps in ``ray.remote`` and pins to the node, so this module never
imports Ray itself.

- :func:`probe`: the node's machine fingerprint, to choose nodes (no CPU reserved);
- :func:`describe`: the run record of the node (fingerprint, versions, threads, the
  int8:fp32 micro-benchmark), as a local run makes it;
- :func:`measure`: one model, measured exactly as locally
  (:func:`~quantbench.runner.executors.local.measure_here`: in a spawned worker process
  of its own, or inline with ``isolate: false``, threads and pinning applied there, its
  timeout enforced); its messages (progress, snapshots, how it ended) are yielded as
  they come, a Ray streaming generator, so the driver keeps the cells measured so far
  if the node dies next.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

from quantbench.errors import QuantbenchError


def probe() -> dict[str, Any]:
    """This machine's fingerprint (:func:`quantbench.env.host`) and quantbench version."""
    from quantbench import env
    from quantbench.version import __version__

    return {"host": env.host(), "quantbench_version": __version__}


def _node_spec(spec_dict: dict[str, Any], models: bool = True) -> Any:
    """The run's settings with this node's quantized engine (unless one was given: then
    it is checked here, and a node without it fails its cells, not the sweep)."""
    from quantbench.runner.checks import resolve_engine
    from quantbench.settings import RunSpec

    spec = RunSpec(**(spec_dict if models else {**spec_dict, "models": []}))
    with contextlib.suppress(QuantbenchError):  # the cells will say it
        resolve_engine(spec)
    return spec


def describe(spec_dict: dict[str, Any]) -> dict[str, Any]:
    """The run record :func:`~quantbench.runner.books.run_metadata` makes, here."""
    from quantbench.runner.books import run_metadata
    from quantbench.runner.process import quiet_libraries

    quiet_libraries()
    return run_metadata(_node_spec(spec_dict)).to_dict()


@contextlib.contextmanager
def _bare_main() -> Iterator[None]:
    """Hide the Ray worker's ``__main__`` (Ray's default_worker.py) while a worker is
    spawned: multiprocessing would run it again in the child, importing Ray into the
    process that measures. The child gets no main module, as under ``python -m``."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def measure(spec_dict: dict[str, Any], ref_dict: dict[str, Any]) -> Iterator[Any]:
    """Measure one model here, yielding its messages: progress, snapshots, then how it
    ended (``Done``: its cells; ``Failed``; ``Ended``: its worker died or timed out)."""
    from quantbench.runner.executors.local import measure_here
    from quantbench.runner.messages import Failed, is_last
    from quantbench.runner.process import quiet_libraries
    from quantbench.settings import ModelRef

    quiet_libraries()
    spec = _node_spec(spec_dict, models=False)
    ref = ModelRef(**ref_dict)
    q: queue.Queue = queue.Queue()

    def work() -> None:
        try:
            with _bare_main() if spec.launch.isolate else contextlib.nullcontext():
                measure_here(spec, ref, q.put)
        except BaseException as e:
            q.put(Failed.of(e))

    threading.Thread(target=work, name=f"quantbench-{ref.name}", daemon=True).start()
    while True:
        msg = q.get()
        yield msg
        if is_last(msg):
            return
