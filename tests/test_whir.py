"""WHIR-style hiding commitment (blindproof.zk.commit.whir): completeness, must-reject, hiding.

Every must-reject case is a cheating prover or a tampered proof; the verifier must return a rejection
(never raise). The hiding test counts ranks: with every challenge fixed, the revealed values are a
linear map of (f, masks); f is hidden iff every direction of f that the claims do not fix is matched
by some direction of the masks.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from blindproof.zk.commit import whir as W
from blindproof.zk.commit import _whir_kernels as WK
from blindproof.zk.commit.whir_soundness import WhirParams
from blindproof.zk.field import babybear as F
from blindproof.zk.iop import mle
from blindproof.zk.iop.transcript import Transcript

DOMAIN = b"test-whir"


def _setup(m: int, seed: int = 0, params: WhirParams | None = None, ood: int | None = None):
    rng = np.random.default_rng(seed)
    params = params or WhirParams.for_security(100, m, ood=ood)
    table = F.random(rng, 1 << m)
    com, state = W.commit(table, params, rng=rng)
    return rng, params, table, com, state


def _claims(rng, table, m: int, n: int = 3):
    out = []
    for _ in range(n):
        z = F.erandom(rng, m)
        out.append(W.Claim(z, mle.evaluate(table, z)))
    return out


def _prove(m: int = 8, seed: int = 0, n_claims: int = 3, ood: int | None = None):
    rng, params, table, com, state = _setup(m, seed, ood=ood)
    claims = _claims(rng, table, m, n_claims)
    proof = W.open_claims(state, claims, Transcript(DOMAIN))
    return params, table, com, claims, proof


def _verify(com, claims, proof, params, domain=DOMAIN):
    return W.verify(com, claims, proof, Transcript(domain), params)


# --- completeness ------------------------------------------------------------------------------------

@pytest.mark.parametrize("m", list(range(1, 17)))
def test_completeness_sizes(m):
    params, table, com, claims, proof = _prove(m, seed=m)
    assert _verify(com, claims, proof, params).ok
    assert _verify(com, claims, proof.to_bytes(), params).ok


def test_batch_random_repeated_and_linear_claims():
    m = 10
    rng, params, table, com, state = _setup(m, 3)
    claims = _claims(rng, table, m, 20)
    z = F.erandom(rng, m)
    z2 = z.copy()
    z2[3:] = z[0]  # repeated coordinates
    claims.append(W.Claim(z2, mle.evaluate(table, z2)))
    claims.append(W.Claim(z, mle.evaluate(table, z)))  # the same point twice
    b = F.random(rng, m)  # a base-field point (a hypercube-like point)
    claims.append(W.Claim(b, mle.evaluate(table, F.embed(b))))
    pts = [F.erandom(rng, m) for _ in range(3)]
    coefs = [F.erandom(rng, ()) for _ in range(3)]
    val = F.ezero(())
    for p, c in zip(pts, coefs):
        val = F.eadd(val, F.emul(c, mle.evaluate(table, p)))
    claims.append(W.LinearClaim(tuple(zip(pts, coefs)), val))
    proof = W.open_claims(state, claims, Transcript(DOMAIN))
    assert _verify(com, claims, proof.to_bytes(), params).ok


def test_proof_size_does_not_grow_with_claims():
    m = 12
    sizes = []
    for n in (1, 64):
        rng, params, table, com, state = _setup(m, 5)
        claims = _claims(rng, table, m, n)
        proof = W.open_claims(state, claims, Transcript(DOMAIN))
        assert _verify(com, claims, proof, params).ok
        sizes.append(len(proof.to_bytes()))
    # nothing in a proof is per claim: only the distinct query positions and how their Merkle paths
    # share nodes differ between the two openings
    assert abs(sizes[0] - sizes[1]) < 0.1 * sizes[0]


def test_commitment_roundtrip_and_one_opening_only():
    rng, params, table, com, state = _setup(6, 1)
    assert W.Commitment.from_bytes(com.to_bytes()) == com
    claims = _claims(rng, table, 6, 1)
    W.open_claims(state, claims, Transcript(DOMAIN))
    with pytest.raises(RuntimeError):
        W.open_claims(state, claims, Transcript(DOMAIN))


def test_concurrent_openings_give_one_proof():
    """Threads opening one state at once: before the test-and-set was atomic, four threads each got a
    proof for a large batch of claims, and together the proofs gave the whole table away."""
    import threading

    rng, params, table, com, state = _setup(8, 2)
    z = F.embed(F.random(rng, 8))  # a base-field point, repeated: the batch makes the window wide
    claims = [W.Claim(z, mle.evaluate(table, z))] * 4000
    start, got = threading.Barrier(4), []

    def open_once():
        start.wait()
        try:
            got.append(W.open_claims(state, claims, Transcript(DOMAIN)))
        except RuntimeError:
            got.append(None)

    threads = [threading.Thread(target=open_once) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(p is not None for p in got) == 1


def test_malformed_claims_leave_the_state_unopened():
    rng, params, table, com, state = _setup(6, 3)
    with pytest.raises((TypeError, ValueError)):
        W.open_claims(state, [W.Claim(F.erandom(rng, 5), F.ezero())], Transcript(DOMAIN))  # wrong arity
    claims = _claims(rng, table, 6, 1)
    assert _verify(com, claims, W.open_claims(state, claims, Transcript(DOMAIN)), params).ok


# --- must reject: wrong statements -------------------------------------------------------------------

def test_rejects_wrong_claimed_value():
    rng, params, table, com, state = _setup(8, 11)
    claims = _claims(rng, table, 8, 3)
    bad = list(claims)
    bad[1] = W.Claim(bad[1].point, F.eadd(bad[1].value, F.ext(1)))
    proof = W.open_claims(state, bad, Transcript(DOMAIN))  # the prover proves the false batch honestly
    res = _verify(com, bad, proof, params)
    assert not res.ok
    params, table, com, claims, proof = _prove(8, 12)
    for i in range(len(claims)):
        other = list(claims)
        other[i] = W.Claim(claims[i].point, F.eadd(claims[i].value, F.ext(0, 1)))
        assert not _verify(com, other, proof, params).ok


def test_rejects_replay_against_other_statement():
    params, table, com, claims, proof = _prove(8, 13)
    rng = np.random.default_rng(99)
    # other claims that are TRUE for the same polynomial: the proof's challenges belong to the first set
    other = _claims(rng, table, 8, 3)
    assert not _verify(com, other, proof, params).ok
    assert not _verify(com, claims[:2], proof, params).ok
    assert not _verify(com, claims, proof, params, domain=b"other-domain").ok
    # the same proof against another commitment (of the same polynomial, other randomness)
    _, _, _, com2, _ = _setup(8, 14)
    assert not _verify(com2, claims, proof, params).ok


# --- must reject: cheating provers -------------------------------------------------------------------

def test_rejects_wrong_fold(monkeypatch):
    """A prover whose second oracle is not the fold of the first (one coefficient changed after the
    first round): its Merkle paths are consistent, the shift queries catch it."""
    rng, params, table, com, state = _setup(8, 21)
    claims = _claims(rng, table, 8, 2)
    real = WK.fold_coefs
    calls = {"n": 0}

    def bad_fold(c, length, r):
        real(c, length, r)
        calls["n"] += 1
        if calls["n"] == params.folds[0]:  # the last fold of round 0: corrupt the next oracle
            c[length // 4] = F.eadd(c[length // 4], F.ext(5))
    monkeypatch.setattr(WK, "fold_coefs", bad_fold)
    proof = W.open_claims(state, claims, Transcript(DOMAIN))
    monkeypatch.setattr(WK, "fold_coefs", real)
    assert calls["n"] > params.folds[0]
    assert not _verify(com, claims, proof, params).ok


def test_rejects_wrong_sumcheck_table(monkeypatch):
    """A prover that runs the sumcheck on another polynomial than the committed one."""
    rng, params, table, com, state = _setup(8, 22)
    claims = _claims(rng, table, 8, 2)
    real = WK.combine_many
    first = {"done": False}

    def bad_combine(a, bs, r):
        out = real(a, bs, r)
        if not first["done"]:
            first["done"] = True
            out[7] = F.eadd(out[7], F.ext(1))
        return out
    monkeypatch.setattr(WK, "combine_many", bad_combine)
    proof = W.open_claims(state, claims, Transcript(DOMAIN))
    monkeypatch.setattr(WK, "combine_many", real)
    assert first["done"]
    assert not _verify(com, claims, proof, params).ok


def _tampered(proof, fn):
    p = dataclasses.replace(proof, rounds=[dataclasses.replace(r) for r in proof.rounds])
    fn(p)
    return p


def _bump(arr, idx):
    arr = arr.copy()
    flat = arr.reshape(-1)
    flat[idx] = (int(flat[idx]) + 1) % F.P
    return arr


@pytest.fixture(scope="module")
def honest():
    return _prove(9, 31, ood=1)


@pytest.mark.parametrize("what", ["final", "final_sumcheck", "mu", "ood0_f", "ood0_g", "ood", "sumcheck0",
                                  "sumcheck1", "values0_f", "values0_g", "values1", "siblings0", "siblings1",
                                  "root"])
def test_rejects_tampered_parts(honest, what):
    params, table, com, claims, proof = honest
    assert _verify(com, claims, proof, params).ok

    def mutate(p):
        r0, r1 = p.rounds[0], p.rounds[1]
        if what == "final":
            p.final = _bump(p.final, 3)
        elif what == "final_sumcheck":
            p.final_sumcheck = _bump(p.final_sumcheck, 0)
        elif what == "mu":
            p.mu = _bump(p.mu, 0)
        elif what == "ood0_f":
            p.ood0 = _bump(p.ood0, 0)
        elif what == "ood0_g":
            p.ood0 = _bump(p.ood0, 5)
        elif what == "ood":
            r0.ood = _bump(r0.ood, 2)
        elif what == "sumcheck0":
            r0.sumcheck = _bump(r0.sumcheck, 1)
        elif what == "sumcheck1":
            r1.sumcheck = _bump(r1.sumcheck, 6)
        elif what == "values0_f":
            r0.values = _bump(r0.values, 2)
        elif what == "values0_g":
            r0.values = _bump(r0.values, r0.values.shape[1] - 1)
        elif what == "values1":
            r1.values = _bump(r1.values, 9)
        elif what == "siblings0":
            r0.siblings = _bump(r0.siblings, 4)
        elif what == "siblings1":
            r1.siblings = _bump(r1.siblings, 0)
        elif what == "root":
            r0.root = bytes(32)
    bad = _tampered(proof, mutate)
    res = _verify(com, claims, bad, params)
    assert not res.ok and res.reason
    res = _verify(com, claims, bad.to_bytes(), params)
    assert not res.ok


def test_rejects_consistent_wrong_final_polynomial():
    """The final polynomial changed AND a different last oracle would be needed: changing it alone
    fails the last round's folded blocks even though the transcript is replayed consistently."""
    params, table, com, claims, proof = _prove(8, 33)
    bad = _tampered(proof, lambda p: setattr(p, "final", F.eadd(p.final, F.eone(p.final.shape[0]))))
    assert not _verify(com, claims, bad, params).ok


