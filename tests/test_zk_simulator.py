"""A simulator for the building block every op proof is made of: a masked sumcheck over a secret table
read as its randomized extension (docs/proofs.md §5, docs/design-zk.md §4 items 2–3).

Statement: ``H = Σ_x W(x)·P(x)`` with ``W`` secret, ``P`` public. The real prover runs on ``W`` with a
fresh randomizer and mask. The simulator knows only ``H`` and ``P``: it draws any ``W'`` with the same
sum and runs the same prover code on it. The distinguisher knows ``W`` (zero knowledge must hold
against a verifier who knows the witness): it compares the revealed final value with ``W̃(r)`` at the
public point. Against the randomized extension it sees uniform noise in both worlds; against a plain
table (the protocol before randomized extensions) it tells the worlds apart every time — the test that
shows the check can fail.

This covers the sumcheck block only; a simulator for a whole program proof needs a programmable random
oracle (the argument is in docs/proofs.md §5, not a test)."""

from __future__ import annotations

import numpy as np
import pytest

from blindproof.zk.field import babybear as F
from blindproof.zk.iop import mle
from blindproof.zk.iop import sumcheck as S
from blindproof.zk.iop.transcript import Transcript

N = 4
RUNS = 300


def _sum(W, P) -> np.ndarray:
    return F.ext(int((W.astype(np.int64) * P.astype(np.int64) % F.P).sum() % F.P))


def _prove(W, P, H, rng, randomized: bool):
    """One masked proof of ``H = Σ W·P``; returns (point, revealed value of W, verifier verdict)."""
    spec = S.SumcheckSpec.make(N, 2, [(1, (0, 1))], blinded=[(0, N - 1)] if randomized else [])
    R = F.random(rng, (2, 4))  # fresh randomizer: c = R̃(r_{N-2}) (8 base dimensions)
    blinders = [S.Blinder(0, lambda pt: mle.evaluate(R, pt[N - 2:N - 1]), N - 1)] if randomized else []
    mask = S.MaskPolynomial.random(rng, N, spec.round_degrees)
    out = S.prove(spec, [W, P], H, Transcript(b"sim"), mask=mask, blinders=blinders)
    res = S.verify(spec, H, out.proof, Transcript(b"sim"), masked=True)
    return out.point, out.proof.final_evals[0], res.ok


def _simulated_witness(P, H, rng) -> np.ndarray:
    """Any table with the statement's sum: random, one entry solved for (needs P ≠ 0 there)."""
    Wp = F.random(rng, 1 << N)
    i = int(np.nonzero(P)[0][0])
    rest = int((Wp.astype(np.int64) * P.astype(np.int64) % F.P).sum() - int(Wp[i]) * int(P[i])) % F.P
    Wp[i] = (int(H[0]) - rest) * pow(int(P[i]), F.P - 2, F.P) % F.P
    assert np.array_equal(_sum(Wp, P), H)
    return Wp


def _views(randomized: bool, simulated: bool, seed: int):
    rng = np.random.default_rng(seed)
    W = F.random(np.random.default_rng(99), 1 << N)  # the secret, fixed across runs
    P = F.random(np.random.default_rng(98), 1 << N)
    H = _sum(W, P)
    hits, diffs = 0, []
    for _ in range(RUNS):
        witness = _simulated_witness(P, H, rng) if simulated else W
        r, revealed, ok = _prove(witness, P, H, rng, randomized)
        assert ok, "the verifier must accept every transcript, real or simulated"
        truth = mle.evaluate(W, r)  # what the distinguisher, knowing W, computes at the public point
        hits += int(np.array_equal(revealed, truth))
        diffs.append(int(F.esub(revealed, truth)[0]) & 0xF)
    return hits, np.bincount(diffs, minlength=16)


