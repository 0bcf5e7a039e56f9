"""Where and how models are measured: a worker process each or this one, this machine or
the nodes of a Ray cluster (``spec.launch``). Which executors exist (the registry,
:mod:`quantbench.runner.executors`) and which node selectors are valid is checked with
the run (:mod:`quantbench.runner.checks`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from quantbench.redact import strip_url
from quantbench.settings.base import Cli, Settings
from quantbench.settings.values import Flag, NameList, Text


class Launch(Settings):
    """Where and how models are measured."""

    title = "processes and machines (Ray)"

    isolate: Flag = Field(True, description="each model in a worker process of its own")
    executor: Text = Field(
        "local", description="local: measure on this machine; ray: a sweep across the nodes "
        "of a Ray cluster, one run per node under one sweep id (pip install 'quantbench[ray]')",
    )  # fmt: skip
    ray_address: Text | None = Field(
        None, description="executor ray: the cluster's address (HOST:6379 or auto); default: "
        "$RAY_ADDRESS, else a Ray started on this machine, else a new local one",
    )  # fmt: skip
    on: Annotated[NameList | None, Cli(metavar="SELECTOR,...")] = Field(
        None, description="executor ray: the nodes to run on, any of: all (default), "
        "cpu:vnni, cpu:arm, cpu:x86, cpu:<ISA flag>, gpu, a custom resource or hostname, "
        "KEY=VALUE (a node label), node:<id prefix>",
    )  # fmt: skip

    @field_validator("ray_address")
    @classmethod
    def _no_ray_client(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("ray://"):
            raise ValueError(
                f"ray_address {strip_url(value)}: Ray Client (ray://) cannot stream a model's "
                "cells as it measures; give the cluster's address HOST:6379 (what 'ray start "
                "--head' printed) or auto, from a machine in the cluster's network"
            )
        return value
