"""Joining a Ray cluster with a deadline: ``--executor ray``'s first step.

``ray.init`` on an address nothing answers at retries for minutes and prints Ray's own
log lines while it does. Before it runs, the address Ray would use (``--ray-address``,
``$RAY_ADDRESS``, ``auto``: :func:`ray._private.services.canonicalize_bootstrap_address`)
is probed: a TCP connection (:data:`CONNECT_TIMEOUT_S`), then one request to the
cluster's GCS, the service every driver talks to first (:data:`PROBE_TIMEOUT_S`). An
address that refuses, does not resolve, accepts but never answers, or answers as
something other than a Ray GCS is one line and exit 2, well within 15 s; ``ray.init``
only runs against a GCS that has just answered.

Ray records the driver's command line as the job's entrypoint (``ray list jobs``, the
dashboard): passwords in it (``--store postgresql://user:PASSWORD@...``) are removed
first (:mod:`quantbench.redact`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from typing import Any

from quantbench.errors import QuantbenchError, first_line
from quantbench.redact import scrub, strip_url

CONNECT_TIMEOUT_S = 5.0
PROBE_TIMEOUT_S = 5.0
_HINT = "is 'ray start --head' running there? its output names the address"


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise QuantbenchError("--executor ray needs Ray: pip install 'quantbench[ray]'") from None
    return ray


def connect(ray: Any, address: str | None) -> bool:
    """Join the cluster at ``address`` (None: ``$RAY_ADDRESS``, else a Ray started on
    this machine, else a new local one) unless this process already has; True when
    this call connected (the caller then disconnects when done)."""
    if ray.is_initialized():
        return False
    where = strip_url(address or os.environ.get("RAY_ADDRESS")) or "a local Ray"
    gcs = _resolve(address, where)
    if gcs is not None:
        probe(gcs, where)
    try:
        with _entrypoint_without_secrets(ray):
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False,
                     include_dashboard=False, configure_logging=True)  # fmt: skip
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as e:
        raise QuantbenchError(f"cannot connect to Ray at {where}: {first_line(e)}") from None
    return True


def _resolve(address: str | None, where: str) -> str | None:
    """The ``HOST:PORT`` of the GCS ``ray.init(address)`` would connect to; None when it
    would start a new local Ray instead."""
    try:
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:  # another Ray: probe what was given, as given
        return address if address and address not in ("auto", "local") else None
    try:
        return canonicalize_bootstrap_address(address)
    except (ConnectionError, ValueError, OSError) as e:
        raise QuantbenchError(f"cannot connect to Ray at {where}: {first_line(e)}") from None


def probe(gcs: str, where: str | None = None) -> None:
    """Raise one clear :class:`QuantbenchError` unless a Ray GCS answers at ``gcs``
    (``HOST:PORT``) within :data:`CONNECT_TIMEOUT_S` + :data:`PROBE_TIMEOUT_S`."""
    where = where or gcs
    if where != gcs:
        where = f"{where} ({gcs})"
    host, _, port = gcs.rpartition(":")
    if not host or not port.isdigit():
        raise QuantbenchError(f"cannot connect to Ray at {where}: not a HOST:PORT address")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except TimeoutError:
        raise QuantbenchError(
            f"cannot connect to Ray at {where}: no answer in {CONNECT_TIMEOUT_S:g} s ({_HINT})"
        ) from None
    except OSError as e:
        raise QuantbenchError(
            f"cannot connect to Ray at {where}: {e.strerror or first_line(e)} ({_HINT})"
        ) from None
    _ask_gcs(gcs, where)


def _ask_gcs(gcs: str, where: str) -> None:
    """One GetClusterId request, with a deadline, on a channel made as Ray makes its own
    (TLS and token authentication as configured)."""
    try:
        import grpc
        from ray._private.gcs_utils import create_gcs_channel
        from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc
    except ImportError:  # another Ray: the TCP check is all there is
        return
    channel = create_gcs_channel(gcs)
    try:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=PROBE_TIMEOUT_S)
    except grpc.RpcError as e:
        code = e.code()
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return  # a GCS that wants a token: ray.init brings it
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            why = (f"it accepts connections but does not answer (no reply in "
                   f"{PROBE_TIMEOUT_S:g} s); {_HINT}")  # fmt: skip
        elif code == grpc.StatusCode.UNAVAILABLE:
            why = f"{(e.details() or 'unavailable').splitlines()[0]} ({_HINT})"
        else:
            why = f"it answers, but not as a Ray cluster ({code.name}: {e.details()}); {_HINT}"
        raise QuantbenchError(f"cannot connect to Ray at {where}: {scrub(why)}") from None
    finally:
        channel.close()


@contextlib.contextmanager
def _entrypoint_without_secrets(ray: Any) -> Iterator[None]:
    """While ``ray.init`` runs, the command line Ray stores as the job's entrypoint
    comes without passwords."""
    utils = getattr(getattr(ray, "_private", None), "utils", None)
    original = getattr(utils, "get_entrypoint_name", None)
    if original is None:
        yield
        return
    utils.get_entrypoint_name = lambda: scrub(original())
    try:
        yield
    finally:
        utils.get_entrypoint_name = original
