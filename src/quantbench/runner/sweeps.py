"""A sweep across machines, without Ray: sweep ids, node selectors, node labels, and which
node resumes which run. The Ray executor (:mod:`quantbench.runner.executors.ray`) feeds
it what each node reports; everything here is plain data, so it is tested without a
cluster and the spec checks ``--on`` without importing Ray.

A node is described by :class:`Node`: what Ray says of it (id, address, resources,
labels) and the machine fingerprint a tiny probe task pinned to it returned
(:func:`quantbench.env.host`). ``--on`` takes selectors; a node runs the sweep when it
matches any of them:

==================  ==========================================================
``all``             every alive node (the default)
``cpu:vnni``        x86 with AVX512-VNNI or AVX-VNNI (fast int8 dot products)
``cpu:arm``         ARM (``aarch64``, ``arm64``, ...); ``cpu:x86``: x86-64
``cpu:<flag>``      a CPU with that ISA flag (``avx512f``, ``amx_int8``, ``asimddp``, ...)
``gpu``             a node with a ``GPU`` resource
``KEY=VALUE``       a node label (``ray start --labels '{"zone": "lab"}'``)
``node:<id>``       the node whose Ray id starts with that (6+ hex digits)
``NAME``            a node with the custom resource ``NAME`` (``ray start --resources
                    '{"edge": 1}'``), or whose hostname or IP is ``NAME``
==================  ==========================================================

Example::

    >>> node = Node("ab12cd34ef", "10.0.0.2", {"CPU": 8.0, "edge": 1.0}, {},
    ...             {"hostname": "pi5", "machine": "aarch64", "isa_flags": ["neon"]})
    >>> [matches(node, s) for s in ("cpu:arm", "cpu:vnni", "edge", "gpu")]
    [True, False, True, False]
"""

from __future__ import annotations

import datetime as _dt
import re
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from quantbench.cpu import ARM_MACHINES
from quantbench.env import ISA_FLAGS
from quantbench.errors import QuantbenchError, unknown_name

SWEEP_PREFIX = "sweep-"
CPU_KINDS = {"vnni": ("avx512_vnni", "avx_vnni"), "arm": (), "x86": ()}
CPU_SELECTORS = sorted(CPU_KINDS) + ISA_FLAGS
X86_MACHINES = ("x86_64", "amd64", "i386", "i686")
# Ray's own resources: every node has them; the others are what `ray start --resources` set.
RAY_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory")
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
_HEX = re.compile(r"^[0-9a-fA-F]{6,}$")


def new_sweep_id() -> str:
    """``sweep-<date>-<time>-<6 hex>``: never a run id (those start with the date)."""
    return SWEEP_PREFIX + _dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def is_sweep_id(text: str) -> bool:
    return text.startswith(SWEEP_PREFIX)


@dataclass
class Node:
    """One alive Ray node: Ray's view of it and the fingerprint its probe returned."""

    node_id: str
    address: str
    resources: dict[str, float] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)  # quantbench.env.host() there
    error: str | None = None  # why quantbench cannot run there (its probe failed)

    @property
    def hostname(self) -> str:
        return str(self.host.get("hostname") or self.address)

    @property
    def custom_resources(self) -> list[str]:
        return sorted(k for k, v in self.resources.items()
                      if v > 0 and k not in RAY_RESOURCES and ":" not in k)  # fmt: skip

    @property
    def user_labels(self) -> dict[str, str]:
        """The labels set at ``ray start`` (Ray's own ``ray.io/...`` ones left out)."""
        return {k: v for k, v in self.labels.items() if not k.startswith("ray.io/")}

    def record(self) -> dict[str, Any]:
        """What a run stores of its node (``RunMeta.ray_node``): enough to find it again."""
        d = asdict(self)
        d.pop("host")
        d.pop("error")
        return d

    def describe(self) -> str:
        """``host (10.0.0.2, node ab12cd34): x86_64, vnni, CPU 16, edge``."""
        facts = [str(self.host.get("machine") or "?")]
        if matches(self, "cpu:vnni"):
            facts.append("vnni")
        facts += [f"{k} {self.resources[k]:g}" for k in ("CPU", "GPU") if self.resources.get(k)]
        facts += self.custom_resources + [f"{k}={v}" for k, v in self.user_labels.items()]
        return f"{self.hostname} ({self.address}, node {self.node_id[:8]}): {', '.join(facts)}"


