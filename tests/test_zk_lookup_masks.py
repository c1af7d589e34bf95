"""Zero-knowledge masks of the logUp-GKR layer sumchecks: completeness and must-reject tests, for
:func:`lookup.prove_many` alone and inside whole-model proofs."""

from __future__ import annotations

import numpy as np
import pytest

from blindproof.zk.field import babybear as F
from blindproof.zk.iop import lookup as L
from blindproof.zk.iop import mle
from blindproof.zk.iop import sumcheck as S
from blindproof.zk.iop import masks as M
from blindproof.zk.iop.transcript import Transcript


def _lookup(seed: int = 0):
    """Two statements (a range table and a function table, groups of different depths) with data."""
    rng = np.random.default_rng(seed)
    rt = L.LookupTable.range(4)
    ft = L.LookupTable.function("sq", np.arange(8, dtype=np.uint32), (np.arange(8) ** 2).astype(np.uint32))
    g_r = [[rng.integers(0, 16, 32).astype(np.uint32)], [rng.integers(0, 16, 4).astype(np.uint32)]]
    x = rng.integers(0, 8, 16).astype(np.uint32)
    g_f = [[x, (x.astype(np.int64) ** 2).astype(np.uint32)]]
    sts = [L.LookupStatement(rt, ("a", "b"), (5, 2)), L.LookupStatement(ft, ("c",), (4,), reps=2)]
    groups = [g_r, g_f]
    mults = [rt.multiplicities(g_r), ft.multiplicities(g_f)]
    return sts, groups, mults


def _prove(seed: int = 0, mask_seed: int = 1):
    sts, groups, mults = _lookup(seed)
    masks = M.ProverMasks.sample(L.mask_sizes(sts), np.random.default_rng(mask_seed))
    proof, claims = L.prove_many(sts, groups, mults, Transcript(b"lk"), masks)
    masks.check_all_used()
    return sts, proof, claims, masks


def _verify(sts, proof, masks=None):
    masks = M.VerifierMasks() if masks is None else masks
    return L.verify_many(sts, proof, Transcript(b"lk"), masks), masks


def _copy(proof: L.LookupProof, **kw) -> L.LookupProof:
    layers = [S.SumcheckProof(ly.round_evals.copy(), ly.final_evals.copy(),
                              None if ly.mask_sum is None else ly.mask_sum.copy(),
                              None if ly.mask_eval is None else ly.mask_eval.copy()) for ly in proof.layers]
    fields = dict(root_q=proof.root_q.copy(), layers=layers, column_evals=[e.copy() for e in proof.column_evals],
                  mult_evals=proof.mult_evals.copy(), zk=proof.zk)
    fields.update(kw)
    return L.LookupProof(**fields)


def _holds(claim, sts, groups, mults, tables, s_i: int = 0) -> bool:
    """Whether a linear claim holds on the committed masks and statement ``s_i``'s columns (what the
    commitment's opening would prove)."""
    st = sts[s_i]
    cols = {n: groups[s_i][g][c] for g in range(len(st.group_logs)) for c, n in enumerate(st.column_names(g))}
    total = F.ezero()
    for name, pt, coef in claim.terms:
        table = tables[name] if name in tables else mults[s_i] if name == L.MULTIPLICITY_COLUMN else cols[name]
        total = F.eadd(total, F.emul(np.asarray(coef, dtype=np.uint32), mle.evaluate(table, pt)))
    return np.array_equal(total, np.asarray(claim.value, dtype=np.uint32))


def test_mask_sizes_blinders_then_per_layer_randomizers_and_mask():
    sts, _, _ = _lookup()
    logs = [n for st in sts for n in st.all_tree_logs(True)]
    want = [(1, 3)] * len(logs)
    for k in range(max(logs)):
        t = sum(1 for n in logs if n > k)
        want += [(t + 2, 1), (t + 2, 1), (k + 1, (3,) * k + (4,))]
    assert L.mask_sizes(sts) == want


