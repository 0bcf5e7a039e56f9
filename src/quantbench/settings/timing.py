"""How each point is timed: warm-up, passes, time budgets, the per-model timeout,
threads, pinning and what idle threads do (``spec.timing``). The bounds that limit each other are checked here,
wherever the settings come from and on assignment."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator, model_validator

from quantbench.errors import unknown_name
from quantbench.settings.base import Cli, Settings
from quantbench.settings.values import Flag, NonNegFloat, NonNegInt, PosFloat, PosInt, Text
from quantbench.waitpolicy import DEFAULT as DEFAULT_WAIT
from quantbench.waitpolicy import POLICIES as WAIT_POLICIES

# Where a variant's time is broken down by operator kind (``runner.limits``): nowhere,
# at the reference shape, or at every point of the sweeps.
PROFILE_MODES = ("off", "ref", "all")


def _yaml_off(value: object) -> object:
    """YAML 1.1 reads a bare ``off`` as false: it meant the mode (and ``on``, true, is
    refused by name)."""
    return {False: "off", True: "on"}.get(value, value) if isinstance(value, bool) else value


class Timing(Settings):
    """How each point is timed."""

    title = "timing"

    warmup: NonNegInt = Field(2, description="untimed passes per point and variant")
    max_warmup: NonNegInt = Field(
        20, description="cap on warm-up passes until two agree within 10%"
    )
    min_runs: PosInt = Field(10, description="timed passes per point and variant, at least")
    min_time_s: Annotated[NonNegFloat, Cli(aliases=("--min-time",))] = Field(
        0.5, description="... and at least this much time (s) per point and variant"
    )
    max_time_s: Annotated[PosFloat, Cli(aliases=("--max-time",))] = Field(
        30.0, description="cap on timing per point and variant (s)"
    )
    timeout_s: Annotated[PosFloat | None, Cli(aliases=("--timeout",))] = Field(
        None, description="seconds per model worker, then its cells become 'timeout'"
    )
    threads: PosInt | None = Field(None, description="torch intra-op threads (default: torch's)")
    pin: Flag = Field(False, description="pin each worker to `threads` CPUs")
    wait_policy: Text = Field(
        DEFAULT_WAIT, description="what idle runtime threads do: passive (sleep; true numbers "
        "when other work competes), active (spin), runtime (the runtimes' and environment's "
        "own: OMP_WAIT_POLICY, GOMP_SPINCOUNT, KMP_BLOCKTIME)",
    )  # fmt: skip

    profile: Annotated[Text, BeforeValidator(_yaml_off), Cli(metavar="off|ref|all")] = Field(
        "ref", description="where each variant's time goes, from its runtime's profiler, "
        "apart from timing: off, ref (at the reference shape) or all (every sweep point)",
    )  # fmt: skip

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        if value not in PROFILE_MODES:
            raise ValueError(str(unknown_name("profile mode", value, PROFILE_MODES)))
        return value

    @field_validator("wait_policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        if value not in WAIT_POLICIES:
            raise ValueError(str(unknown_name("wait_policy value", value, WAIT_POLICIES)))
        return value

    @model_validator(mode="after")
    def _bounds_agree(self) -> Timing:
        """Settings that bound each other agree (a bound below its minimum would be
        ignored in silence)."""
        if self.min_time_s > self.max_time_s:
            raise ValueError(
                f"min_time_s ({self.min_time_s:g} s) must not exceed max_time_s "
                f"({self.max_time_s:g} s), the cap on timing a point"
            )
        if self.warmup > self.max_warmup:
            raise ValueError(
                f"warmup ({self.warmup}) must not exceed max_warmup ({self.max_warmup}), the "
                "cap on warm-up passes (raise max_warmup too)"
            )
        if self.timeout_s is not None and self.timeout_s <= self.min_time_s:
            raise ValueError(
                f"timeout_s ({self.timeout_s:g} s per model) must be longer than min_time_s "
                f"({self.min_time_s:g} s per point): no point could finish"
            )
        return self


def as_they_ran(d: dict[str, object]) -> None:
    """A run stored before bounds were checked against each other resumes with the values
    its timing loop used: a minimum above its cap was the cap (flat keys, in place)."""
    pairs = (("warmup", "max_warmup", "max_warmup"), ("min_time_s", "max_time_s", "min_time_s"))
    for low, high, effective in pairs:
        lo, hi = d.get(low), d.get(high)
        numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (lo, hi))
        if numbers and lo > hi:  # type: ignore[operator]
            d[effective] = hi if effective == low else lo