@pytest.mark.parametrize("kind", ["fewer later queries", "conjectured profile", "fewer rounds"])
def test_rejects_parameter_downgrade(kind):
    """A prover that commits and opens under weaker parameters than the verifier's: accepted by a
    verifier that would take them, rejected by one that fixes its own."""
    m = 8
    strong = WhirParams.for_security(100, m)
    if kind == "fewer later queries":  # same shape, fewer shift queries after the first round
        weak = WhirParams(m, (strong.queries[0],) + tuple(3 for _ in strong.queries[1:]), strong.folding,
                          strong.blowup, strong.shrink, strong.final_log, strong.ood, strong.profile, 100.0)
    elif kind == "conjectured profile":
        weak = WhirParams.for_security(100, m, "conjectured")
    else:  # a larger final polynomial: one round fewer
        weak = WhirParams.for_security(100, m, final_log=9)
        assert len(weak.folds) < len(strong.folds)
    assert weak != strong
    rng = np.random.default_rng(41)
    table = F.random(rng, 1 << m)
    com, state = W.commit(table, weak, rng=rng)
    claims = _claims(rng, table, m, 2)
    proof = W.open_claims(state, claims, Transcript(DOMAIN))
    assert W.verify(com, claims, proof, Transcript(DOMAIN), weak).ok  # fine under its own parameters
    res = W.verify(com, claims, proof, Transcript(DOMAIN), strong)
    assert not res.ok and "parameters" in res.reason
    # the commitment relabelled with the strong parameters' digest: the proof still does not pass
    forged = W.Commitment(com.root, m, W.params_digest(strong))
    assert not W.verify(forged, claims, proof, Transcript(DOMAIN), strong).ok
    assert not W.verify(forged, claims, proof.to_bytes(), Transcript(DOMAIN), strong).ok