def test_masked_lookup_is_complete_and_every_claim_holds():
    """The verifier accepts; every mask claim (layer masks, paybacks) and every leaf claim (columns,
    multiplicities, blinding leaves, leaf randomizers) holds on what was committed; the verifier's
    leaf claims are the prover's."""
    sts, groups, mults = _lookup()
    sts_, proof, claims, pmasks = _prove()
    res, vmasks = _verify(sts, proof)
    assert res.ok, res.reason
    assert proof.zk and proof.column_evals == [] and proof.mult_evals.shape == (0, 4)
    mine = [c for cl in claims for c in cl]
    assert len(res.claims) == len(mine) == 2 * sum(st.reps for st in sts)
    for v, p in zip(res.claims, mine):
        assert np.array_equal(v.value, p.value) and [t[0] for t in v.terms] == [t[0] for t in p.terms]
    tables = pmasks.tables()
    assert all(_holds(c, sts, groups, mults, tables) for c in vmasks.claims)
    at = 0
    for s_i, st in enumerate(sts):
        for c in res.claims[at:at + 2 * st.reps]:
            assert _holds(c, sts, groups, mults, tables, s_i)
        at += 2 * st.reps
    assert [len(vmasks.claims), vmasks.used] == [len(pmasks.claims), len(pmasks.masks)]


def test_no_value_of_a_column_is_sent():
    """The zero-knowledge proof carries roots and layer sumchecks only: no column, multiplicity or
    blinding value (each is a term of a linear claim the commitment settles)."""
    sts, proof, _, _ = _prove()
    data = proof.to_bytes(sts)
    layers = sum(len(ly.round_evals.reshape(-1)) for ly in proof.layers)  # upper bound on round bytes
    assert len(data) < 64 + 16 * len(proof.root_q) + 16 * layers + sum(
        16 * (len(ly.final_evals) + 2) + 2 for ly in proof.layers)
    back = L.LookupProof.from_bytes(data, sts)
    assert back.column_evals == [] and back.mult_evals.shape == (0, 4)


def test_leaf_claims_refute_a_column_other_than_the_committed_one():
    """Soundness of the leaf claims: a prover that runs the lookup on a different (valid) column than
    the committed one gets an accepting GKR, and a leaf claim that is false on the committed column."""
    sts, groups, mults = _lookup()
    other = [[[c.copy() for c in g] for g in gs] for gs in groups]
    other[0][0][0] = np.roll(other[0][0][0], 1)  # same multiset: same multiplicities, another column
    masks = M.ProverMasks.sample(L.mask_sizes(sts), np.random.default_rng(1))
    proof, _ = L.prove_many(sts, other, mults, Transcript(b"lk"), masks)
    res, vmasks = _verify(sts, proof)
    assert res.ok
    tables = masks.tables()
    assert all(_holds(c, sts, groups, mults, tables) for c in vmasks.claims)
    assert not all(_holds(c, sts, groups, mults, tables) for c in res.claims[:2 * sts[0].reps])


