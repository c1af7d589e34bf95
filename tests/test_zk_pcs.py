"""Multilinear commitment: completeness, batching, serialization, hiding, and must-reject tests."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from blindproof.zk.field import babybear as F
from blindproof.zk.commit import merkle, pcs
from blindproof.zk.iop import mle
from blindproof.zk.field.encoding import ProofFormatError
from blindproof.zk.iop.sumcheck import EvalClaim
from blindproof.zk.iop.transcript import Transcript

DOMAIN = b"test-pcs"


def _padded(v: np.ndarray) -> np.ndarray:
    n = max(0, (v.size - 1).bit_length())
    out = np.zeros(1 << n, dtype=np.uint32)
    out[: v.size] = v
    return out


def _claim(tensors, name, rng, point=None):
    v = _padded(tensors[name])
    pt = F.erandom(rng, v.size.bit_length() - 1) if point is None else point
    return pcs.Claim(name, pt, mle.evaluate(v, pt))


def _setup(sizes=(4096, 1000, 64, 3, 1), n_claims=None, seed=0):
    rng = np.random.default_rng(seed)
    tensors = {f"t{i}": F.random(rng, s) for i, s in enumerate(sizes)}
    com, st = pcs.commit(tensors, rng=rng)
    claims = [_claim(tensors, name, rng) for name in tensors]
    op = pcs.open_claims(st, claims, Transcript(DOMAIN))
    return tensors, com, st, claims, op


def _verify(com, claims, op):
    return pcs.verify(com, claims, op, Transcript(DOMAIN))


@pytest.fixture(scope="module")
def small():
    return _setup()


# --- completeness -----------------------------------------------------------------------------------

def test_accepts_batch_of_mixed_sizes(small):
    tensors, com, st, claims, op = small
    res = _verify(com, claims, op)
    assert res.ok, res.reason
    assert _verify(com, claims, op.to_bytes()).ok


@pytest.mark.parametrize("sizes", [(1,), (2,), (1 << 14,), (1 << 12, 1 << 12, 1 << 11), (5, 6, 7, 8, 9)])
def test_accepts_layouts(sizes):
    _, com, _, claims, op = _setup(sizes, seed=len(sizes))
    assert _verify(com, claims, op.to_bytes()).ok


def test_many_claims_same_and_different_points():
    rng = np.random.default_rng(5)
    tensors = {"a": F.random(rng, 1 << 13), "b": F.random(rng, 1 << 9)}
    com, st = pcs.commit(tensors, rng=rng)
    p = F.erandom(rng, 13)
    claims = [_claim(tensors, "a", rng, p), _claim(tensors, "a", rng, p), _claim(tensors, "a", rng),
              _claim(tensors, "b", rng), _claim(tensors, "b", rng)]
    op = pcs.open_claims(st, claims, Transcript(DOMAIN))
    assert _verify(com, claims, op.to_bytes()).ok
    # one evaluation row whatever the number of claims (sizes differ only by Merkle-path overlap)
    single = pcs.open_claims(st, claims[:1], Transcript(DOMAIN))
    assert op.u_eval.shape == single.u_eval.shape
    assert abs(len(op.to_bytes()) - len(single.to_bytes())) < 0.05 * len(single.to_bytes())


def _textbook_rounds(st, claims):
    """The column sumcheck's rounds computed the plain way: one table pair per claim (α_j·cw_j and
    rw_jᵀM) plus the two masks, folded with numpy-level helpers."""
    lay, M = st.commitment.layout, st.messages
    tr = Transcript(DOMAIN)
    parts = [pcs._claim_parts(c) for c in claims]
    geo = pcs._geometry(lay, parts)
    pcs._absorb_claims(tr, st.commitment, parts)
    pcs._gammas(tr, lay)
    alpha = tr.challenge_exts("pcs/alpha", len(parts))
    tau1, tau2 = pcs._tau(tr, lay)
    g1, g2 = lay.g_rows
    tr.absorb_ext("pcs/mask_sum", F.eadd(mle.evaluate(M[g1], tau1), mle.evaluate(M[g2], tau2)))
    rho = tr.challenge_ext("pcs/rho")
    A, B = [], []
    for j, (_, pt, _) in enumerate(parts):
        rv, cv, c0 = int(geo.row_vars[j]), int(geo.col_vars[j]), int(geo.col_start[j])
        cw = F.ezero(lay.n_cols)
        cw[c0:c0 + (1 << cv)] = mle.eq_table(pt[rv:])
        A.append(F.emul(alpha[j][None, :], cw))
        r0 = int(geo.row0[j])
        B.append(F.edot(mle.eq_table(pt[:rv]), M[r0:r0 + (1 << rv)]))
    for tau, g in ((tau1, g1), (tau2, g2)):
        A.append(F.emul(rho[None, :], mle.eq_table(tau)))
        B.append(F.embed(M[g]))
    rounds = []
    for _ in range(lay.log_cols):
        h = A[0].shape[0] // 2
        s0 = s2 = F.ezero()
        for a, b in zip(A, B):
            s0 = F.eadd(s0, F.edot_ext(a[:h], b[:h]))
            a2 = F.esub(F.eadd(a[h:], a[h:]), a[:h])
            b2 = F.esub(F.eadd(b[h:], b[h:]), b[:h])
            s2 = F.eadd(s2, F.edot_ext(a2, b2))
        rounds.append(np.stack([s0, s2]))
        tr.absorb_ext("pcs/round", rounds[-1])
        r = tr.challenge_ext("pcs/r")
        A = [mle.fold(a, r) for a in A]
        B = [mle.fold(b, r) for b in B]
    return np.stack(rounds)


def test_column_sumcheck_matches_textbook_rounds():
    """Row terms (small tensors sharing a row; a two-row tensor with more claims than rows) and claim
    terms (a many-row tensor with one claim) give the rounds of the plain one-term-per-claim sumcheck."""
    rng = np.random.default_rng(11)
    tensors = {"big": F.random(rng, 1 << 12), "two": F.random(rng, 1024), "s1": F.random(rng, 64),
               "s2": F.random(rng, 60), "s3": F.random(rng, 1)}
    com, st = pcs.commit(tensors, rng=rng)
    lay = com.layout
    assert lay.n_cols == 512 and lay.n_data_rows == 11  # "big" fills eight rows, "two" two, the rest one
    claims = [_claim(tensors, "big", rng), _claim(tensors, "s1", rng), _claim(tensors, "s1", rng)]
    claims += [_claim(tensors, "two", rng) for _ in range(3)]
    claims += [_claim(tensors, "s2", rng), _claim(tensors, "s3", rng)]
    op = pcs.open_claims(st, claims, Transcript(DOMAIN))
    assert np.array_equal(op.rounds, _textbook_rounds(st, claims))
    assert _verify(com, claims, op.to_bytes()).ok


def test_opening_without_kept_codewords_is_the_same():
    rng = np.random.default_rng(12)
    tensors = {"a": F.random(rng, 5000), "b": F.random(rng, 70)}
    claims = [_claim(tensors, "a", rng), _claim(tensors, "b", rng)]
    ops = []
    for keep in (True, False):
        com, st = pcs.commit(tensors, rng=np.random.default_rng(1), keep_codewords=keep)
        assert (st.codewords is None) == (not keep)
        ops.append(pcs.open_claims(st, claims, Transcript(DOMAIN)).to_bytes())
    assert ops[0] == ops[1]
    assert _verify(com, claims, ops[1]).ok


def test_accepts_sumcheck_eval_claims_and_base_points():
    rng = np.random.default_rng(6)
    tensors = {"w": F.random(rng, 256)}
    com, st = pcs.commit(tensors, rng=rng)
    base_pt = F.random(rng, 8)
    claims = [EvalClaim("w", F.embed(base_pt), mle.evaluate(tensors["w"], F.embed(base_pt))),
              pcs.Claim("w", base_pt, F.embed(mle.evaluate(tensors["w"], base_pt)))]
    op = pcs.open_claims(st, claims, Transcript(DOMAIN))
    assert _verify(com, claims, op).ok


def test_commitment_roundtrip_and_soundness_inside(small):
    _, com, _, claims, op = small
    again = pcs.Commitment.from_bytes(com.to_bytes())
    assert again == com and again.digest() == com.digest()
    rep = com.layout.soundness(len(claims))
    assert rep.provable_bits >= 100
    assert op.provable_tenths == int(rep.provable_bits * 10)
    assert op.conjectured_tenths == int(rep.conjectured_bits * 10)


def test_default_2_20_layout_and_size_budget():
    lay = pcs.make_layout(["x"], [20], pcs.PcsParams())
    assert (lay.n_cols, lay.n_data_rows) == (4096, 256)
    assert lay.soundness().provable_bits >= 100
    assert lay.estimated_proof_bytes() <= 350_000


# --- hiding -----------------------------------------------------------------------------------------

def test_hiding_randomness_changes_everything_revealed():
    rng = np.random.default_rng(7)
    tensors = {"x": F.random(rng, 1 << 12)}
    claim = _claim(tensors, "x", rng)
    ops, coms = [], []
    for _ in range(2):  # same data, same claim, fresh OS randomness
        com, st = pcs.commit(tensors)
        ops.append(pcs.open_claims(st, [claim], Transcript(DOMAIN)))
        coms.append(com)
        assert _verify(com, [claim], ops[-1]).ok
    assert coms[0].root != coms[1].root
    assert not np.array_equal(ops[0].u_eval, ops[1].u_eval)
    assert not np.array_equal(ops[0].rounds, ops[1].rounds)
    # the evaluation row is not the plain row combination of the data
    lay = coms[0].layout
    assert lay.n_rows > lay.n_data_rows


def test_opened_entries_look_uniform():
    # a constant tensor: without hiding every opened data entry would be a function of the constant
    tensors = {"z": np.full(1 << 10, 7, dtype=np.uint32)}
    rng = np.random.default_rng(8)
    com, st = pcs.commit(tensors, rng=rng)
    op = pcs.open_claims(st, [_claim(tensors, "z", rng)], Transcript(DOMAIN))
    vals = op.columns[:, : com.layout.n_data_rows].astype(np.float64).ravel() / F.P
    assert abs(vals.mean() - 0.5) < 0.05 and abs(vals.var() - 1 / 12) < 0.02


# --- must reject ------------------------------------------------------------------------------------

def test_rejects_wrong_value(small):
    _, com, _, claims, op = small
    for j in range(len(claims)):
        bad = list(claims)
        bad[j] = pcs.Claim(bad[j].tensor, bad[j].point, F.eadd(bad[j].value, F.ext(0, 1)))
        res = _verify(com, bad, op)
        assert not res.ok and res.reason


def test_rejects_other_point_and_other_tensor(small):
    tensors, com, _, claims, op = small
    bad = [dataclasses.replace(claims[0], point=F.eadd(claims[0].point, F.eone(claims[0].point.shape[0])))] + claims[1:]
    assert not _verify(com, bad, op).ok
    assert not _verify(com, [pcs.Claim("nope", claims[0].point, claims[0].value)] + claims[1:], op).ok
    assert not _verify(com, claims[:-1], op).ok


def _tampered(op, field, fn):
    arr = getattr(op, field).copy()
    fn(arr)
    return dataclasses.replace(op, **{field: arr})


def _bump(a):
    a.reshape(-1)[a.size // 2] = (a.reshape(-1)[a.size // 2] + 1) % F.P


@pytest.mark.parametrize("field", ["mask_sum", "rounds", "mask_value", "u_eval", "s_eval", "u_prox",
                                   "s_prox", "columns"])
def test_rejects_tampered_parts(small, field):
    _, com, _, claims, op = small
    res = _verify(com, claims, _tampered(op, field, _bump))
    assert not res.ok, field


def test_rejects_tampered_merkle_path(small):
    _, com, _, claims, op = small
    sib = op.siblings[0]
    for i in range(0, sib.shape[0], max(1, sib.shape[0] // 10)):
        bad = dataclasses.replace(op, siblings=[sib.copy()])
        bad.siblings[0][i, 0] ^= 1
        assert not _verify(com, claims, bad).ok


def test_rejects_combined_row_consistent_with_claim_but_not_columns(small):
    # shift u_eval along a direction orthogonal to eq(ζ): the evaluation check still passes,
    # only the column consistency check can catch it
    _, com, _, claims, op = small
    tr = Transcript(DOMAIN)
    zeta = _replay_zeta(com, claims, op, tr)
    eqz = mle.eq_table(zeta)
    delta = F.ezero(op.u_eval.shape[0])
    delta[0] = eqz[1]
    delta[1] = F.eneg(eqz[0])
    bad = dataclasses.replace(op, u_eval=F.eadd(op.u_eval, delta))
    assert np.array_equal(F.edot_ext(eqz, bad.u_eval), F.edot_ext(eqz, op.u_eval))
    res = _verify(com, claims, bad)
    assert not res.ok
    assert "column" in res.reason or "positions" in res.reason


def _replay_zeta(com, claims, op, tr):
    parts = [pcs._claim_parts(c) for c in claims]
    pcs._absorb_claims(tr, com, parts)
    pcs._gammas(tr, com.layout)
    tr.challenge_exts("pcs/alpha", len(parts))
    pcs._tau(tr, com.layout)
    tr.absorb_ext("pcs/mask_sum", op.mask_sum)
    tr.challenge_ext("pcs/rho")
    zeta = []
    for i in range(com.layout.log_cols):
        tr.absorb_ext("pcs/round", op.rounds[i])
        zeta.append(tr.challenge_ext("pcs/r"))
    return np.stack(zeta)


def test_rejects_other_commitment(small):
    tensors, com, _, claims, op = small
    other = {k: F.add(v, np.ones_like(v)) for k, v in tensors.items()}
    com2, _ = pcs.commit(other, rng=np.random.default_rng(1))
    assert not _verify(com2, claims, op).ok
    assert not _verify(dataclasses.replace(com, root=bytes(32)), claims, op).ok


def test_rejects_other_transcript(small):
    _, com, _, claims, op = small
    assert not pcs.verify(com, claims, op, Transcript(b"other")).ok


def test_byte_flips_never_accepted_never_raise(small):
    _, com, _, claims, op = small
    data = op.to_bytes()
    rng = np.random.default_rng(9)
    positions = np.unique(np.concatenate([np.arange(64), rng.choice(len(data), 400, replace=False)]))
    assert positions.size >= 300
    for pos in positions:
        bad = bytearray(data)
        bad[pos] ^= 1 << int(rng.integers(8))
        res = _verify(com, claims, bytes(bad))
        assert not res.ok, f"flip at byte {pos} accepted"
    for cut in (0, 1, len(data) // 2, len(data) - 1):
        assert not _verify(com, claims, data[:cut]).ok
    assert not _verify(com, claims, data + b"\0").ok


def test_malformed_commitment_bytes_raise_format_error(small):
    _, com, _, _, _ = small
    data = com.to_bytes()
    with pytest.raises(ProofFormatError):
        pcs.Commitment.from_bytes(data[:-1])
    with pytest.raises(ProofFormatError):
        pcs.Commitment.from_bytes(b"XXXX" + data[4:])


def test_transcript_without_commitment_admits_a_forgery(small, monkeypatch):
    """A verifier whose transcript skips the commitment accepts a proof of a false claim made by
    choosing the Merkle tree after seeing the challenges; the real verifier rejects it."""
    tensors, com, _, claims, _ = small
    lay = com.layout
    claim = claims[0]
    false = [pcs.Claim(claim.tensor, claim.point, F.eadd(claim.value, F.ext(1)))]
    real_absorb = pcs._absorb_claims

    def broken_absorb(tr, com_, parts):  # the bug: no commitment digest
        real_absorb(tr, [], parts)

    monkeypatch.setattr(pcs, "_absorb_claims", broken_absorb)
    forged_com, forged = _forge(lay, false)
    assert pcs.verify(forged_com, false, forged, Transcript(DOMAIN)).ok  # the broken verifier
    monkeypatch.setattr(pcs, "_absorb_claims", real_absorb)
    assert not pcs.verify(forged_com, false, forged, Transcript(DOMAIN)).ok


def _solve_mod_p(A: list[list[int]], b: list[int], n: int) -> list[int]:
    """One solution of A x = b over F_p (Gaussian elimination; free variables set to zero)."""
    P = F.P
    rows = [list(r) + [v] for r, v in zip(A, b)]
    pivots, r = [], 0
    for c in range(n):
        piv = next((i for i in range(r, len(rows)) if rows[i][c] % P), None)
        if piv is None:
            continue
        rows[r], rows[piv] = rows[piv], rows[r]
        inv = pow(rows[r][c], P - 2, P)
        rows[r] = [x * inv % P for x in rows[r]]
        for i in range(len(rows)):
            if i != r and rows[i][c]:
                f = rows[i][c]
                rows[i] = [(x - f * y) % P for x, y in zip(rows[i], rows[r])]
        pivots.append(c)
        r += 1
    x = [0] * n
    for i, c in enumerate(pivots):
        x[c] = rows[i][n]
    return x


def _forge(lay: pcs.Layout, claims):
    """Build an opening of false claims, then a Merkle tree that agrees with it where it is queried."""
    tr = Transcript(DOMAIN)
    parts = [pcs._claim_parts(c) for c in claims]
    geo = pcs._geometry(lay, parts)
    pcs._absorb_claims(tr, None, parts)
    gam = pcs._gammas(tr, lay)
    alpha = tr.challenge_exts("pcs/alpha", len(parts))
    tau1, tau2 = pcs._tau(tr, lay)
    mask_sum = F.ezero()
    tr.absorb_ext("pcs/mask_sum", mask_sum)
    rho = tr.challenge_ext("pcs/rho")
    claim = F.emul(alpha[0], parts[0][2])
    rounds, zeta = [], []
    for _ in range(lay.log_cols):  # any round polynomials will do: the claim just moves along
        s02 = np.stack([F.ezero(), F.ezero()])
        rounds.append(s02)
        tr.absorb_ext("pcs/round", s02)
        r = tr.challenge_ext("pcs/r")
        zeta.append(r)
        claim = pcs._quadratic_at(s02[0], F.esub(claim, s02[0]), s02[1], r)
    zeta = np.stack(zeta)
    mask_value = F.ezero()
    tr.absorb_ext("pcs/mask_value", mask_value)
    kappa = tr.challenge_ext("pcs/kappa")
    eqz = mle.eq_table(zeta)
    u_eval = F.ezero(lay.n_cols)
    u_eval[0] = F.emul(claim, F.einv(eqz[0]))  # u·eq(ζ) = final claim
    s_eval = F.ezero(lay.n_queries)
    u_prox = F.ezero((lay.proximity_tests, lay.n_cols))
    s_prox = F.ezero((lay.proximity_tests, lay.n_queries))
    pcs._absorb_rows(tr, u_eval, s_eval, u_prox, s_prox)
    positions = np.unique(tr.challenge_indices("pcs/queries", lay.n_queries, lay.codeword_len))
    w = pcs._eval_row_weights(lay, geo, alpha, rho, tau1, tau2, kappa, zeta)
    code = pcs._encode_ext_rows(np.concatenate([u_eval[None], u_prox]),
                                np.concatenate([s_eval[None], s_prox]), lay.codeword_len)
    weights = [w] + [gam[p] for p in range(lay.proximity_tests)]
    A = [[int(wt[i, k]) for i in range(lay.n_rows)] for wt in weights for k in range(4)]
    matrix = np.zeros((lay.n_rows, lay.codeword_len), dtype=np.uint32)
    for q in positions:
        b = [int(code[j, q, k]) for j in range(len(weights)) for k in range(4)]
        matrix[:, q] = _solve_mod_p(A, b, lay.n_rows)
    tree = merkle.MerkleTree(matrix)
    forged_com = pcs.Commitment(tree.root, lay)
    op = pcs.Opening(mask_sum, np.stack(rounds), mask_value, u_eval, s_eval, u_prox, s_prox, positions,
                     np.ascontiguousarray(matrix[:, positions].T), [tree.open(positions)],
                     *pcs._soundness_tenths(lay, len(parts)))
    return forged_com, op


# --- bad input --------------------------------------------------------------------------------------

def test_bad_input_raises():
    rng = np.random.default_rng(10)
    with pytest.raises(TypeError):
        pcs.commit({"x": np.arange(8)})  # int64, not field elements
    with pytest.raises(TypeError):
        pcs.commit({})
    with pytest.raises(TypeError):
        pcs.commit({3: F.random(rng, 4)})
    with pytest.raises(ValueError):
        pcs.commit({"x": np.array([], dtype=np.uint32)})
    with pytest.raises(ValueError, match="'bad'"):  # not a canonical residue: the tensor is named
        pcs.commit({"ok": F.random(rng, 8), "bad": np.array([1, F.P], dtype=np.uint32)})
    tensors = {"x": F.random(rng, 64)}
    com, st = pcs.commit(tensors, rng=rng)
    with pytest.raises(ValueError):
        pcs.open_claims(st, [pcs.Claim("x", F.erandom(rng, 5), F.ezero())], Transcript(DOMAIN))
    with pytest.raises(ValueError):
        pcs.open_claims(st, [pcs.Claim("y", F.erandom(rng, 6), F.ezero())], Transcript(DOMAIN))
    with pytest.raises(ValueError):
        pcs.open_claims(st, [], Transcript(DOMAIN))


def test_security_128_profile_end_to_end():
    rng = np.random.default_rng(11)
    tensors = {"x": F.random(rng, 1 << 12)}
    com, st = pcs.commit(tensors, pcs.PcsParams.for_security(128), rng=rng)
    assert com.layout.proximity_tests == 2
    claims = [_claim(tensors, "x", rng)]
    op = pcs.open_claims(st, claims, Transcript(DOMAIN))
    assert _verify(com, claims, op.to_bytes()).ok
    assert not _verify(com, claims, _tampered(op, "u_prox", lambda a: _bump(a[1]))).ok


@pytest.mark.parametrize("log_n", [0, 1, 3, 6, 11])
def test_encoding_matches_reference_ntt_in_bit_reversed_order(log_n):
    from blindproof.zk.commit import reed_solomon as _rs
    from blindproof.zk.field import ntt

    rng = np.random.default_rng(log_n)
    n = 1 << log_n
    coeffs = F.random(rng, (3, max(1, n // 2 + 1) if n > 1 else 1))
    padded = np.zeros((3, n), dtype=np.uint32)
    padded[:, : coeffs.shape[1]] = coeffs
    want = ntt.ntt(padded)
    got = _rs.encode_rows(coeffs, n)
    np.testing.assert_array_equal(got, want[:, _rs.bit_reverse_permutation(n)])
    with pytest.raises(ValueError):
        _rs.encode_rows(coeffs, 3)


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=12, deadline=None)
@given(sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=5), seed=st.integers(0, 2**31))
def test_property_random_layouts_complete_and_sound(sizes, seed):
    rng = np.random.default_rng(seed)
    tensors = {f"t{i}": F.random(rng, s) for i, s in enumerate(sizes)}
    com, state = pcs.commit(tensors, rng=rng)
    claims = [_claim(tensors, name, rng) for name in tensors]
    op = pcs.open_claims(state, claims, Transcript(DOMAIN)).to_bytes()
    assert _verify(com, claims, op).ok
    j = int(rng.integers(len(claims)))
    bad = list(claims)
    bad[j] = pcs.Claim(bad[j].tensor, bad[j].point, F.eadd(bad[j].value, F.ext(1)))
    assert not _verify(com, bad, op).ok
    if len(claims) > 1:
        assert not _verify(com, claims[::-1], op).ok  # the claims' order is part of the transcript
