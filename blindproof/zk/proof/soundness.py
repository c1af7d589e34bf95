"""Soundness calculator for the Ligero-style commitment in :mod:`blindproof.zk.commit.pcs`.

Two numbers, kept apart on purpose (the strongest "up to capacity" proximity-gap conjecture was
disproved in 2025):

* provable bits — unique-decoding analysis. Rows are Reed–Solomon codewords of a message of ``C``
  data symbols plus ``t`` hiding symbols on ``N = C · blowup`` points, so the code has dimension
  ``k = C + t`` and minimum distance ``d = N - k + 1``; the unique-decoding radius is
  ``e = ⌊(d - 1)/2⌋``. A committed matrix farther than ``e`` from the interleaved code keeps a random
  extension-field combination of its rows farther than ``e`` except with probability ``N / |F_ext|``
  (proximity gaps for Reed–Solomon codes in the unique-decoding regime, Ben-Sasson et al. 2020,
  for a random point of the rows' affine span); every combined row that differs from the committed
  combination then differs in more than ``e`` positions, so each uniformly drawn column query misses
  it with probability at most ``1 - e/N``. The sumcheck that moves all claims to one column point
  adds ``2·log2(C)/|F_ext|`` (degree 2 per round), and each random linear combination of claims or
  masks adds ``1/|F_ext|``.
* conjectured bits — the same, with the query term at list-decoding capacity: each query misses with
  probability ``ρ = k/N`` (about 2 bits per query at rate 1/4).

All terms are added (union bound) and reported as ``-log2`` of the sum. With a degree-4 extension of
BabyBear (|F_ext| ≈ 2^123.6), the field terms cap either figure near ``123.6 - log2(N)`` bits for
one proximity test, which is why :class:`PcsParams` can repeat it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BABYBEAR_P = 2013265921
EXT_DEGREE = 4
PROOF_FLOOR_BITS = 100.0  # no proof below this many provable bits is accepted, whatever a caller asks


@dataclass(frozen=True)
class SoundnessReport:
    """Soundness of one commitment opening; every ``*_bits`` field is ``-log2`` of an error term."""

    provable_bits: float
    conjectured_bits: float
    query_bits_provable: float
    query_bits_conjectured: float
    proximity_bits: float
    algebraic_bits: float
    rate: float
    relative_distance: float
    n_queries: int

    def summary(self) -> str:
        """One line for logs and docs."""
        return (f"provable {self.provable_bits:.1f} bits, conjectured {self.conjectured_bits:.1f} bits "
                f"(queries {self.n_queries}: {self.query_bits_provable:.1f}/{self.query_bits_conjectured:.1f}; "
                f"proximity {self.proximity_bits:.1f}; algebra {self.algebraic_bits:.1f}; rate {self.rate:.4f})")


def _bits(err: float) -> float:
    return math.inf if err <= 0 else -math.log2(err)


def _check_pos_int(v: int, name: str, minimum: int = 1) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise ValueError(f"{name} must be an int ≥ {minimum}, got {v!r}")
    return v


def analyze(*, n_cols: int, blowup: int, n_queries: int, hiding: int | None = None,
            proximity_tests: int = 1, n_claims: int = 1, field_size: int = BABYBEAR_P,
            ext_degree: int = EXT_DEGREE) -> SoundnessReport:
    """Soundness of opening a commitment with rows of ``n_cols`` symbols.

    ``hiding`` is the number of random symbols appended to each row message (the commitment uses
    ``n_queries``, so that any ``n_queries`` opened positions are uniformly random); ``n_claims`` is
    the number of evaluation claims batched into the opening.
    """
    _check_pos_int(n_cols, "n_cols")
    _check_pos_int(blowup, "blowup", 2)
    _check_pos_int(n_queries, "n_queries")
    _check_pos_int(proximity_tests, "proximity_tests")
    _check_pos_int(n_claims, "n_claims")
    _check_pos_int(ext_degree, "ext_degree")
    hiding = n_queries if hiding is None else _check_pos_int(hiding, "hiding", 0)
    n = n_cols * blowup
    k = n_cols + hiding
    if k >= n:
        raise ValueError(f"code dimension {k} (columns {n_cols} + hiding {hiding}) must be below the "
                         f"codeword length {n}: raise blowup or lower the query count")
    ext_log2 = ext_degree * math.log2(field_size)
    d = n - k + 1
    e = (d - 1) // 2
    log_miss = math.log2(1.0 - e / n)
    q_prov = -n_queries * log_miss
    q_conj = -n_queries * math.log2(k / n)
    prox = proximity_tests * (ext_log2 - math.log2(n))
    log_c = max(1, math.ceil(math.log2(n_cols)))
    # column sumcheck (degree 2 per round), claim batching, mask sum and evaluation-mask challenges
    algebra_err = (2 * log_c + n_claims + 2) * 2.0 ** (-ext_log2)
    algebra = _bits(algebra_err)
    prov = _bits(2.0 ** -q_prov + 2.0 ** -prox + algebra_err)
    conj = _bits(2.0 ** -q_conj + 2.0 ** -prox + algebra_err)
    return SoundnessReport(provable_bits=prov, conjectured_bits=conj, query_bits_provable=q_prov,
                           query_bits_conjectured=q_conj, proximity_bits=prox, algebraic_bits=algebra,
                           rate=k / n, relative_distance=d / n, n_queries=n_queries)


def logup_error_log2(queries: int, depth: int, draws: int = 1, reps: int = 1,
                     field_size: int = BABYBEAR_P, ext_degree: int = EXT_DEGREE) -> float:
    """``log2`` of the error of the logUp challenges of one lookup (see docs/proofs.md §4).

    One repetition draws ``draws`` challenges (``α``, and ``β`` folding two-column rows); the rational
    identity ``sum_i 1/(α - w_i) = sum_j m_j/(α - t_j)`` has at most ``queries + 2^depth`` distinct
    poles, so a false identity survives a repetition with probability ``≤ draws · (queries + 2^depth)
    / |F_ext|`` (Schwartz–Zippel on the cleared numerator, plus hitting a pole). ``reps``
    repetitions draw independent challenges against the same committed columns, so their errors
    multiply."""
    _check_pos_int(queries, "queries", 0)
    _check_pos_int(depth, "depth", 0)
    _check_pos_int(draws, "draws")
    _check_pos_int(reps, "reps")
    per = math.log2(draws * (queries + (1 << depth))) - ext_degree * math.log2(field_size)
    return reps * min(per, 0.0)


def queries_for(bits: float, *, n_cols: int, blowup: int, hiding: bool = True, openings: int = 1) -> int:
    """Fewest column queries whose provable query term reaches ``bits``.

    With hiding, each query adds ``openings`` hiding symbols to every row (a commitment opened up to
    ``openings`` times keeps ``openings · t`` hiding symbols, so that every position any of its
    openings reveals stays uniform): the code's dimension grows with the query count, so the count
    is found by search rather than by a closed form.
    """
    if not bits > 0:
        raise ValueError(f"bits must be positive, got {bits!r}")
    _check_pos_int(n_cols, "n_cols")
    _check_pos_int(blowup, "blowup", 2)
    _check_pos_int(openings, "openings")
    n = n_cols * blowup
    for t in range(1, n):
        k = n_cols + (openings * t if hiding else 0)
        if k >= n:
            break
        e = (n - k) // 2
        if -t * math.log2(1.0 - e / n) >= bits:
            return t
    raise ValueError(f"no query count reaches {bits} bits with {n_cols} columns at blowup {blowup}")