def test_masked_proof_round_trips_through_bytes():
    sts, proof, _, _ = _prove()
    data = proof.to_bytes(sts)
    back = L.LookupProof.from_bytes(data, sts)
    assert back.to_bytes(sts) == data
    assert _verify(sts, back)[0].ok
    for cut in (1, 17, len(data) // 2):
        assert not L.verify_bytes(sts, data[:-cut], Transcript(b"lk")).ok


def test_round_messages_and_layer_values_depend_on_the_masks():
    sts, a, _, _ = _prove(mask_seed=1)
    _, b, _, _ = _prove(mask_seed=2)
    assert not np.array_equal(a.root_q, b.root_q)  # the blinding leaves
    for la, lb in zip(a.layers, b.layers):
        assert not np.array_equal(la.round_evals, lb.round_evals)
        assert not np.array_equal(la.final_evals[1:], lb.final_evals[1:])


def test_masks_required_when_the_verifier_has_a_masker():
    sts, groups, mults = _lookup()
    plain, _ = L.prove_many(sts, groups, mults, Transcript(b"lk"))
    res, _ = _verify(sts, plain)
    assert not res.ok and "zero-knowledge" in res.reason
    assert L.verify_many(sts, plain, Transcript(b"lk")).ok  # standalone lookups stay unmasked


def test_unmasked_verifier_rejects_a_masked_proof():
    sts, proof, _, _ = _prove()
    res = L.verify_many(sts, proof, Transcript(b"lk"))
    assert not res.ok and "unexpected zero-knowledge" in res.reason


@pytest.mark.parametrize("k", [0, 1, 3])
def test_rejects_a_stripped_layer_mask(k):
    sts, proof, _, _ = _prove()
    bad = _copy(proof)
    bad.layers[k] = S.SumcheckProof(bad.layers[k].round_evals, bad.layers[k].final_evals)
    res, _ = _verify(sts, bad)
    assert not res.ok and "masked" in res.reason
    # the same edit through bytes: also rejected (or malformed)
    assert not L.verify_bytes(sts, bad.to_bytes(sts), Transcript(b"lk")).ok


@pytest.mark.parametrize("field_name", ["mask_sum", "mask_eval"])
def test_rejects_a_tampered_mask_value(field_name):
    sts, proof, _, _ = _prove()
    for k in (0, 1, len(proof.layers) - 1):
        bad = _copy(proof)
        ly = bad.layers[k]
        setattr(ly, field_name, F.eadd(getattr(ly, field_name), F.eone()))
        res, _ = _verify(sts, bad)
        assert not res.ok


def test_rejects_a_tampered_payback_value():
    """The payback value ``V`` of a layer's randomizer enters its final check."""
    sts, proof, _, _ = _prove()
    for k in (1, len(proof.layers) - 1):
        bad = _copy(proof)
        bad.layers[k].final_evals[-1] = F.eadd(bad.layers[k].final_evals[-1], F.eone())
        res, _ = _verify(sts, bad)
        assert not res.ok and "do not match the last round polynomial" in res.reason


def test_each_mask_value_is_settled_as_a_claim_on_its_own_committed_table():
    """g(r) of every layer and every payback value go to the settler as linear claims on the committed
    masks; another draw of the masks (same sizes) does not satisfy them."""
    sts, groups, mults = _lookup()
    _, proof, _, pmasks = _prove()
    res, vmasks = _verify(sts, proof)
    assert res.ok
    other = M.ProverMasks.sample([(m.n_vars, m.degree) for m in pmasks.masks], np.random.default_rng(9)).tables()
    n_pay = sum(1 for ly in proof.layers[1:])
    assert len(vmasks.claims) == len(proof.layers) + n_pay
    for c in vmasks.claims:
        assert not _holds(c, sts, groups, mults, other)


def test_mask_claims_name_the_committed_masks_after_the_op_masks():
    """The verifier names lookup masks after those already used (the op sumchecks' come first)."""
    sts, groups, mults = _lookup()
    plan = [(2, 2)] + L.mask_sizes(sts)
    pm = M.ProverMasks.sample(plan, np.random.default_rng(4))
    pm.take(2, 2)
    proof, _ = L.prove_many(sts, groups, mults, Transcript(b"lk"), pm)
    pm.check_all_used()
    vm = M.VerifierMasks()
    vm.next_name()
    res = L.verify_many(sts, proof, Transcript(b"lk"), vm)
    named = {t for c in vm.claims for t, _, _ in c.terms} | {t for c in res.claims for t, _, _ in c.terms
                                                             if M.is_mask(t)}
    assert res.ok and vm.used == len(plan) and named == {M.mask_name(i) for i in range(1, len(plan))}


def test_blinding_leaf_multiplies_the_root_denominator():
    """With zero knowledge each tree holds ``(0, d)``: the root is ``(0, q·d)`` for the unblinded ``q``
    (same α), ``d`` the committed blinder's value at 0 (never sent)."""
    sts, groups, mults = _lookup()
    plain, _ = L.prove_many(sts, groups, mults, Transcript(b"lk"))
    _, proof, _, pmasks = _prove()
    for i, (q0, q) in enumerate(zip(plain.root_q, proof.root_q)):
        d = pmasks.masks[i].evaluate(np.zeros((1, 4), dtype=np.uint32))
        assert np.array_equal(q, F.emul(q0, d))


def test_rejects_a_blinding_leaf_that_does_not_cancel(monkeypatch):
    """The blinding leaf must add 0 to the fraction sum: a prover whose leaf is ``(n, d)`` with
    ``n ≠ 0`` (which could offset a row outside the table) has a nonzero root numerator."""
    real = L._leaves

    def offset(lay, *a):
        p, q = real(lay, *a)
        if lay.blind is not None:
            p[lay.blind] = F.eone()
        return p, q

    monkeypatch.setattr(L, "_leaves", offset)
    sts, proof, _, _ = _prove()
    assert proof.root_p.any()
    res, _ = _verify(sts, proof)
    assert not res.ok and "layer 0" in res.reason


def test_rejects_a_zero_blinding_denominator():
    """``d = 0`` would make the root ``(0, 0)`` whatever the witness: the root check rejects it."""
    sts, groups, mults = _lookup()
    masks = M.ProverMasks.sample(L.mask_sizes(sts), np.random.default_rng(1))
    masks.masks[0].coeffs[:] = 0
    proof, _ = L.prove_many(sts, groups, mults, Transcript(b"lk"), masks)
    res, _ = _verify(sts, proof)
    assert not res.ok and "root denominator is zero" in res.reason


def test_prover_refuses_masks_of_another_plan():
    sts, groups, mults = _lookup()
    pm = M.ProverMasks.sample([(k + 1, 3) for k, _ in L.mask_sizes(sts)], np.random.default_rng(0))
    with pytest.raises(ValueError, match="mask plan"):
        L.prove_many(sts, groups, mults, Transcript(b"lk"), pm)


# --- whole-model proofs ---------------------------------------------------------------------------

program = pytest.importorskip("blindproof.zk.proof.program")

from blindproof.zk.commit import pcs  # noqa: E402
from blindproof.zk.proof.keys import CommitmentKey  # noqa: E402
from blindproof.zk.ops import base as B  # noqa: E402
from blindproof.zk.proof.proof_file import ModelProof  # noqa: E402
from blindproof.zk.proof.prover import ModelProver, example_input, quantized_workload  # noqa: E402
from blindproof.zk.proof.verifier import verify_model_proof  # noqa: E402

KEY = CommitmentKey(b"\x0b" * 32)
NAME = "mlp-784-56-10"


@pytest.fixture(scope="module")
def mlp():
    seen: list = []
    orig = L.prove_many

    def recording(sts, *a, **kw):
        seen.append(list(sts))
        return orig(sts, *a, **kw)

    prover = ModelProver.create(quantized_workload(NAME), KEY)  # (its commitment's well-formedness proof has lookups too)
    L.prove_many = recording
    try:
        proof = prover.prove(prover.model.encode(example_input(NAME)), rng=np.random.default_rng(0))
    finally:
        L.prove_many = orig
    return prover, proof, seen


def _edit_lookups(proof: ModelProof, runs, edit) -> bytes:
    """Re-encode the proof after ``edit(lookup_proof)`` on every GKR of its batched lookups."""
    n_ops = int.from_bytes(proof.program_proof[6:10], "little")
    prog = program.ProgramProof.from_bytes(proof.program_proof, n_ops)
    parts, r = [], 0
    for part in prog.lookups.parts:
        if isinstance(part, bytes) and part[:4] == b"BPLK":
            lp = L.LookupProof.from_bytes(part, runs[r])
            part = edit(lp).to_bytes(runs[r])
            r += 1
        parts.append(part)
    prog.lookups = B.OpProof(parts)
    fields = dict(proof.__dict__)
    fields["program_proof"] = prog.to_bytes()
    return ModelProof(**fields).to_bytes()


def test_model_proof_masks_every_lookup_layer_and_commits_the_masks(mlp):
    prover, proof, runs = mlp
    assert runs and verify_model_proof(prover.commitment, proof.to_bytes()).ok
    committed = {n for n in pcs.Commitment.from_bytes(proof.trace_commitment).layout.names if M.is_mask(n)}
    layers = []
    _edit_lookups(proof, runs, lambda lp: layers.extend(lp.layers) or lp)
    assert layers and all(ly.mask_sum is not None for ly in layers)
    lookup_masks = sum(len(L.mask_sizes(sts)) for sts in runs)
    # per layer its mask and the two randomizers it reads; one blinder per tree
    assert lookup_masks == 3 * len(layers) + sum(st.reps for sts in runs for st in sts)
    assert {M.mask_name(len(committed) - 1 - i) for i in range(lookup_masks)} <= committed


def test_model_proof_rejects_a_stripped_lookup_mask(mlp):
    prover, proof, runs = mlp

    def strip(lp):
        ly = lp.layers[-1]
        lp.layers[-1] = S.SumcheckProof(ly.round_evals, ly.final_evals)
        return lp

    res = verify_model_proof(prover.commitment, _edit_lookups(proof, runs, strip))
    assert not res.ok and "masked" in res.reason


@pytest.mark.parametrize("field_name", ["mask_sum", "mask_eval"])
def test_model_proof_rejects_a_tampered_lookup_mask_value(mlp, field_name):
    prover, proof, runs = mlp

    def bump(lp):
        ly = lp.layers[1]
        setattr(ly, field_name, F.eadd(getattr(ly, field_name), F.eone()))
        return lp

    assert not verify_model_proof(prover.commitment, _edit_lookups(proof, runs, bump)).ok


def _proof_with_a_mask_swapped(prover, index, seed):
    """A proof whose masks are committed as sampled, then the one ``index(plan)`` names is replaced by a
    fresh one before proving: everything the prover sends is consistent with the replacement, only the
    claim on the committed table is not. None if the prover refuses to open the false claim itself."""
    orig = M.ProverMasks.sample

    def swap(plan, rng=None):
        masks = orig(plan, rng)
        tables = masks.tables()
        masks.tables = lambda: tables
        i = index(plan)
        masks.masks[i] = S.MaskPolynomial.random(np.random.default_rng(seed), *plan[i])
        return masks

    M.ProverMasks.sample = staticmethod(swap)
    try:
        return prover.prove(prover.model.encode(example_input(NAME)), rng=np.random.default_rng(3))
    except ValueError:  # a prover that checks its own openings refuses the false claim
        return None
    finally:
        M.ProverMasks.sample = staticmethod(orig)


def test_model_proof_rejects_a_lookup_mask_claim_on_another_table(mlp):
    """A consistent layer and opening for a mask other than the committed one: the trace opening of
    the mask claim fails."""
    prover, _, _ = mlp
    bad = _proof_with_a_mask_swapped(prover, lambda plan: len(plan) - 1, 99)  # the last layer's mask
    if bad is not None:
        res = verify_model_proof(prover.commitment, bad.to_bytes())
        assert not res.ok and "trace opening" in res.reason


def test_model_proof_rejects_a_blinding_value_not_committed(mlp):
    """A blinding leaf whose ``d`` is not the committed table's (a prover choosing ``d`` freely): the
    lookup is consistent, the claim on the committed blinding table is not."""
    prover, _, runs = mlp

    def first_blinder(plan):  # the last GKR's first blinding table
        i = len(plan) - len(L.mask_sizes(runs[-1]))
        assert plan[i] == (1, 3)
        return i

    bad = _proof_with_a_mask_swapped(prover, first_blinder, 98)
    if bad is not None:
        res = verify_model_proof(prover.commitment, bad.to_bytes())
        assert not res.ok and "trace opening" in res.reason


def test_a_layers_final_checks_reject_with_their_own_reasons(monkeypatch):
    """Each final check of a masked GKR layer, isolated: a final value off the last round polynomial,
    and a wrong ``eq`` factor whose effect on the last round the mask value cancels (only the ``eq``
    check can see it)."""
    sts, proof, _, _ = _prove()
    seen: dict = {}
    real = Transcript.challenge_ext

    def spy(self, label):
        v = real(self, label)
        seen.setdefault(label, []).append(v.copy())
        return v

    monkeypatch.setattr(Transcript, "challenge_ext", spy)
    assert _verify(sts, proof)[0].ok
    monkeypatch.undo()
    k = 1  # layer 1: its λ and ρ are the second drawn
    lam, rho = seen["lookup/lambda"][k], seen["lookup/rho"][k]
    bad = _copy(proof)
    bad.layers[k].final_evals[1] = F.eadd(bad.layers[k].final_evals[1], F.eone())
    res, _ = _verify(sts, bad)
    assert not res.ok and "do not match the last round polynomial" in res.reason
    bad = _copy(proof)
    fin = bad.layers[k].final_evals
    n = 1 + 4 * (len(fin) - 2) // 4  # eq and the trees' values (the payback value last)
    before = F.emul(np.array(L._compose(np.ascontiguousarray(fin[:n]), lam), dtype=np.uint32), F.ext((F.P + 1) // 2))
    fin[0] = F.emul(fin[0], F.ext(2))  # eq doubled: the composition doubles ...
    bad.layers[k].mask_eval = F.esub(bad.layers[k].mask_eval, F.emul(before, F.einv(rho)))  # ... ρ·g takes it back
    res, _ = _verify(sts, bad)
    assert not res.ok and "wrong eq value" in res.reason


# --- what a zero-knowledge lookup reveals, counted -------------------------------------------------

def _programmed(monkeypatch):
    """Challenges that depend only on their label and order, not on what was absorbed: with them a
    proof's revealed values are affine in the masks (the children tables are fixed)."""
    counter: dict = {}

    def draw(label: str, n: int) -> np.ndarray:
        i = counter.get(label, 0)
        counter[label] = i + n
        rng = np.random.default_rng([abs(hash(label)) % (1 << 32), i])
        return F.random(rng, (n, 4))

    monkeypatch.setattr(Transcript, "challenge_ext", lambda self, label: draw(label, 1)[0])
    monkeypatch.setattr(Transcript, "challenge_exts", lambda self, label, n: draw(label, n))
    return counter


def test_layer_values_are_uniform_in_the_randomizers(monkeypatch):
    """The leakage rank of a zero-knowledge lookup: every value a proof reveals about the fraction
    tree (each layer's children at the sumcheck point, each payback value) is affine in the
    randomizer masks' coefficients, with a map of full rank over the base field. So for any witness
    some randomizers give the same revealed values: they say nothing about the columns (the round
    messages are Libra-masked, the root denominator carries the uniform blinding leaf, the leaf
    checks are linear claims). Fails if any revealed value misses its randomizer."""
    rt = L.LookupTable.range(3)
    rng = np.random.default_rng(5)
    groups = [[[rng.integers(0, 8, 8).astype(np.uint32)]]]
    sts = [L.LookupStatement(rt, ("a",), (3,))]
    mults = [rt.multiplicities(groups[0])]
    plan = L.mask_sizes(sts)
    base = M.ProverMasks.sample(plan, np.random.default_rng(1))
    rand = [i for i, (n, d) in enumerate(plan) if d == 1]  # the randomizer masks (degree 1)

    def revealed(masks) -> np.ndarray:
        _programmed(monkeypatch)
        proof, _ = L.prove_many(sts, groups, mults, Transcript(b"rk"), masks)
        monkeypatch.undo()
        return np.concatenate([ly.final_evals[1:].reshape(-1) for ly in proof.layers]).astype(np.int64)

    def with_coeff(i, j, c, delta):
        """The base masks with coordinate ``c % 4`` of coefficient ``c // 4`` of variable ``j`` of mask
        ``i`` moved by ``delta``."""
        masks = M.ProverMasks(masks=[S.MaskPolynomial(m.coeffs.copy()) for m in base.masks])
        co = masks.masks[i].coeffs
        co[j, c // 4, c % 4] = (int(co[j, c // 4, c % 4]) + delta) % F.P
        return masks

    v0 = revealed(base)
    cols = []
    for i in rand:
        n = plan[i][0]
        for j in range(n):
            for c in range(8):  # two coefficients, four coordinates each
                cols.append((revealed(with_coeff(i, j, c, 1)) - v0) % F.P)
    J = np.stack(cols, axis=1)
    assert J.shape[0] <= J.shape[1]
    assert _rank_mod_p(J) == J.shape[0]  # every revealed coordinate is reachable: uniform


def _rank_mod_p(a: np.ndarray) -> int:
    """Rank of an integer matrix over GF(p) (Gaussian elimination on Python ints)."""
    m = [[int(x) % F.P for x in row] for row in a]
    rank, cols = 0, len(m[0]) if m else 0
    for c in range(cols):
        piv = next((r for r in range(rank, len(m)) if m[r][c]), None)
        if piv is None:
            continue
        m[rank], m[piv] = m[piv], m[rank]
        inv = pow(m[rank][c], F.P - 2, F.P)
        m[rank] = [x * inv % F.P for x in m[rank]]
        for r in range(len(m)):
            if r != rank and m[r][c]:
                f = m[r][c]
                m[r] = [(x - f * y) % F.P for x, y in zip(m[r], m[rank])]
        rank += 1
    return rank


def test_proof_objects_of_the_wrong_shape_are_rejected_by_name():
    """In-memory proofs (not parsed from bytes) with a part of the wrong shape: each is rejected by the
    shape check that names it, not by whatever breaks later."""
    sts, proof, _, _ = _prove()
    bad = _copy(proof, root_q=proof.root_q[:-1])
    assert "proof shape does not match" in _verify(sts, bad)[0].reason
    bad = _copy(proof)
    bad.layers = bad.layers[:-1]
    assert "proof shape does not match" in _verify(sts, bad)[0].reason
    bad = _copy(proof)
    bad.layers[2].final_evals = bad.layers[2].final_evals[:-1]
    assert "layer 2: proof shape does not match" in _verify(sts, bad)[0].reason
    bad = _copy(proof, column_evals=[np.zeros((1, 4), dtype=np.uint32)])  # leaf values under zero knowledge
    assert "proof shape does not match" in _verify(sts, bad)[0].reason
    plain, _ = L.prove_many(*_lookup()[:3], Transcript(b"lk"))
    wrong = L.LookupProof(plain.root_q, plain.layers, [np.zeros((2, 4), dtype=np.uint32)] + plain.column_evals[1:],
                          plain.mult_evals)
    assert "wrong number of column values" in L.verify_many(sts, wrong, Transcript(b"lk")).reason


@pytest.mark.parametrize("where", ["payback", "leaf"])
def test_a_point_without_a_geometric_form_is_a_rejection(where, monkeypatch):
    """The mask claims need geometric points (``1 + y^(2^b) ≠ 0``; it fails with probability about
    2^−120 per point): when one does not exist the verifier rejects, naming where, and never raises."""
    sts, proof, _, _ = _prove()
    real = S.mask_var_terms

    def failing(name, n_vars, degree, items):
        payback = degree == 1 and len(items) > 3  # a term per tree and two more
        blinding = degree == 3 and n_vars == 1  # a leaf claim's blinding value d
        if (payback and where == "payback") or (blinding and where == "leaf"):
            raise F.FieldError("no geometric point")
        return real(name, n_vars, degree, items)

    monkeypatch.setattr(S, "mask_var_terms", failing)
    res, _ = _verify(sts, proof)
    assert not res.ok and ("a challenge without" if where == "payback" else "a leaf point without") in res.reason
