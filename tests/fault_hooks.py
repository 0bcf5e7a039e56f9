"""Stage hooks for the isolation tests, loaded into every worker by conftest through
``$QUANTBENCH_TEST_HOOKS`` (see ``quantbench.runner.pipeline``).

``QUANTBENCH_FAULT=<model>:<kill|crash|hang|raise|fill>[,...]`` makes that model's worker
fail after its sizes are measured, as an OOM kill, a segfault-like exit, a hang or a
Python error would; ``fill`` instead fills the filesystem holding the file
``$QUANTBENCH_FAULT_FILL`` (writing it until no space is left) and goes on, so that
what the run writes next meets a full disk. Without ``QUANTBENCH_FAULT`` the hook does
nothing. A hanging worker writes its pid to ``$QUANTBENCH_FAULT_PIDFILE`` first, when
that is set.

``QUANTBENCH_RECORD_MODULES=<dir>`` makes each worker write ``<dir>/<pid>.json`` after
loading its model: whether Ray is imported in the process that measures.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

FAULT_ENV = "QUANTBENCH_FAULT"
MODULES_ENV = "QUANTBENCH_RECORD_MODULES"


def faults() -> dict[str, str]:
    """``$QUANTBENCH_FAULT`` as {model: kind}."""
    value = os.environ.get(FAULT_ENV, "")
    return dict(f.rsplit(":", 1) for f in value.split(",") if ":" in f)


def inject_fault(stage: str, run: Any) -> None:
    """After the quantize stage (its cells already sent), fail as ``$QUANTBENCH_FAULT`` says."""
    if stage == "load" and os.environ.get(MODULES_ENV):
        import json
        import sys
        from pathlib import Path

        record = {"model": run.ref.name, "ray": "ray" in sys.modules}
        Path(os.environ[MODULES_ENV], f"{os.getpid()}.json").write_text(json.dumps(record))
    if stage != "quantize":
        return
    kind = faults().get(run.ref.name)
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "crash":
        os._exit(3)
    elif kind == "hang":
        pidfile = os.environ.get("QUANTBENCH_FAULT_PIDFILE")
        if pidfile:  # tells a test that the hang has begun, and which process hangs
            with open(pidfile + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.replace(pidfile + ".tmp", pidfile)
        time.sleep(3600)
    elif kind == "raise":
        raise RuntimeError("injected failure")
    elif kind == "fill":
        fill(os.environ["QUANTBENCH_FAULT_FILL"])


def fill(path: str) -> None:
    """Write ``path`` until its filesystem has no space left (a real full disk)."""
    import errno

    chunk = b"\0" * 4096
    with open(path, "ab", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