def test_rejects_misstated_soundness_figures():
    params, table, com, claims, proof = _prove(8, 42)
    bad = dataclasses.replace(proof, provable_tenths=proof.provable_tenths + 1)
    assert not _verify(com, claims, bad, params).ok
    assert not _verify(com, claims, bad.to_bytes(), params).ok


# --- must reject: bytes ------------------------------------------------------------------------------

def test_rejects_truncated_extended_and_garbage_bytes(honest):
    params, table, com, claims, proof = honest
    data = proof.to_bytes()
    for cut in (0, 1, 6, 10, 100, len(data) // 2, len(data) - 1):
        res = _verify(com, claims, data[:cut], params)
        assert not res.ok and res.reason
    for extra in (b"\x00", b"\xff" * 7):
        assert not _verify(com, claims, data + extra, params).ok
    rng = np.random.default_rng(5)
    for n in (0, 10, 1000, len(data)):
        assert not _verify(com, claims, rng.integers(0, 256, n, dtype=np.uint8).tobytes(), params).ok
    assert not _verify(com, claims, b"\xff" * (W.max_proof_bytes(params) + 1), params).ok
    assert not _verify(com, claims, "not bytes", params).ok
    assert not W.verify("not a commitment", claims, data, Transcript(DOMAIN), params).ok
    assert not W.verify(com, "not claims", data, Transcript(DOMAIN), params).ok
    assert not W.verify(com, claims, data, Transcript(DOMAIN), "not params").ok


def test_rejects_bit_flips(honest):
    params, table, com, claims, proof = honest
    data = proof.to_bytes()
    rng = np.random.default_rng(8)
    spots = list(range(0, 48)) + sorted(rng.choice(len(data) * 8 - 48, 150, replace=False) + 48)
    for bit in spots:
        b = bytearray(data)
        b[bit // 8] ^= 1 << (bit % 8)
        res = _verify(com, claims, bytes(b), params)
        assert not res.ok, f"bit {bit} flipped was accepted"


# --- hiding ------------------------------------------------------------------------------------------

class _FixedTranscript(Transcript):
    """Challenges from a seeded stream, whatever was absorbed: the prover becomes a linear map of its
    inputs (polynomial and masks) for one fixed choice of every challenge."""

    def __init__(self, seed: int) -> None:
        super().__init__(b"fixed")
        self._rng = np.random.default_rng(seed)

    def challenge_exts(self, label, n):
        return F.erandom(self._rng, int(n))

    def challenge_indices(self, label, n, bound):
        return self._rng.integers(0, bound, int(n)).astype(np.int64)


class _Source:
    """Stands in for the commitment's random generator: returns a chosen mask vector."""

    def __init__(self, vec: np.ndarray) -> None:
        self.vec = vec

    def integers(self, low, high, size=None, dtype=np.uint32):
        assert size == self.vec.size
        return self.vec.astype(dtype)



def _revealed(params, table, masks, claims, seed) -> np.ndarray:
    """Every field element a proof reveals (Merkle digests aside), as base-field coordinates."""
    _, state = W.commit(table, params, rng=_Source(masks))
    pr = W.open_claims(state, claims, _FixedTranscript(seed))
    parts = [pr.ood0, pr.mu, pr.final, pr.final_sumcheck]
    for rd in pr.rounds:
        parts += [rd.sumcheck, rd.ood, rd.values]
    return np.concatenate([np.asarray(x, dtype=np.int64).reshape(-1) for x in parts])


def _rank_mod_p(a: np.ndarray) -> int:
    a = np.array(a, dtype=np.int64) % F.P
    rows, cols = a.shape
    r = 0
    for c in range(cols):
        piv = np.flatnonzero(a[r:, c])
        if piv.size == 0:
            continue
        p = r + piv[0]
        a[[r, p]] = a[[p, r]]
        a[r] = a[r] * pow(int(a[r, c]), F.P - 2, F.P) % F.P
        nz = np.flatnonzero(a[:, c])
        for i in nz:
            if i != r:
                a[i] = (a[i] - a[i, c] * a[r]) % F.P
        r += 1
        if r == rows:
            break
    return r


def _linear_map(params, claims_fn, seed, m, n_masks, which):
    """Columns: the revealed vector's response to each unit vector of f ('f') or of the masks ('mask')."""
    zero_t = np.zeros(1 << m, dtype=np.uint32)
    zero_m = np.zeros(n_masks, dtype=np.uint32)
    base = _revealed(params, zero_t, zero_m, claims_fn(zero_t), seed)
    cols = []
    size = (1 << m) if which == "f" else n_masks
    for i in range(size):
        t, mk = zero_t.copy(), zero_m.copy()
        if which == "f":
            t[i] = 1
        else:
            mk[i] = 1
        cols.append((_revealed(params, t, mk, claims_fn(t), seed) - base) % F.P)
    return np.stack(cols, axis=1)


_SMALL = {4: dict(folding=3, blowup=2, shrink=1, final_log=1, ood=1, security_bits=10.0),
          8: dict(folding=4, blowup=2, shrink=1, final_log=1, ood=1, security_bits=10.0, ext_degree=8)}


@pytest.mark.parametrize("degree,n_points", [(4, 2), (8, 2), (8, 1)])
def test_hiding_rank_small_case(degree, n_points):
    """With all challenges fixed, for m = 4: the revealed values are R = A·f + B·masks. The claims
    fix C·f; every f in ker C must be matched by masks, i.e. rank [B | A·K] = rank B. Sending the
    values without the mask M (B restricted to s) leaks, which the test checks too (the test can fail)."""
    m = 4
    params = WhirParams(m, (2, 2), **_SMALL[degree])
    n_masks = params.hiding_symbols + params.masks * (1 << params.n_vars)
    pts = [F.erandom(np.random.default_rng(7 + i), m) for i in range(n_points)]
    claims_fn = lambda t: [W.Claim(p, mle.evaluate(t, p)) for p in pts]  # noqa: E731
    seed = 123
    A = _linear_map(params, claims_fn, seed, m, n_masks, "f")
    B = _linear_map(params, claims_fn, seed, m, n_masks, "mask")
    # C: the claims as base-field rows on f (4 coordinates per extension value)
    C = np.concatenate([np.stack([mle.eq_table(p)[:, c] for c in range(4)]) for p in pts]).astype(np.int64)
    # kernel of C over F_p by elimination
    K = _kernel_mod_p(C)
    assert K.shape[1] == (1 << m) - _rank_mod_p(C)
    rb = _rank_mod_p(B)
    assert _rank_mod_p(np.concatenate([B, _matmul_mod(A, K)], axis=1)) == rb
    # without M only s masks the values: f leaks
    Bs = B[:, :params.hiding_symbols]
    assert _rank_mod_p(np.concatenate([Bs, _matmul_mod(A, K)], axis=1)) > _rank_mod_p(Bs)


# Claims whose weights lie in a proper subfield of the challenge field: base-field coordinates (F_p),
# hypercube points (the claim is one table entry), coordinates in F_p[x^2] (a subfield of the degree-4
# field), a batch of an extension claim and a base-field claim, a linear claim over base-field points
# with extension coefficients. The masks' part of every message must cover the whole field whatever
# the weights; shapes with no padding variable and ood = 0 (as the provable profile), m = 6.
_M6 = 6
_RANK_PARAMS = {4: dict(queries=(2, 1), folding=4, blowup=2, shrink=2, final_log=2, ood=0, security_bits=10.0),
                8: dict(queries=(2, 2), folding=4, blowup=2, shrink=1, final_log=1, ood=0, security_bits=10.0,
                        ext_degree=8)}


def _rank_point(kind: str, i: int) -> np.ndarray:
    rng = np.random.default_rng(1000 + i)
    if kind == "ext":
        return F.erandom(rng, _M6)
    if kind == "base":
        return F.random(rng, _M6)
    if kind == "hypercube":
        return np.array([0, 1, 1, 0, 1, 0], dtype=np.uint32) ^ np.uint32(i & 1)
    if kind == "fp2":  # every coordinate in F_p[x^2] inside the degree-4 field
        e = F.erandom(rng, _M6)
        e[:, 1] = 0
        e[:, 3] = 0
        return e
    raise ValueError(kind)


_RANK_CASES = {
    "base point": [[("base", 0, None)]],
    "hypercube point": [[("hypercube", 0, None)]],
    "F_p[x^2] point": [[("fp2", 0, None)]],
    "two base points": [[("base", 0, None)], [("base", 1, None)]],
    "extension + base claims": [[("ext", 0, None)], [("base", 1, None)]],
    "linear, base points, extension coefficients": [[("base", 0, (3, 1, 4, 1)), ("base", 1, (5, 9, 2, 6))]],
    "linear, base points, base coefficients": [[("base", 0, (3, 0, 0, 0)), ("base", 1, (5, 0, 0, 0))]],
}


def _rank_spec(case: str) -> list:
    return [[(_rank_point(kind, i), F.eone() if c is None else F.ext(*c)) for kind, i, c in terms]
            for terms in _RANK_CASES[case]]


def _rank_claims_fn(spec):
    """Claims from spec (lists of (point, coefficient)); one term with coefficient 1 is a plain Claim."""
    def fn(t):
        out = []
        for terms in spec:
            val = None
            for pt, coef in terms:
                v = F.emul(coef, mle.evaluate(t, pt if pt.ndim == 2 else F.embed(pt)))
                val = v if val is None else F.eadd(val, v)
            if len(terms) == 1 and np.array_equal(terms[0][1], F.eone()):
                out.append(W.Claim(terms[0][0], val))
            else:
                out.append(W.LinearClaim(tuple(terms), val))
        return out
    return fn


def _rank_claim_rows(spec) -> np.ndarray:
    """The claims as base-field rows on f (4 per claim: the coordinates of Σ coef·eq(point, ·))."""
    rows = []
    for terms in spec:
        acc = None
        for pt, coef in terms:
            eq = mle.eq_table(pt if pt.ndim == 2 else F.embed(pt))
            t = F.emul(np.broadcast_to(coef, eq.shape), eq)
            acc = t if acc is None else F.eadd(acc, t)
        rows.append(np.stack([acc[:, c] for c in range(4)]))
    return np.concatenate(rows).astype(np.int64)


def _leaked_directions(params, spec, seed=123) -> tuple[int, int]:
    """f-directions the claims leave free that the revealed values pin down: rank[B | A·K] − rank B,
    with the masks (s and M), and with s alone (no mask M)."""
    m = params.log_size
    n_masks = params.hiding_symbols + params.masks * (1 << params.n_vars)
    fn = _rank_claims_fn(spec)
    A = _linear_map(params, fn, seed, m, n_masks, "f")
    B = _linear_map(params, fn, seed, m, n_masks, "mask")
    AK = _matmul_mod(A, _kernel_mod_p(_rank_claim_rows(spec)))
    Bs = B[:, :params.hiding_symbols]
    return (_rank_mod_p(np.concatenate([B, AK], axis=1)) - _rank_mod_p(B),
            _rank_mod_p(np.concatenate([Bs, AK], axis=1)) - _rank_mod_p(Bs))


@pytest.mark.parametrize("case", list(_RANK_CASES))
@pytest.mark.parametrize("degree", [4, 8])
def test_hiding_rank_subfield_weights(degree, case):
    """Claims whose weights lie in a subfield (base-field, hypercube, F_p[x^2] points; mixed batches;
    linear claims over base points) leak nothing: 0 directions. Without the mask M the same test
    finds the leak."""
    params = WhirParams(_M6, **_RANK_PARAMS[degree])
    assert params.padded_log == _M6 and params.ood == 0  # no padding variable to hide behind
    leaked, leaked_without_m = _leaked_directions(params, _rank_spec(case))
    assert leaked == 0
    assert leaked_without_m > 0


def _base_valued_masks(monkeypatch, degree: int) -> None:
    """The construction that leaked: ext_degree/4 masks with base-field values, one ρ_g each."""
    from blindproof.zk.commit import whir_soundness as S
    G = degree // 4
    monkeypatch.setattr(S.WhirParams, "masks", property(lambda self: G))

    def scalars(E, rho):  # ρ_g = ρ^{g+1}: independent enough for the rank test, base-field P_g
        out, cur = [], rho
        for _ in range(G):
            out.append(cur)
            cur = E.mul(cur, rho)
        return np.stack(out)
    monkeypatch.setattr(W, "_mask_scalars", scalars)
    monkeypatch.setattr(W, "_mask_combine", lambda E, parts: E.sum(np.stack(parts)))


@pytest.mark.parametrize("case", ["base point", "hypercube point", "F_p[x^2] point", "extension + base claims",
                                  "linear, base points, extension coefficients"])
@pytest.mark.parametrize("degree", [4, 8])
def test_hiding_rank_finds_the_base_valued_mask_leak(monkeypatch, degree, case):
    """The rank test catches the previous construction (masks with base-field values): their part of
    a sumcheck message is ρ_g·span_Fp(weights), which does not fill the field when the weights lie
    in a subfield, and f's part is solved for."""
    _base_valued_masks(monkeypatch, degree)
    params = WhirParams(_M6, **_RANK_PARAMS[degree])
    assert params.padded_log == _M6
    leaked, _ = _leaked_directions(params, _rank_spec(case))
    assert leaked > 0


def _matmul_mod(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros((a.shape[0], b.shape[1]), dtype=np.int64)
    for k in range(a.shape[1]):
        out = (out + (a[:, k:k + 1] % F.P) * (b[k:k + 1, :] % F.P)) % F.P
    return out


def _kernel_mod_p(c: np.ndarray) -> np.ndarray:
    """A basis (n, n − rank) of {x : c·x = 0} over F_p."""
    a = np.array(c, dtype=np.int64) % F.P
    rows, cols = a.shape
    piv_cols = []
    r = 0
    for col in range(cols):
        nz = np.flatnonzero(a[r:, col]) if r < rows else np.array([])
        if nz.size == 0:
            continue
        p = r + nz[0]
        a[[r, p]] = a[[p, r]]
        a[r] = a[r] * pow(int(a[r, col]), F.P - 2, F.P) % F.P
        for i in range(rows):
            if i != r and a[i, col]:
                a[i] = (a[i] - a[i, col] * a[r]) % F.P
        piv_cols.append(col)
        r += 1
    free = [c_ for c_ in range(cols) if c_ not in piv_cols]
    basis = np.zeros((cols, len(free)), dtype=np.int64)
    for j, fc in enumerate(free):
        basis[fc, j] = 1
        for i, pc in enumerate(piv_cols):
            basis[pc, j] = (-a[i, fc]) % F.P
    return basis


def test_hiding_revealed_values_change_with_masks_only():
    """Two different polynomials with the same claimed values: with the masks chosen to cancel
    their difference (the solution the rank test guarantees exists), every revealed value is
    identical. Shown directly by solving B·Δmask = −A·Δf."""
    m = 4
    params = WhirParams(m, (2, 2), folding=3, blowup=2, shrink=1, final_log=1, ood=1, security_bits=10.0)
    n_masks = params.hiding_symbols + params.masks * (1 << params.n_vars)
    rng = np.random.default_rng(17)
    pts = [F.erandom(rng, m) for _ in range(2)]
    claims_fn = lambda t: [W.Claim(p, mle.evaluate(t, p)) for p in pts]  # noqa: E731
    seed = 321
    A = _linear_map(params, claims_fn, seed, m, n_masks, "f")
    B = _linear_map(params, claims_fn, seed, m, n_masks, "mask")
    C = np.concatenate([np.stack([mle.eq_table(p)[:, c] for c in range(4)]) for p in pts]).astype(np.int64)
    K = _kernel_mod_p(C)
    f1 = F.random(rng, 1 << m)
    d = _matmul_mod(K, rng.integers(0, F.P, (K.shape[1], 1)))[:, 0]  # a difference the claims cannot see
    f2 = ((f1.astype(np.int64) + d) % F.P).astype(np.uint32)
    assert not np.array_equal(f1, f2)
    for p in pts:
        assert np.array_equal(mle.evaluate(f1, p), mle.evaluate(f2, p))
    masks1 = F.random(rng, n_masks)
    dm = _solve_mod_p(B, (-_matmul_mod(A, d[:, None])[:, 0]) % F.P)
    masks2 = ((masks1.astype(np.int64) + dm) % F.P).astype(np.uint32)
    r1 = _revealed(params, f1, masks1, claims_fn(f1), seed)
    r2 = _revealed(params, f2, masks2, claims_fn(f2), seed)
    assert np.array_equal(r1 % F.P, r2 % F.P)


def _solve_mod_p(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One solution x of a·x = b over F_p (AssertionError if none)."""
    aug = np.concatenate([np.array(a, dtype=np.int64) % F.P, (b % F.P)[:, None]], axis=1)
    rows, cols = a.shape
    piv = []
    r = 0
    for c in range(cols):
        nz = np.flatnonzero(aug[r:, c]) if r < rows else np.array([])
        if nz.size == 0:
            continue
        p = r + nz[0]
        aug[[r, p]] = aug[[p, r]]
        aug[r] = aug[r] * pow(int(aug[r, c]), F.P - 2, F.P) % F.P
        for i in np.flatnonzero(aug[:, c]):
            if i != r:
                aug[i] = (aug[i] - aug[i, c] * aug[r]) % F.P
        piv.append(c)
        r += 1
    assert not aug[r:, -1].any(), "no solution"
    x = np.zeros(cols, dtype=np.int64)
    for i, c in enumerate(piv):
        x[c] = aug[i, -1]
    return x


# --- kernels against their references ----------------------------------------------------------------

def test_kernels_match_references():
    rng = np.random.default_rng(77)
    for n in (1, 4, 9):
        t = F.random(rng, 1 << n)
        c = t.copy()
        WK.mobius_base(c)
        back = c.copy()
        WK.zeta_base(back)
        assert np.array_equal(back, t)
        w1 = F.erandom(rng, 1 << n)
        w2 = w1.copy()
        xs, g = F.random(rng, 9), F.erandom(rng, 9)
        WK.add_pow_eqs(w1, xs, g, np.empty(1 << n, dtype=np.uint64))
        WK.add_pow_eqs_split(w2, xs, g)
        assert np.array_equal(w1, w2)
        if n >= 2:
            f, w = F.erandom(rng, 1 << n), F.erandom(rng, 1 << n)
            r = F.erandom(rng, ())
            f2, w2_ = f.copy(), w.copy()
            s = WK.fold2_s02(f2, w2_, 1 << n, r)
            f3, w3 = f.copy(), w.copy()
            WK.fold_table(f3, 1 << n, r)
            WK.fold_table(w3, 1 << n, r)
            h = 1 << (n - 1)
            assert np.array_equal(f2[:h], f3[:h]) and np.array_equal(w2_[:h], w3[:h])
            assert np.array_equal(s, WK.round_s02(f3, w3, h))
    from blindproof.zk.commit import reed_solomon as RS
    for m, log_n in ((0, 1), (3, 5), (8, 9), (10, 13)):
        coefs = F.random(rng, (3, 1 << m))
        got = W._encode(coefs, log_n)
        # the same codeword by the commitment module's NTT: univariate coefficients = bit-reversed c
        rev = RS.bit_reverse_permutation(1 << m)
        want = RS.encode_rows(np.ascontiguousarray(coefs[:, rev]), 1 << log_n)  # bit-reversed points
        assert np.array_equal(got[:, RS.bit_reverse_permutation(1 << log_n)], want)
    for k in (3, 4, 5):
        vals = F.erandom(rng, (7, 1 << k))
        ys = F.random(rng, 7)
        ys[ys == 0] = 1
        rs = F.erandom(rng, k)
        assert np.array_equal(W._fold_blocks(vals, ys, rs), W._fold_blocks_reference(vals, ys, rs))


def test_rejects_malformed_claims_and_commitments(honest):
    params, table, com, claims, proof = honest
    m = params.log_size
    rng = np.random.default_rng(3)
    bad_sets = [
        [],  # no claim
        [W.Claim(F.erandom(rng, m + 1), claims[0].value)],  # point of the wrong length
        [W.Claim(claims[0].point, np.array([F.P, 0, 0, 0], dtype=np.uint32))],  # non-canonical value
        [W.LinearClaim(((claims[0].point, F.ezero(())),), claims[0].value)],  # zero coefficient
        [W.LinearClaim((), claims[0].value)],
        [("not", "a claim")],
    ]
    for bad in bad_sets:
        res = _verify(com, bad, proof, params)
        assert not res.ok and res.reason
    data = com.to_bytes()
    for cut in (0, 5, len(data) - 1):
        with pytest.raises(W.ProofFormatError):
            W.Commitment.from_bytes(data[:cut])
    with pytest.raises(W.ProofFormatError):
        W.Commitment.from_bytes(data + b"\x00")
    with pytest.raises(W.ProofFormatError):
        W.Commitment.from_bytes(b"BPWC" + bytes([W.FORMAT_VERSION + 1, 0]) + data[6:])  # another version
    with pytest.raises(W.ProofFormatError):
        W.Commitment.from_bytes(b"BPWC\x01\x00" + data[6:])  # the version with base-field masks
    other = W.Commitment(com.root, m, bytes(32))
    assert not _verify(other, claims, proof, params).ok


def test_prover_refuses_bad_input():
    params = WhirParams.for_security(100, 6)
    with pytest.raises(ValueError):
        W.commit(np.zeros(1 << 5, dtype=np.uint32), params)  # wrong size
    with pytest.raises(Exception):
        W.commit(np.full(1 << 6, F.P, dtype=np.uint32), params)  # non-canonical


# --- degree-8 folding challenges ---------------------------------------------------------------------

def _params8(m: int, ood: int = 1) -> WhirParams:
    return WhirParams.for_security(100, m, ext_degree=8, ood=ood)


@pytest.mark.parametrize("m", [1, 6, 13])
def test_degree_8_completeness(m):
    params = _params8(m)
    rng, _, table, com, state = _setup(m, 50 + m, params=params)
    claims = _claims(rng, table, m, 4)
    pts = [F.erandom(rng, m) for _ in range(2)]
    coefs = [F.erandom(rng, ()) for _ in range(2)]
    val = F.eadd(F.emul(coefs[0], mle.evaluate(table, pts[0])), F.emul(coefs[1], mle.evaluate(table, pts[1])))
    claims.append(W.LinearClaim(tuple(zip(pts, coefs)), val))
    proof = W.open_claims(state, claims, Transcript(DOMAIN))
    assert proof.final.shape[1] == 8 and proof.rounds[0].sumcheck.shape[-1] == 8
    data = proof.to_bytes()
    assert _verify(com, claims, data, params).ok
    assert len(data) <= W.max_proof_bytes(params)


def _bound_slack(params: WhirParams, proof) -> int:
    """What :func:`max_proof_bytes` reserves beyond this proof: the blocks a round did not open
    (repeated positions) and the siblings its multiproof shares."""
    slack = 0
    for i, (rd, k, ld, t) in enumerate(zip(proof.rounds, params.folds, params.domain_logs, params.queries)):
        q = rd.values.shape[0]
        block = 4 * ((1 + params.masks) << k) if i == 0 else 4 * params.ext_degree << k
        slack += (t - q) * block + 32 * t * max(ld - k, 1) - 32 * rd.siblings.shape[0]
    return slack


@pytest.mark.parametrize("degree,m,ood,folding", [(4, 7, 0, 4), (4, 9, 2, 3), (8, 7, 0, 4), (8, 9, 2, 4),
                                                  (8, 12, 1, 8)])
def test_max_proof_bytes_is_the_encoding(degree, m, ood, folding):
    """The bound is the encoding's size, field by field: an honest proof plus what the bound reserves
    for unopened blocks and shared siblings is exactly the bound (OOD answers and μ included)."""
    params = WhirParams.for_security(100, m, ext_degree=degree, ood=ood, folding=folding)
    rng, _, table, com, state = _setup(m, 70 + m, params=params)
    claims = _claims(rng, table, m, 2)
    proof = W.open_claims(state, claims, Transcript(DOMAIN))
    data = proof.to_bytes()
    assert _verify(com, claims, data, params).ok
    assert len(data) + _bound_slack(params, proof) == W.max_proof_bytes(params)


def test_degree_8_folding_8_at_2_18_within_the_bound():
    """Honest degree-8, folding-8 proofs at 2^18 (a round-0 leaf of (1 + 8)·2^8 words) fit the bound
    and verify from their bytes (the bound once counted 8·2^k bytes per round-0 block)."""
    m = 18
    params = WhirParams.for_security(100, m, ext_degree=8, folding=8)
    assert params.folds[0] == 8 and params.masks == 8
    rng, _, table, com, state = _setup(m, 18, params=params)
    claims = _claims(rng, table, m, 1)
    proof = W.open_claims(state, claims, Transcript(DOMAIN))
    data = proof.to_bytes()
    assert len(data) <= W.max_proof_bytes(params)
    assert len(data) + _bound_slack(params, proof) == W.max_proof_bytes(params)
    assert _verify(com, claims, data, params).ok


def test_claim_values_must_be_canonical():
    """A claim value (or coefficient) given as a Python or NumPy integer outside [0, p) is refused,
    as an array is: v + p and v − p are not v."""
    m = 6
    rng, params, table, com, state = _setup(m, 61)
    b = np.array([1, 0, 1, 1, 0, 0], dtype=np.uint32)
    v = int(table[int("101100", 2)])
    proof = W.open_claims(state, [W.Claim(b, v)], Transcript(DOMAIN))
    data = proof.to_bytes()
    assert _verify(com, [W.Claim(b, v)], data, params).ok
    assert _verify(com, [W.Claim(b, np.uint32(v))], data, params).ok
    for bad in (v + F.P, v - F.P, np.int64(v + F.P), np.int64(v - F.P), -1, F.P, np.array(v + F.P)):
        res = _verify(com, [W.Claim(b, bad)], data, params)
        assert not res.ok and "claim" in res.reason
    with pytest.raises(ValueError):
        W.open_claims(W.commit(table, params, rng=rng)[1], [W.Claim(b, v + F.P)], Transcript(DOMAIN))
    coef_bad = W.LinearClaim(((b, F.P + 1),), v)
    assert not _verify(com, [coef_bad], data, params).ok


def test_degree_8_must_reject():
    m = 9
    params = _params8(m)
    rng, _, table, com, state = _setup(m, 61, params=params)
    claims = _claims(rng, table, m, 3)
    proof = W.open_claims(state, claims, Transcript(DOMAIN))
    assert _verify(com, claims, proof, params).ok
    bad_val = list(claims)
    bad_val[0] = W.Claim(claims[0].point, F.eadd(claims[0].value, F.ext(1)))
    assert not _verify(com, bad_val, proof, params).ok
    for mutate in (lambda p: setattr(p, "final", _bump(p.final, 5)),
                   lambda p: setattr(p.rounds[0], "sumcheck", _bump(p.rounds[0].sumcheck, 7)),
                   lambda p: setattr(p.rounds[0], "ood", _bump(p.rounds[0].ood, 1)),
                   lambda p: setattr(p.rounds[1], "values", _bump(p.rounds[1].values, 3)),
                   lambda p: setattr(p, "final_sumcheck", _bump(p.final_sumcheck, 9))):
        assert not _verify(com, claims, _tampered(proof, mutate), params).ok
    # the same commitment's bytes under degree-4 parameters: other parameters, rejected
    p4 = WhirParams.for_security(100, m, ext_degree=4, ood=1)
    assert not _verify(com, claims, proof.to_bytes(), p4).ok
    data = proof.to_bytes()
    for cut in (10, len(data) // 3, len(data) - 1):
        assert not _verify(com, claims, data[:cut], params).ok


def test_degree_8_kernels():
    rng = np.random.default_rng(88)
    E8, E4 = W._Ext(8), W._Ext(4)
    a, b = F.erandom(rng, 6), F.erandom(rng, 6)
    assert np.array_equal(E8.mul(E8.embed(a), E8.embed(b)), E8.embed(F.emul(a, b)))
    t = F.random(rng, (32, 8))
    w = F.random(rng, (32, 8))
    r = F.random(rng, 8)
    s = WK.round_s02_8(t, w, 32)
    # s(0) and s(2) by the definition, with the generic multiply
    s0 = E8.sum(E8.mul(t[:16], w[:16]))
    two = E8.embed(F.ext(2))
    t2 = F.sub(E8.mul(np.broadcast_to(two, t[16:].shape), t[16:]), t[:16])
    w2 = F.sub(E8.mul(np.broadcast_to(two, w[16:].shape), w[16:]), w[:16])
    assert np.array_equal(s[0], s0) and np.array_equal(s[1], E8.sum(E8.mul(t2, w2)))
    t_f = t.copy()
    WK.fold_table_8(t_f, 32, r)
    assert np.array_equal(t_f[:16], F.add(t[:16], E8.mul(np.broadcast_to(r, (16, 8)), F.sub(t[16:], t[:16]))))
    # embedded degree-4 values fold as in the degree-4 kernels
    v4 = F.erandom(rng, (5, 16))
    ys = F.random(rng, 5)
    ys[ys == 0] = 1
    r4 = F.erandom(rng, 4)
    assert np.array_equal(W._fold_blocks(E8.embed(v4), ys, E8.embed(r4)), E8.embed(W._fold_blocks(v4, ys, r4)))
    assert E4.d == 4
    f2, w2 = t.copy(), w.copy()
    s_next = WK.fold2_s02_8(f2, w2, 32, r)
    f3, w3 = t.copy(), w.copy()
    WK.fold_table_8(f3, 32, r)
    WK.fold_table_8(w3, 32, r)
    assert np.array_equal(f2[:16], f3[:16]) and np.array_equal(w2[:16], w3[:16])
    assert np.array_equal(s_next, WK.round_s02_8(f3, w3, 16))
