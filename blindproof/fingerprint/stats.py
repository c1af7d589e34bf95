"""Exact binomial tails, confidence bounds, test design and Wald's sequential test.

Everything works in log space so tails far below 2^-40 stay accurate. ``design_test`` screens every
sample size with scipy's binomial tails and confirms the answer in log space, so the ``n`` it returns is
the smallest that meets both targets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _check_p(p: float, name: str = "p") -> None:
    if not 0.0 <= p <= 1.0 or math.isnan(p):
        raise ValueError(f"{name} must be a probability in [0, 1], got {p}")


def _log_pmf(i: int, n: int, p: float) -> float:
    return (math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
            + i * math.log(p) + (n - i) * math.log1p(-p))


def _logsumexp(xs: list[float]) -> float:
    if not xs:
        return -math.inf
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs)) if m > -math.inf else -math.inf


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    _check_p(p)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p == 0.0:
        return 0.0
    if p == 1.0:
        return 1.0
    return min(1.0, math.exp(_logsumexp([_log_pmf(i, n, p) for i in range(k, n + 1)])))


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    _check_p(p)
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p == 0.0:
        return 1.0
    if p == 1.0:
        return 0.0
    return min(1.0, math.exp(_logsumexp([_log_pmf(i, n, p) for i in range(0, k + 1)])))


def _bisect(f, lo: float, hi: float, iters: int = 200) -> float:
    for _ in range(iters):
        mid = (lo + hi) / 2
        if f(mid):
            hi = mid
        else:
            lo = mid
    return hi


def upper_bound(failures: int, trials: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound on a rate from ``failures`` out of ``trials``."""
    _check_counts(failures, trials, confidence)
    if failures == trials:
        return 1.0
    # smallest p with P(X <= failures | p) <= 1 - confidence
    return _bisect(lambda p: binom_cdf(failures, trials, p) <= 1 - confidence, 0.0, 1.0)


def lower_bound(successes: int, trials: int, confidence: float) -> float:
    """One-sided Clopper-Pearson lower bound on a rate from ``successes`` out of ``trials``."""
    _check_counts(successes, trials, confidence)
    if successes == 0:
        return 0.0
    # largest p with P(X >= successes | p) <= 1 - confidence
    return 1.0 - _bisect(lambda q: binom_sf(successes, trials, 1.0 - q) <= 1 - confidence, 0.0, 1.0)


def _check_counts(x: int, n: int, confidence: float) -> None:
    if n <= 0 or not 0 <= x <= n:
        raise ValueError(f"need 0 <= count <= trials and trials > 0, got {x} of {n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


@dataclass(frozen=True)
class Design:
    """A fixed-size test: run ``n`` probes, declare a mismatch at ``k`` or more failures."""

    n: int
    k: int
    false_positive: float  # P(Bin(n, p0) >= k)
    miss: float  # P(Bin(n, p1) < k)


def design_test(p0: float, p1: float, fp_target: float, miss_target: float, max_n: int = 1_000_000) -> Design:
    """The smallest n (with its threshold k) whose false-positive and miss probabilities meet both targets.

    p0 bounds an honest server's per-probe failure rate, p1 is the least per-probe failure rate of a
    substitute the test must catch. Both error probabilities are conditional on those two rates.

    Every n from 1 up is tried (feasibility is not monotone in n, so no step may be skipped): scipy's
    tails screen a block of n at once, and each candidate is confirmed with the exact log-space tails.
    """
    _check_p(p0, "p0")
    _check_p(p1, "p1")
    for t, name in ((fp_target, "fp_target"), (miss_target, "miss_target")):
        if not 0.0 < t < 1.0:
            raise ValueError(f"{name} must be in (0, 1), got {t}")
    if p1 <= p0:
        raise ValueError(f"a substitute's failure rate p1={p1} must exceed the honest rate p0={p0}")
    lo, block = 1, 256
    while lo <= max_n:
        hi = min(max_n, lo + block - 1)
        for n in _candidates(lo, hi, p0, p1, fp_target, miss_target):
            k, fp, miss = _best_threshold(n, p0, p1, fp_target)
            if k is not None and miss <= miss_target:
                return Design(n, k, fp, miss)
        lo, block = hi + 1, min(4 * block, 65536)
    raise ValueError(f"no test with at most {max_n} probes separates p0={p0} from p1={p1} at these targets")


def _candidates(lo: int, hi: int, p0: float, p1: float, fp_target: float, miss_target: float) -> list[int]:
    """Sample sizes in [lo, hi] that scipy's tails say may meet both targets (with a relative slack of
    1e-6, so rounding in scipy never hides a feasible n from the exact check)."""
    from scipy.stats import binom

    n = np.arange(lo, hi + 1)
    slack = 1 + 1e-6
    # smallest k with P(X >= k) <= fp: isf gives the smallest j with P(X > j) <= q; nudge for rounding
    k = np.asarray(binom.isf(fp_target, n, p0), dtype=np.int64) + 1
    k = np.maximum(k - 1, 1)
    while True:  # step k up where its tail is still above the target (at most a step or two)
        high = binom.sf(k - 1, n, p0) > fp_target * slack
        if not high.any():
            break
        k = k + high
    miss = binom.cdf(k - 1, n, p1)
    ok = (k <= n) & (miss <= miss_target * slack)
    # k - 1 may also satisfy the fp target within the slack: consider it too (the exact check decides)
    miss_prev = binom.cdf(np.maximum(k - 2, -1), n, p1)
    ok |= (k - 1 >= 1) & (binom.sf(k - 2, n, p0) <= fp_target * slack) & (miss_prev <= miss_target * slack)
    return [int(x) for x in n[ok]]


def _log_pmfs(n: int, p: float) -> np.ndarray:
    i = np.arange(n + 1)
    if p in (0.0, 1.0):
        out = np.full(n + 1, -np.inf)
        out[0 if p == 0.0 else n] = 0.0
        return out
    logfact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])
    return logfact[n] - logfact[i] - logfact[n - i] + i * math.log(p) + (n - i) * math.log1p(-p)


