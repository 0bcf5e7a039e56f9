"""Markdown formatting helpers: tables, numbers, sizes, speedups and shapes as text.

Pure functions of their arguments (no result records beyond a point's shape), so every
section formats the same number the same way.

Example::

    >>> fmt_sig(1234.5)
    '1,230'
    >>> md_table(["a"], [["x|y"]])[2]
    '| x\\\\|y |'
    >>> md_escape("<script>")
    '&lt;script>'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from quantbench.inert import Md as Md  # re-exported: the sections' Markdown helpers
from quantbench.inert import md_code as md_code
from quantbench.inert import md_text
from quantbench.measure.metrics import SpeedupValue
from quantbench.measure.metrics import fmt_mib as fmt_mib  # re-exported: the metrics
from quantbench.measure.metrics import fmt_sig as fmt_sig  # table writes numbers so too
from quantbench.results import LatencyPoint

# A value in Markdown: plain text (a table cell, a sentence) or a code span; the one
# pair of helpers every Markdown file of quantbench uses (quantbench.inert).
md_escape = md_text


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A GitHub-flavoured markdown table; every cell is escaped."""
    out = ["| " + " | ".join(md_escape(h) for h in headers) + " |"]
    out.append("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        cells = [md_escape(c) for c in row]
        cells += [""] * (len(headers) - len(cells))
        out.append("| " + " | ".join(c if c else " " for c in cells) + " |")
    return out


def fmt_params(n: int | None) -> str:
    """Parameter count, e.g. 11.7M."""
    if n is None:
        return "—"
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.1f}{suffix}"
    return str(n)


def fmt_pct(f: float | None) -> str:
    """A fraction as a percentage."""
    return "—" if f is None else f"{100 * f:.1f}%"


def fmt_speedup(s: SpeedupValue | None) -> Md:
    """``2.41x [2.30, 2.55]``; unpaired ratios are labelled as such."""
    if s is None:
        return Md("—")
    text = f"{s.median:.2f}x"
    if s.ci_low is not None and s.ci_high is not None:
        text += f" [{s.ci_low:.2f}, {s.ci_high:.2f}]"
    if not s.paired:
        text += " (unpaired)"
    return Md(text)


def fmt_counts(counts: dict[str, int], sep: str = " × ") -> Md:
    """``{"Linear": 72}`` -> ``72 × Linear``, largest first; "nothing" when empty."""
    if not counts:
        return Md("nothing")
    items = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    if sep == " × ":
        return Md(", ".join(f"{md_escape(n)} × {md_escape(name)}" for name, n in items))
    return Md(", ".join(f"{md_escape(name)} {md_escape(n)}" for name, n in items))


def cell_name(cell: Any) -> Md:
    """``model · recipe`` of a cell (or anything with both), as Markdown text."""
    return Md(f"{md_escape(cell.model)} · {md_escape(cell.recipe)}")


def unit_word(family: str | None) -> str:
    """The unit of a family's input size: ``px`` (vision), ``tokens`` (text), else ""."""
    return {"vision": "px", "text": "tokens"}.get(family or "", "")


def fmt_shape(point: LatencyPoint, family: str | None) -> Md:
    """``1 × 224 px`` / ``8 × 128 tokens``."""
    size = f"{md_escape(point.batch_size)} × {md_escape(point.input_size)}"
    return Md(f"{size} {unit_word(family)}".rstrip())


def is_nan(x: float | None) -> bool:
    """True for a float NaN."""
    return isinstance(x, float) and math.isnan(x)


def finite(x: object) -> bool:
    """True for a finite int or float."""
    return isinstance(x, (int, float)) and math.isfinite(x)


def spec_number(spec: dict[str, Any], key: str) -> float | None:
    """``spec[key]`` as a finite float; None when missing, boolean or not a number."""
    val = spec.get(key)
    if isinstance(val, bool) or not isinstance(val, (int, float)):
        return None
    return float(val) if math.isfinite(val) else None


def plural(n: float, word: str) -> str:
    """``1 pass`` / ``3 passes``."""
    return f"{n:g} {word}" if n == 1 else f"{n:g} {word}{'es' if word.endswith('s') else 's'}"
