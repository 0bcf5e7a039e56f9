"""Settings of the process that measures: CPUs pinned, libraries quiet. (A worker
process's own environment is set up by its executor:
:mod:`quantbench.runner.executors.local`.)"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def pin_cpus(n: int) -> list[int] | None:
    """Pin this process to the first ``n`` CPUs it may use; return them (None if unsupported)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))[:n]
        os.sched_setaffinity(0, cpus)
        return cpus
    except (AttributeError, OSError):
        return None


@contextlib.contextmanager
def kept_process_state() -> Iterator[None]:
    """Measure in this process and give it back as it was: torch's intra-op threads and
    the CPUs it may use (a run with ``isolate: false`` sets both for its models)."""
    import torch

    threads, cpus = torch.get_num_threads(), affinity()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if cpus is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, cpus)


def affinity() -> list[int] | None:
    """The CPUs this process may use (None where the platform cannot say)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None


def quiet_libraries() -> None:
    """Silence deprecation chatter of torch.ao / torchao / transformers on stderr."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # symbolic_shapes logs whole tracebacks at WARNING when sympy cannot simplify a guard
    for name in ("torch.utils._pytree", "torchao", "transformers",
                 "torch.fx.experimental.symbolic_shapes"):  # fmt: skip
        logging.getLogger(name).setLevel(logging.ERROR)