def check_selector(sel: str) -> str:
    """``sel`` if it is a valid selector, else a :class:`QuantbenchError` saying why."""
    if sel in ("all", "gpu"):
        return sel
    kind, colon, rest = sel.partition(":")
    if colon and kind == "cpu":
        if rest not in CPU_SELECTORS:
            raise unknown_name("--on cpu kind", rest, CPU_SELECTORS)
        return sel
    if colon and kind == "node":
        if not _HEX.match(rest):
            raise QuantbenchError(f"--on {sel}: a node id is 6 or more hex digits")
        return sel
    key, eq, value = sel.partition("=")
    if eq and key.strip() and value.strip():
        return sel
    if not colon and not eq and _NAME.match(sel):
        return sel
    raise QuantbenchError(
        f"--on {sel!r} is not a selector: all, gpu, cpu:<kind>, node:<id>, KEY=VALUE, "
        "or a custom resource / hostname"
    )


def matches(node: Node, sel: str) -> bool:
    """Whether ``node`` is one that selector ``sel`` asks for (see the module's table)."""
    host = node.host
    machine = str(host.get("machine") or "").lower()
    if sel == "all":
        return True
    if sel == "gpu":
        return node.resources.get("GPU", 0) > 0
    kind, colon, rest = sel.partition(":")
    if colon and kind == "cpu":
        if rest == "arm":
            return machine in ARM_MACHINES or machine.startswith("arm")
        if rest == "x86":
            return machine in X86_MACHINES
        flags = set(host.get("isa_flags") or [])
        return bool(flags & set(CPU_KINDS.get(rest) or (rest,)))
    if colon and kind == "node":
        return node.node_id.lower().startswith(rest.lower())
    key, eq, value = sel.partition("=")
    if eq:
        return node.labels.get(key.strip()) == value.strip()
    return node.resources.get(sel, 0) > 0 or sel in (node.hostname, node.address)


def select(nodes: Iterable[Node], selectors: list[str] | None) -> list[Node]:
    """The usable nodes matching any selector (``None``: all), in the order given. A
    selector that matches no usable node is an error naming the nodes there are."""
    nodes = list(nodes)
    usable = [n for n in nodes if n.error is None]
    selectors = selectors or ["all"]
    for sel in selectors:
        if not any(matches(n, sel) for n in usable):
            seen = "; ".join(n.describe() for n in usable) or "none that can run quantbench"
            raise QuantbenchError(f"--on {sel} matches no alive Ray node (nodes: {seen})")
    return [n for n in usable if any(matches(n, s) for s in selectors)]


def labels(nodes: list[Node]) -> dict[str, str]:
    """A short name per node, what tables show: its hostname, with the node id's first 8
    digits when several nodes share a hostname (several Ray nodes on one machine)."""
    count: dict[str, int] = {}
    for n in nodes:
        count[n.hostname] = count.get(n.hostname, 0) + 1
    return {n.node_id: n.hostname if count[n.hostname] == 1 else f"{n.hostname}:{n.node_id[:8]}"
            for n in nodes}  # fmt: skip


def shared_machines(nodes: list[Node]) -> list[list[Node]]:
    """Groups of nodes that are one machine (same hostname and address): their timings
    share its CPUs, which a sweep should say."""
    groups: dict[tuple[str, str], list[Node]] = {}
    for n in nodes:
        groups.setdefault((n.hostname, n.address), []).append(n)
    return [g for g in groups.values() if len(g) > 1]


def _identity(host: dict[str, Any], resources: Iterable[str], labels: dict[str, str]) -> tuple:
    """What makes a node "the same machine, started the same way" across a restart."""
    return (host.get("hostname"), host.get("cpu"), host.get("machine"),
            tuple(sorted(resources)), tuple(sorted(labels.items())))  # fmt: skip


def match_runs(runs: list[dict[str, Any]], nodes: list[Node]) -> dict[str, Node | None]:
    """For each stored run of a sweep (its metadata), the alive node that resumes it: the
    same Ray node when it is still alive, else one not taken that is the same machine
    started the same way (hostname, CPU, architecture, custom resources, labels: a node
    that was restarted gets a new id); None when there is no such node."""
    usable = [n for n in nodes if n.error is None]
    by_id = {n.node_id: n for n in usable}
    out: dict[str, Node | None] = {}
    taken: set[str] = set()
    for r in runs:
        node_id = (r.get("ray_node") or {}).get("node_id")
        if node_id in by_id:
            out[r["id"]] = by_id[node_id]
            taken.add(node_id)
    for r in runs:
        if r["id"] in out:
            continue
        rn = r.get("ray_node") or {}
        custom = Node("", "", rn.get("resources") or {}, rn.get("labels") or {})
        want = _identity(r.get("host") or {}, custom.custom_resources, custom.user_labels)
        found = next((n for n in usable if n.node_id not in taken
                      and _identity(n.host, n.custom_resources, n.user_labels) == want), None)  # fmt: skip
        out[r["id"]] = found
        if found is not None:
            taken.add(found.node_id)
    return out
