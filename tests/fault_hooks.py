"""Stage hooks for the isolation tests, loaded into every worker by conftest through
``$QUANTBENCH_TEST_HOOKS`` (see ``quantbench.runner.pipeline``).

``QUANTBENCH_FAULT=<model>:<kill|crash|hang|raise>[,...]`` makes that model's worker
fail after its sizes are measured, as an OOM kill, a segfault-like exit, a hang or a
Python error would. Without ``QUANTBENCH_FAULT`` the hook does nothing. A hanging worker
writes its pid to ``$QUANTBENCH_FAULT_PIDFILE`` first, when that is set.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

FAULT_ENV = "QUANTBENCH_FAULT"


def faults() -> dict[str, str]:
    """``$QUANTBENCH_FAULT`` as {model: kind}."""
    value = os.environ.get(FAULT_ENV, "")
    return dict(f.rsplit(":", 1) for f in value.split(",") if ":" in f)


def inject_fault(stage: str, run: Any) -> None:
    """After the quantize stage (its cells already sent), fail as ``$QUANTBENCH_FAULT`` says."""
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
