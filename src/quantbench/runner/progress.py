"""The run's progress on stderr: a tqdm bar, or plain lines when there is none."""

from __future__ import annotations

import sys

from quantbench.inert import terminal_text


class ProgressBar:
    """A tqdm bar on stderr, or plain lines when disabled.

    ``verbosity``: -1 keeps only warnings and the interruption notice; 1 also prints each
    stage's progress as a line when there is no bar; 0 is in between."""

    def __init__(self, total: int, enabled: bool, verbosity: int = 0) -> None:
        self.bar = None
        self.verbosity = verbosity
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="step", dynamic_ncols=True, file=sys.stderr)

    def text(self, s: str) -> None:
        s = terminal_text(s, keep="")  # a model's name may hold a newline: one line each
        if self.bar is not None:
            self.bar.set_description_str(s[:60])
        elif self.verbosity > 0:
            print(f"  {s}", file=sys.stderr, flush=True)

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def write(self, s: str) -> None:
        s = terminal_text(s, keep="\t")
        if self.verbosity < 0 and not s.startswith(("warning", "interrupted")):
            return
        if self.bar is not None:
            self.bar.write(s, file=sys.stderr)
        else:
            print(s, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
