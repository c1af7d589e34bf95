"""logUp-GKR lookups: completeness, claims against direct MLE evaluation, and must-reject cases."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from blindproof.zk.field import babybear as F
from blindproof.zk.iop import lookup as L
from blindproof.zk.iop import mle
from blindproof.zk.iop.transcript import Transcript


def committed(groups, mult, skip_mult: bool = False, cls=Transcript) -> Transcript:
    """A transcript that has absorbed the witness columns and multiplicities (stand-in commitment)."""
    t = cls(b"test-lookup", b"statement")
    for g, group in enumerate(groups):
        for c, col in enumerate(group):
            t.absorb_field(f"commit/g{g}c{c}", col)
    if not skip_mult:
        t.absorb_field("commit/mult", mult)
    return t


def settle(st, groups, mult, res):
    """Check every evaluation claim against the actual columns (what the PCS opening will do)."""
    names = {}
    for g in range(len(groups)):
        for c, name in enumerate(st.column_names(g)):
            names[name] = groups[g][c]
    names[L.MULTIPLICITY_COLUMN] = mult
    assert len(res.claims) == len(names)
    for cl in res.claims:
        v = mle.evaluate(names[cl.column], cl.point)
        v = v if np.asarray(v).shape == (4,) else F.embed(v)
        np.testing.assert_array_equal(v, cl.value, err_msg=cl.column)


def run(st, groups, mult=None):
    mult = st.table.multiplicities(groups) if mult is None else mult
    proof = L.prove(st, groups, mult, committed(groups, mult))
    return proof, mult, L.verify(st, proof, committed(groups, mult))


@pytest.mark.parametrize("logs", [(0,), (1,), (4, 7), (9, 0, 3)])
def test_range_completeness_and_claims(logs):
    rng = np.random.default_rng(sum(logs))
    table = L.LookupTable.range(8)
    groups = [[rng.integers(0, 256, 1 << n).astype(np.uint32)] for n in logs]
    st = L.LookupStatement(table, tuple(f"w{i}" for i in range(len(logs))), logs)
    proof, mult, res = run(st, groups)
    assert res.ok, res.reason
    settle(st, groups, mult, res)
    data = proof.to_bytes(st)
    assert L.verify_bytes(st, data, committed(groups, mult)).ok


def test_table_deeper_and_shallower_than_witness():
    rng = np.random.default_rng(1)
    for bits, n in [(10, 3), (3, 10)]:
        table = L.LookupTable.range(bits)
        groups = [[rng.integers(0, 1 << bits, 1 << n).astype(np.uint32)]]
        st = L.LookupStatement(table, ("w",), (n,))
        _, mult, res = run(st, groups)
        assert res.ok, res.reason
        settle(st, groups, mult, res)


def test_function_table_with_signed_inputs():
    xs = np.arange(-32, 32)
    table = L.LookupTable.function("gelu-ish", F.from_signed(xs), F.from_signed(np.maximum(xs, 0) * 3 - 1))
    rng = np.random.default_rng(2)
    x = rng.integers(-32, 32, 128)
    groups = [[F.from_signed(x), F.from_signed(np.maximum(x, 0) * 3 - 1)]]
    st = L.LookupStatement(table, ("act",), (7,))
    wrong = [[groups[0][0], groups[0][1].copy()]]
    wrong[0][1][5] = (int(wrong[0][1][5]) + 1) % F.P  # right input, wrong output
    with pytest.raises(ValueError, match="row 5"):
        table.multiplicities(wrong)
    _, mult, res = run(st, groups)
    assert res.ok, res.reason
    assert [c.column for c in res.claims] == ["act[0]", "act[1]", "multiplicities"]
    settle(st, groups, mult, res)


def test_range_check_by_16_bit_limbs():
    rng = np.random.default_rng(3)
    values = rng.integers(0, 1 << 32, 256, dtype=np.int64)
    lo, hi = L.split_limbs(values, 16, 2)
    np.testing.assert_array_equal(lo.astype(np.int64) + (hi.astype(np.int64) << 16), values)
    st = L.LookupStatement(L.LookupTable.range(16), ("lo", "hi"), (8, 8))
    _, mult, res = run(st, [[lo], [hi]])
    assert res.ok, res.reason
    settle(st, [[lo], [hi]], mult, res)
    with pytest.raises(ValueError, match="split_limbs"):
        L.split_limbs(np.array([1 << 32]), 16, 2)


def test_non_arange_table_column_is_evaluated_by_the_verifier():
    rng = np.random.default_rng(4)
    vals = rng.permutation(1 << 6).astype(np.uint32) * 7
    table = L.LookupTable("perm", (vals,))
    groups = [[vals[rng.integers(0, 64, 32)]]]
    st = L.LookupStatement(table, ("w",), (5,))
    _, mult, res = run(st, groups)
    assert res.ok, res.reason
    settle(st, groups, mult, res)


# --- soundness ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def honest():
    rng = np.random.default_rng(5)
    table = L.LookupTable.range(8)
    groups = [[rng.integers(0, 256, 64).astype(np.uint32)], [rng.integers(0, 256, 16).astype(np.uint32)]]
    st = L.LookupStatement(table, ("a", "b"), (6, 4))
    proof, mult, res = run(st, groups)
    assert res.ok
    return st, groups, mult, proof


def test_value_outside_table_rejected(honest):
    st, groups, mult, _ = honest
    bad = [[groups[0][0].copy()], groups[1]]
    bad[0][0][17] = 256  # one row outside [0, 256)
    with pytest.raises(ValueError, match="not in table"):
        st.table.multiplicities(bad)
    # the cheating prover keeps the honest multiplicities, or moves the count to the nearest row
    near = mult.copy()
    near[int(groups[0][0][17])] -= 1
    near[255] += 1
    for m in (mult, near):
        proof = L.prove(st, bad, m, committed(bad, m))
        res = L.verify(st, proof, committed(bad, m))
        assert not res.ok and "differ" in res.reason


def test_wrong_multiplicities_rejected(honest):
    st, groups, mult, _ = honest
    m = mult.copy()
    i = int(np.nonzero(mult)[0][0])
    m[i] -= 1
    m[(i + 1) % 256] += 1  # same total count, wrong rows
    proof = L.prove(st, groups, m, committed(groups, m))
    assert not L.verify(st, proof, committed(groups, m)).ok


def test_tampered_proof_parts_rejected(honest):
    st, groups, mult, proof = honest
    def fresh():
        return L.LookupProof(proof.root_q.copy(), [L.S.SumcheckProof(l.round_evals.copy(), l.final_evals.copy())
                                                   for l in proof.layers], [e.copy() for e in proof.column_evals],
                             proof.mult_evals.copy())
    p = fresh()
    p.root_q[0, 1] ^= 1
    assert not L.verify(st, p, committed(groups, mult)).ok
    p = fresh()
    p.mult_evals[0, 0] = (int(p.mult_evals[0, 0]) + 1) % F.P
    res = L.verify(st, p, committed(groups, mult))
    assert not res.ok and "numerators" in res.reason
    for k in (0, 3, 5):
        p = fresh()
        if p.layers[k].round_evals.size:
            p.layers[k].round_evals[0, 0, 0] = (int(p.layers[k].round_evals[0, 0, 0]) + 1) % F.P
        else:
            p.layers[k].final_evals[1, 0] = (int(p.layers[k].final_evals[1, 0]) + 1) % F.P
        assert not L.verify(st, p, committed(groups, mult)).ok
    p = fresh()
    p.column_evals[1][0, 2] = (int(p.column_evals[1][0, 2]) + 1) % F.P
    assert not L.verify(st, p, committed(groups, mult)).ok
    # a claimed root with a nonzero numerator is not even expressible: the verifier puts p = 0
    # itself, so a prover whose true root numerator is nonzero fails layer 0 (test above)
    # different table, different statement
    other = L.LookupStatement(L.LookupTable.range(8), ("a", "c"), (6, 4))
    assert not L.verify(other, proof, committed(groups, mult)).ok


def test_byte_flips_never_accepted(honest):
    st, groups, mult, proof = honest
    data = proof.to_bytes(st)
    rng = np.random.default_rng(6)
    positions = rng.choice(len(data), size=min(len(data), 400), replace=False)
    for pos in positions:
        flipped = bytearray(data)
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        res = L.verify_bytes(st, bytes(flipped), committed(groups, mult))
        assert not res.ok, f"flip at byte {pos} accepted"
    for bad in (data[:-1], data + b"\0", b"", data[:6]):
        assert not L.verify_bytes(st, bad, committed(groups, mult)).ok


def _solve_mod_p(matrix: list[list[int]], rhs: list[int]) -> list[int]:
    """Gaussian elimination over F_p (small dense system)."""
    p = F.P
    n = len(rhs)
    a = [row[:] + [r] for row, r in zip(matrix, rhs)]
    for col in range(n):
        piv = next(r for r in range(col, n) if a[r][col] % p)
        a[col], a[piv] = a[piv], a[col]
        inv = pow(a[col][col], p - 2, p)
        a[col] = [v * inv % p for v in a[col]]
        for r in range(n):
            if r != col and a[r][col]:
                f = a[r][col]
                a[r] = [(v - f * w) % p for v, w in zip(a[r], a[col])]
    return [a[r][n] for r in range(n)]


def test_uncommitted_multiplicities_admit_a_forgery_the_real_transcript_rejects():
    """If the multiplicities are not absorbed before α, the prover picks them after seeing α and
    'proves' a row outside the table; binding them first defeats the same forgery."""
    rng = np.random.default_rng(7)
    table = L.LookupTable.range(8)
    w = rng.integers(0, 256, 16).astype(np.uint32)
    w[3] = 1000  # outside [0, 256)
    groups = [[w]]
    st = L.LookupStatement(table, ("w",), (4,))
    # learn α from the transcript that forgot the multiplicities
    probe = committed(groups, None, skip_mult=True)
    st.absorb(probe)
    alpha = probe.challenge_ext("lookup/alpha")
    # target = sum_i 1/(α - w_i); choose base-field m_0..m_3 with sum_j m_j/(α - j) = target
    target = F.edot_ext(F.einv(F.esub(alpha[None, :], F.embed(w))), F.eone(16))
    coeffs = F.einv(F.esub(alpha[None, :], F.embed(np.arange(4, dtype=np.uint32))))
    m_small = _solve_mod_p([[int(coeffs[j, k]) for j in range(4)] for k in range(4)], [int(v) for v in target])
    mult = np.zeros(256, dtype=np.uint32)
    mult[:4] = m_small
    forged = L.prove(st, groups, mult, committed(groups, mult, skip_mult=True))
    broken = L.verify(st, forged, committed(groups, mult, skip_mult=True))
    assert broken.ok  # the broken verifier accepts a lookup of 1000 into [0, 256)
    settle(st, groups, mult, broken)  # and the claims even open correctly
    assert not L.verify(st, forged, committed(groups, mult)).ok  # the real one rejects


def test_prover_and_statement_reject_bad_inputs():
    table = L.LookupTable.range(4)
    st = L.LookupStatement(table, ("w",), (3,))
    with pytest.raises(ValueError, match="columns of length"):
        L.prove(st, [[np.zeros(4, dtype=np.uint32)]], np.zeros(16, dtype=np.uint32), committed([], None, skip_mult=True))
    with pytest.raises(ValueError, match="mult"):
        L.prove(st, [[np.zeros(8, dtype=np.uint32)]], np.zeros(8, dtype=np.uint32), committed([], None, skip_mult=True))
    with pytest.raises(ValueError, match="distinct"):
        L.LookupStatement(table, ("w", "w"), (3, 3))
    with pytest.raises(ValueError, match="distinct"):
        L.LookupTable.function("f", np.zeros(4, dtype=np.uint32), np.zeros(4, dtype=np.uint32))
    with pytest.raises(ValueError, match="width"):
        L.LookupTable("t", ())


def _layer_terms(trees, lam):
    """The layer polynomial eq · sum_t λ^{2t} (p0 q1 + p1 q0 + λ q0 q1) as generic sumcheck terms."""
    terms, c = [], F.eone()
    for t in range(trees):
        b = 1 + 4 * t
        terms += [(c, (0, b, b + 3)), (c, (0, b + 1, b + 2))]
        c = F.emul(c, lam)
        terms.append((c, (0, b + 2, b + 3)))
        c = F.emul(c, lam)
    return terms


@pytest.mark.parametrize("k, trees", [(1, 1), (5, 2), (6, 3)])
def test_fast_layer_prover_sends_the_true_round_polynomials(k, trees):
    """Each round message is the layer polynomial's partial sum at X = 0, 2, 3 (computed here by brute
    force over the tables bound to the earlier challenges), and the finals are the bound tables."""
    rng = np.random.default_rng(k)
    point, lam = F.erandom(rng, k), F.erandom(rng)
    children = [F.erandom(rng, 1 << k) for _ in range(4 * trees)]
    tables = [mle.eq_table(point)] + children
    spec = L.S.SumcheckSpec.make(k, len(tables), _layer_terms(trees, lam))
    claim = L.S.hypercube_sum(spec, tables)
    fast, s_point = L._prove_layer([tuple(r) for r in point.tolist()], children, tuple(lam.tolist()),
                                   tuple(claim.tolist()), Transcript(b"x", b"y"))
    cur = tables
    for j in range(k):  # round j binds the last variable left (even and odd entries)
        sub = L.S.SumcheckSpec.make(k - j - 1, len(tables), spec.terms)
        for x, want in zip((0, 2, 3), fast.round_evals[j]):
            at_x = [F.eadd(t[0::2], F.emul(F.ext(x), F.esub(t[1::2], t[0::2]))) for t in cur]
            np.testing.assert_array_equal(L.S.hypercube_sum(sub, at_x), want)
        s = np.array(s_point[j], dtype=np.uint32)
        cur = [F.eadd(t[0::2], F.emul(s, F.esub(t[1::2], t[0::2]))) for t in cur]
    np.testing.assert_array_equal(fast.final_evals, np.stack([t[0] for t in cur]))


@pytest.mark.parametrize("live", [(1, 5), (32, 17), (3, 64)])
def test_layer_prover_with_padding_suffixes_matches_the_dense_one(live):
    """Tables whose entries from ``live[t]`` on are padding (0, 0, 1, 1): the closed-form sum and the
    partial folds give the same messages and finals as the dense prover."""
    rng = np.random.default_rng(sum(live))
    k = 6
    point, lam = F.erandom(rng, k), F.erandom(rng)
    children = []
    for u in live:
        tabs = [F.erandom(rng, 1 << k) for _ in range(4)]
        for f, t in enumerate(tabs):
            t[u:] = 0
            t[u:, 0] = 1 if f >= 2 else 0
        children += tabs
    tables = [mle.eq_table(point)] + children
    claim = L.S.hypercube_sum(L.S.SumcheckSpec.make(k, len(tables), _layer_terms(len(live), lam)), tables)
    pt = [tuple(r) for r in point.tolist()]
    args = (tuple(lam.tolist()), tuple(claim.tolist()))
    dense, s1 = L._prove_layer(pt, [c.copy() for c in children], *args, Transcript(b"x", b"y"))
    sparse, s2 = L._prove_layer(pt, children, *args, Transcript(b"x", b"y"), np.array(live))
    assert s1 == s2
    np.testing.assert_array_equal(dense.round_evals, sparse.round_evals)
    np.testing.assert_array_equal(dense.final_evals, sparse.final_evals)


def test_mask_fields_in_a_gkr_layer_are_rejected(honest):
    st, groups, mult, proof = honest
    layers = [L.S.SumcheckProof(l.round_evals.copy(), l.final_evals.copy()) for l in proof.layers]
    layers[2].mask_sum, layers[2].mask_eval = F.ezero(), F.ezero()
    p = L.LookupProof(proof.root_q.copy(), layers, [e.copy() for e in proof.column_evals],
                      proof.mult_evals.copy())
    res = L.verify(st, p, committed(groups, mult))
    assert not res.ok and "mask" in res.reason


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=3000))
def test_random_bytes_never_accepted_never_raise(data):
    stmt = L.LookupStatement(L.LookupTable.range(4), ("w",), (3,))
    res = L.verify_bytes(stmt, data, Transcript(b"x", b"y"))
    assert not res.ok and res.reason


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(1, 255)), min_size=1, max_size=8))
def test_multi_byte_corruptions_never_accepted(honest, edits):
    stmt, groups, mult, proof = honest
    data = bytearray(proof.to_bytes(stmt))
    for pos, xor in edits:
        data[pos % len(data)] ^= xor
    assume(bytes(data) != proof.to_bytes(stmt))  # edits may cancel out
    res = L.verify_bytes(stmt, bytes(data), committed(groups, mult))
    assert not res.ok and res.reason


# --- repetitions (two independent logUp challenge sets) ---------------------------------------------

def _two_column_case(rng):
    xs = np.arange(64, dtype=np.uint32)
    table = L.LookupTable.function("sq", xs, (xs * xs) % 61)
    idx = rng.integers(0, 64, 32)
    return table, [[xs[idx], table.columns[1][idx]]]


@pytest.mark.parametrize("width", [1, 2])
def test_repeated_lookup_completeness_and_prover_claims(width):
    rng = np.random.default_rng(width)
    if width == 1:
        table = L.LookupTable.range(8)
        groups = [[rng.integers(0, 256, 1 << n).astype(np.uint32)] for n in (6, 0, 9)]
    else:
        table, groups = _two_column_case(rng)
    st = L.LookupStatement(table, tuple(f"w{i}" for i in range(len(groups))),
                           tuple(int(g[0].shape[0]).bit_length() - 1 for g in groups), reps=2)
    mult = table.multiplicities(groups)
    proof, claims = L.prove_with_claims(st, groups, mult, committed(groups, mult))
    res = L.verify_bytes(st, proof.to_bytes(st), committed(groups, mult))
    assert res.ok, res.reason
    settle(st, groups, mult, res)
    assert [c.column for c in claims] == [c.column for c in res.claims]
    for a, b in zip(claims, res.claims):
        np.testing.assert_array_equal(a.point, b.point)
        np.testing.assert_array_equal(a.value, b.value)
    # the repetition count is part of the statement
    one = L.LookupStatement(st.table, st.group_names, st.group_logs)
    assert not L.verify_bytes(one, proof.to_bytes(st), committed(groups, mult)).ok


def test_repeated_lookup_rejects_a_row_outside_the_table():
    rng = np.random.default_rng(5)
    table = L.LookupTable.range(8)
    groups = [[rng.integers(0, 256, 64).astype(np.uint32)]]
    mult = table.multiplicities(groups)
    groups[0][0][3] = 300
    st = L.LookupStatement(table, ("w",), (6,), reps=2)
    proof = L.prove(st, groups, mult, committed(groups, mult))
    res = L.verify(st, proof, committed(groups, mult))
    assert not res.ok and "differ" in res.reason


def test_repeated_lookup_rejects_a_tampered_second_repetition():
    rng = np.random.default_rng(6)
    table = L.LookupTable.range(8)
    groups = [[rng.integers(0, 256, 64).astype(np.uint32)]]
    mult = table.multiplicities(groups)
    st = L.LookupStatement(table, ("w",), (6,), reps=2)
    proof = L.prove(st, groups, mult, committed(groups, mult))
    for tree in (0, 1):  # either repetition's root denominator
        p = L.LookupProof(proof.root_q.copy(), proof.layers, proof.column_evals, proof.mult_evals)
        p.root_q[tree, 0] = (int(p.root_q[tree, 0]) + 1) % F.P
        assert not L.verify(st, p, committed(groups, mult)).ok
    with pytest.raises(ValueError, match="reps"):
        L.LookupStatement(table, ("w",), (6,), reps=3)


def test_large_lookup_needs_two_repetitions_for_100_bits():
    """2^25 queries into a 16-bit table: one challenge set gives < 100 bits, two give ≥ 100."""
    st = L.LookupStatement(L.LookupTable.range(16), ("a", "b"), (24, 24))
    assert st.queries == 1 << 25
    assert -st.error_log2() < 100
    assert -st.error_log2(reps=2) >= 190


# --- several statements in one GKR -------------------------------------------------------------------

def _many_case(rng):
    r8 = L.LookupTable.range(8)
    g1 = [[rng.integers(0, 256, 1 << n).astype(np.uint32)] for n in (9, 3)]
    st1 = L.LookupStatement(r8, ("a", "b"), (9, 3), reps=2)
    table2, g2 = _two_column_case(rng)
    st2 = L.LookupStatement(table2, ("c",), (5,))
    g3 = [[rng.integers(0, 16, 2).astype(np.uint32)]]
    st3 = L.LookupStatement(L.LookupTable.range(4), ("d",), (1,))
    sts, groups = [st1, st2, st3], [g1, g2, g3]
    mults = [st.table.multiplicities(g) for st, g in zip(sts, groups)]
    return sts, groups, mults


def _committed_many(groups, mults):
    t = Transcript(b"test-lookup", b"statement")
    for s, (gs, m) in enumerate(zip(groups, mults)):
        for g, group in enumerate(gs):
            for c, col in enumerate(group):
                t.absorb_field(f"commit/s{s}g{g}c{c}", col)
        t.absorb_field(f"commit/m{s}", m)
    return t


def test_many_lookups_share_one_gkr():
    sts, groups, mults = _many_case(np.random.default_rng(11))
    proof, claims = L.prove_many(sts, groups, mults, _committed_many(groups, mults))
    assert len(proof.layers) == max(n for st in sts for n in st.all_tree_logs())
    res = L.verify_bytes(sts, proof.to_bytes(sts), _committed_many(groups, mults))
    assert res.ok, res.reason
    flat = [c for cl in claims for c in cl]
    assert len(flat) == len(res.claims)
    at = 0
    for st, g, m, cl in zip(sts, groups, mults, claims):
        part = L.VerifyResult.accept(res.claims[at:at + len(cl)])
        settle(st, g, m, part)
        at += len(cl)
    for a, b in zip(flat, res.claims):
        assert a.column == b.column
        np.testing.assert_array_equal(a.point, b.point)
        np.testing.assert_array_equal(a.value, b.value)
    # another statement list (order, or a statement left out) does not parse
    assert not L.verify_bytes(sts[::-1], proof.to_bytes(sts), _committed_many(groups, mults)).ok
    assert not L.verify_bytes(sts[:2], proof.to_bytes(sts), _committed_many(groups, mults)).ok


def test_many_lookups_reject_one_bad_row():
    sts, groups, mults = _many_case(np.random.default_rng(12))
    groups[1][0][1] = groups[1][0][1].copy()
    groups[1][0][1][4] = (int(groups[1][0][1][4]) + 1) % 61  # a (x, f(x)) pair not in the table
    proof = L.prove_many(sts, groups, mults, _committed_many(groups, mults))[0]
    res = L.verify_many(sts, proof, _committed_many(groups, mults))
    assert not res.ok and "differ" in res.reason


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=5), st.integers(0, 6), st.booleans())
def test_tree_layout_blocks_are_aligned_sub_cubes(group_logs, table_log, blinded):
    """Blocks never overlap, each sits at a multiple of its size, the blinding leaf and padding follow,
    and the leaf MLE at any point is Σ_blocks selector · block MLE + padding selector (what the
    verifier's leaf check computes)."""
    lay = L.tree_layout(tuple(group_logs), table_log, blinded)
    spans = sorted((o, o + (1 << g)) for o, g in zip(lay.offsets, lay.logs))
    assert all(o % (1 << g) == 0 for o, g in zip(lay.offsets, lay.logs))
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])) and spans[0][0] == 0
    assert lay.used == spans[-1][1] + blinded and lay.used <= 1 << lay.depth < 2 * max(lay.used, 2)
    rng = np.random.default_rng(len(group_logs) * 7 + table_log)
    leaves = np.zeros(1 << lay.depth, dtype=np.uint32)
    blocks = [rng.integers(0, F.P, 1 << g).astype(np.uint32) for g in lay.logs]
    for o, b in zip(lay.offsets, blocks):
        leaves[o:o + b.shape[0]] = b
    if blinded:
        leaves[lay.blind] = 7
    point = [tuple(v) for v in F.erandom(rng, lay.depth).tolist()]
    want = F.ezero()
    for i, b in enumerate(blocks):
        sel, pt = lay.block(i, point)
        v = L._ext_eval(b, np.array(pt, dtype=np.uint32).reshape(-1, 4))
        want = F.eadd(want, F.emul(np.array(sel, dtype=np.uint32), v))
    if blinded:
        want = F.eadd(want, F.emul(np.array(lay.selector(lay.blind, 0, point), dtype=np.uint32), F.ext(7)))
    np.testing.assert_array_equal(mle.evaluate(leaves, np.array(point, dtype=np.uint32)), want)


def test_older_format_versions_are_rejected(honest):
    """Format 6 (randomized layers, leaf checks as linear claims) only: a proof labelled 5 (plain leaf
    values with zero knowledge), 4 (mask openings) or 3 (per-group roots) is malformed."""
    st, groups, mult, proof = honest
    data = proof.to_bytes(st)
    assert data[4:6] == struct.pack("<H", L._VERSION) and L._VERSION == 6
    for v in (3, 4, 5, 7):
        res = L.verify_bytes(st, data[:4] + struct.pack("<H", v) + data[6:], committed(groups, mult))
        assert not res.ok and "malformed" in res.reason
