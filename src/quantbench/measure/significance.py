"""Is a change between two sets of raw latency samples real? (pyperf's compare_to asks
the same with a t-test; samples of a busy machine are skewed, so here it is the
distribution-free Mann-Whitney U test, two-sided.)

Example::

    >>> a = [10.0, 10.2, 9.9, 10.1, 10.0, 10.3, 9.8, 10.1, 10.0, 10.2]
    >>> b = [12.0, 12.1, 11.9, 12.2, 12.0, 12.3, 11.8, 12.1, 12.0, 12.2]
    >>> r = compare_samples(a, b)
    >>> r.significant, round(r.change, 2)
    (True, 0.2)
    >>> compare_samples(a, a).significant
    False
    >>> compare_samples(a, []).verdict  # a point stored without raw samples
    'too few samples'
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

ALPHA = 0.05  # two-sided significance level
MIN_SAMPLES = 5  # fewer than this on either side: no test (too little to tell)


@dataclass(frozen=True)
class Significance:
    """``change``: relative change of the median, ``(new - old) / old`` (+0.10 = 10% slower).
    ``p_value`` is None when either side had fewer than :data:`MIN_SAMPLES` samples
    (``change`` is NaN when a side has none)."""

    change: float
    p_value: float | None
    significant: bool
    n_old: int
    n_new: int

    @property
    def verdict(self) -> str:
        if self.p_value is None:
            return "too few samples"
        return "significant" if self.significant else "not significant"

    @property
    def p_text(self) -> str:
        """The p-value for a table: ``"—"`` when untested, ``"<0.0001"`` when tiny."""
        if self.p_value is None or math.isnan(self.p_value):
            return "—"
        return "<0.0001" if self.p_value < 1e-4 else f"{self.p_value:.4f}"


def compare_samples(old: list[float], new: list[float], alpha: float = ALPHA) -> Significance:
    """Median change from ``old`` to ``new`` and whether the samples differ significantly.

    Either side may be empty (old stores kept no samples): then there is nothing to test."""
    if not old or not new:
        return Significance(float("nan"), None, False, len(old), len(new))
    m_old, m_new = statistics.median(old), statistics.median(new)
    change = (m_new - m_old) / m_old if m_old else float("nan")
    if min(len(old), len(new)) < MIN_SAMPLES:
        return Significance(change, None, False, len(old), len(new))
    from scipy.stats import mannwhitneyu

    if len(set(old) | set(new)) == 1:  # identical constants: no difference at all
        return Significance(change, 1.0, False, len(old), len(new))
    p = float(mannwhitneyu(old, new, alternative="two-sided").pvalue)
    return Significance(change, p, p < alpha, len(old), len(new))