def _best_threshold(n: int, p0: float, p1: float, fp_target: float) -> tuple[int | None, float, float]:
    """Smallest k with P(Bin(n,p0) >= k) <= fp_target, with that tail and P(Bin(n,p1) < k)."""
    log_sf0 = np.logaddexp.accumulate(_log_pmfs(n, p0)[::-1])[::-1]  # index k -> log P(X >= k)
    ok = np.nonzero(log_sf0[1:] <= math.log(fp_target))[0]
    if ok.size == 0:
        return None, 1.0, 1.0
    k = int(ok[0]) + 1
    log_cdf1 = np.logaddexp.accumulate(_log_pmfs(n, p1))  # index j -> log P(X <= j)
    return k, float(np.exp(log_sf0[k])), float(np.exp(log_cdf1[k - 1]))


class SequentialTest:
    """Wald's sequential probability ratio test between honest rate p0 and substitute rate p1.

    Its error rates are bounded by fp/(1-miss) and miss/(1-fp) (Wald's inequalities), reported by
    ``bounds``.
    """

    def __init__(self, p0: float, p1: float, fp_target: float, miss_target: float) -> None:
        _check_p(p0, "p0")
        _check_p(p1, "p1")
        if not 0.0 < p0 < p1 < 1.0:
            raise ValueError(f"need 0 < p0 < p1 < 1 for a sequential test, got p0={p0}, p1={p1}")
        if not (0.0 < fp_target < 1.0 and 0.0 < miss_target < 1.0):
            raise ValueError("fp_target and miss_target must be in (0, 1)")
        self.p0, self.p1, self.fp, self.miss = p0, p1, fp_target, miss_target
        self.upper = math.log((1 - miss_target) / fp_target)
        self.lower = math.log(miss_target / (1 - fp_target))
        self._fail = math.log(p1 / p0)
        self._pass = math.log((1 - p1) / (1 - p0))
        self.llr = 0.0
        self.trials = 0
        self.failures = 0

    def observe(self, failed: bool) -> str:
        """Add one probe outcome; returns "mismatch", "match" or "undecided"."""
        self.trials += 1
        self.failures += int(failed)
        self.llr += self._fail if failed else self._pass
        return self.state

    @property
    def state(self) -> str:
        if self.llr >= self.upper:
            return "mismatch"
        if self.llr <= self.lower:
            return "match"
        return "undecided"

    @property
    def bounds(self) -> tuple[float, float]:
        """(false-positive bound, miss bound) from Wald's inequalities."""
        return min(1.0, self.fp / (1 - self.miss)), min(1.0, self.miss / (1 - self.fp))