def _chi2_same(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample χ² statistic of two histograms with equal totals (15 degrees of freedom here)."""
    tot = a + b
    keep = tot > 0
    return float((((a - b) ** 2)[keep] / tot[keep]).sum())


def test_randomized_extension_views_are_simulatable():
    real_hits, real_hist = _views(randomized=True, simulated=False, seed=1)
    sim_hits, sim_hist = _views(randomized=True, simulated=True, seed=2)
    assert real_hits == 0 and sim_hits == 0
    # the low bits of (revealed − W̃(r)) look alike in both worlds: χ²(15) below its 0.1 % quantile (37.7)
    assert _chi2_same(real_hist, sim_hist) < 37.7, (real_hist, sim_hist)


def test_plain_tables_are_told_apart():
    """Without the randomizer the real world reveals W̃(r) itself: every real view is recognised."""
    real_hits, _ = _views(randomized=False, simulated=False, seed=3)
    sim_hits, _ = _views(randomized=False, simulated=True, seed=4)
    assert real_hits == RUNS and sim_hits == 0


@pytest.mark.parametrize("randomized", [True, False])
def test_simulated_transcripts_verify(randomized):
    rng = np.random.default_rng(5)
    P = F.random(rng, 1 << N)
    H = F.ext(12345)
    for _ in range(5):
        assert _prove(_simulated_witness(P, H, rng), P, H, rng, randomized)[2]


# --- every value one masked sumcheck reveals, counted ---------------------------------------------------

class _Replay(Transcript):
    """Fiat–Shamir with the challenges fixed (those of one honest run): the revealed values are then
    LINEAR in the secrets (table, randomizer, mask), so what they say about the table is a rank."""

    def __init__(self, challenges: list):
        super().__init__(b"replay")
        self._queue = list(challenges)

    def challenge_ext(self, label: str) -> np.ndarray:
        return self._queue.pop(0).copy()


class _Record(Transcript):
    def __init__(self):
        super().__init__(b"sim")
        self.seen: list = []

    def challenge_ext(self, label: str) -> np.ndarray:
        c = super().challenge_ext(label)
        self.seen.append(c.copy())
        return c


def _revealed(W, R, coeffs, P, tr):
    """Everything the verifier reads about the secrets: mask sum, round values, Ŵ(r), g(r) (base coords)."""
    spec = S.SumcheckSpec.make(N, 2, [(1, (0, 1))], blinded=[(0, N - 1)])
    blinder = S.Blinder(0, lambda pt: mle.evaluate(R, pt[N - 2:N - 1]), N - 1)
    out = S.prove(spec, [W, P], _sum(W, P), tr, mask=S.MaskPolynomial(coeffs), blinders=[blinder])
    pr = out.proof
    return np.concatenate([pr.mask_sum, pr.round_evals.reshape(-1), pr.final_evals[0], pr.mask_eval]).astype(np.int64)


@pytest.mark.parametrize("ext_mask", [True, False])
def test_one_sumcheck_reveals_only_its_statement(ext_mask):
    """Rank of what one masked, randomized sumcheck reveals about the secret table beyond the statement
    ``Σ W·P``: 0 with the extension mask; with a base-field mask (the earlier protocol) the rounds
    leak, which shows the count can fail."""
    from test_zk_leakage_rank import _rank_mod_p

    rng = np.random.default_rng(7)
    P = F.random(rng, 1 << N)
    spec = S.SumcheckSpec.make(N, 2, [(1, (0, 1))], blinded=[(0, N - 1)])
    mask = S.MaskPolynomial.random(rng, N, spec.round_degrees)
    if not ext_mask:
        mask.coeffs[..., 1:] = 0
    W, R = F.random(rng, 1 << N), F.random(rng, (2, 4))
    rec = _Record()
    _revealed(W, R, mask.coeffs, P, rec)
    # unknowns: W (base entries), R (4 coordinates each), the mask's coefficients (4 or 1 coordinates)
    units = [("W", i) for i in range(W.size)] + [("R", i) for i in range(R.size)]
    shape = mask.coeffs.shape  # (variable, power, coordinate): powers up to each round's degree
    units += [("g", i) for i in range(mask.coeffs.size)
              if np.unravel_index(i, shape)[1] <= spec.round_degrees[np.unravel_index(i, shape)[0]]
              and (ext_mask or i % 4 == 0)]
    cols = []
    for kind, i in units:
        w, r, g = np.zeros_like(W), np.zeros_like(R), np.zeros_like(mask.coeffs)
        {"W": w, "R": r, "g": g}[kind].reshape(-1)[i] = 1
        cols.append(_revealed(w, r, g, P, _Replay(rec.seen)))
    A = np.stack(cols, axis=1) % F.P
    statement = np.array([[int(P[i]) if k == "W" else 0 for k, i in units]], dtype=np.int64)  # Σ W·P, public
    A = np.concatenate([A, statement])
    hidden = np.array([k != "W" for k, _ in units])
    leak = _rank_mod_p(A) - _rank_mod_p(A[:, hidden]) - 1
    if ext_mask:
        assert leak == 0, f"the sumcheck reveals {leak} base functionals of W beyond its statement"
    else:
        assert leak > 0, leak
