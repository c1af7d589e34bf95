"""The zk proof that the committed first layer maps the published directions to zero (fingerprint/binding.py):
completeness and must-reject tests."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from blindproof.fingerprint import binding as FB
from blindproof.zk.iop import blind as BL
from blindproof.models.mlp import MLP
from blindproof import quant
from blindproof.zk.iop import sumcheck as S
from test_zk_leakage_rank import _rank_mod_p  # the suite's rank over the base field
from blindproof.zk.proof.commitment import commit_model
from blindproof.zk.proof.keys import CommitmentKey

pytestmark = pytest.mark.timeout(240)


def _commit(spec, weights):
    """A fresh commitment whose opening state is charged to its key's ledger (a binding proof refuses a
    state without one; the suite's keys without a file count nothing, see conftest)."""
    key = CommitmentKey.generate()
    com, state = commit_model(spec, weights, key)
    state.ledger = key.ledger()
    return com, state


def _quantized(seed: int):
    torch.manual_seed(seed)
    model = MLP((64, 32, 32, 10))
    return quant.quantize(model, torch.randn(64, 64))


@pytest.fixture(scope="module")
def setup():
    qm = _quantized(0)
    com, state = _commit(qm.spec, qm.weights)
    w = FB.first_linear_weight(com)
    dirs = FB.published_directions(qm.weights[w])
    proof = FB.prove_binding(com, state, w, dirs)
    return qm, com, state, w, dirs, proof


def test_completeness(setup):
    qm, com, state, w, dirs, proof = setup
    assert w == "l0.acc.weight" and dirs.shape == (32, 64)
    assert not np.any(qm.weights[w] @ dirs.T)  # exact integer null vectors
    res = FB.verify_binding(com, w, dirs, proof)
    assert res.ok, res.reason
    few = FB.prove_binding(com, state, w, dirs[:3])  # any subset, one sumcheck per batch
    assert FB.verify_binding(com, w, dirs[:3], few).ok
    one = FB.prove_binding(com, state, w, dirs[5])
    assert FB.verify_binding(com, w, dirs[5:6], one).ok


def test_prover_refuses_a_direction_that_is_not_annihilated(setup):
    _, com, state, w, dirs, _ = setup
    bad = dirs.copy()
    bad[2, 0] += 1
    with pytest.raises(ValueError, match="direction 2"):
        FB.prove_binding(com, state, w, bad)


def test_rejects_a_weight_that_does_not_annihilate(setup):
    """A cheating prover runs the protocol anyway: one entry of W changed, the original's directions."""
    qm, _, _, w, dirs, _ = setup
    weights = {k: v.copy() for k, v in qm.weights.items()}
    weights[w][3, 7] += 1
    com2, state2 = _commit(qm.spec, weights)
    forged = FB.prove_binding(com2, state2, w, dirs, _check=False)
    res = FB.verify_binding(com2, w, dirs, forged)
    assert not res.ok and "sumcheck" in res.reason


def test_rejects_a_direction_outside_the_null_space(setup):
    _, com, state, w, dirs, _ = setup
    other = np.random.default_rng(1).integers(-3, 4, size=(2, 64))
    forged = FB.prove_binding(com, state, w, np.concatenate([dirs[:4], other]), _check=False)
    assert not FB.verify_binding(com, w, np.concatenate([dirs[:4], other]), forged).ok


def test_rejects_a_proof_against_another_commitment_or_statement(setup):
    qm, com, state, w, dirs, proof = setup
    same_weights, _ = _commit(qm.spec, qm.weights)  # other hiding randomness
    res = FB.verify_binding(same_weights, w, dirs, proof)
    assert not res.ok  # the statement names the commitment, so every challenge differs
    other = _quantized(1)
    com_o, _ = _commit(other.spec, other.weights)
    assert not FB.verify_binding(com_o, w, dirs, proof).ok
    assert not FB.verify_binding(com, w, dirs[:31], proof).ok  # other directions
    assert not FB.verify_binding(com, w, dirs[::-1].copy(), proof).ok
    assert not FB.verify_binding(com, w, dirs, proof, bound=100).ok
    res = FB.verify_binding(com, "l1.acc.weight", dirs, proof)
    assert not res.ok and "bad statement" in res.reason and "only reader" in res.reason


def test_byte_flips_truncation_and_trailing_bytes(setup):
    _, com, _, w, dirs, proof = setup
    rng = np.random.default_rng(7)
    positions = np.unique(np.concatenate([np.arange(12), rng.integers(0, len(proof), 60)]))
    for pos in positions:
        bad = bytearray(proof)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        res = FB.verify_binding(com, w, dirs, bytes(bad))  # never raises
        assert not res.ok, f"flip at byte {pos} accepted"
    for bad in (proof[:-1], proof + b"\0", b"", proof[: len(proof) // 2]):
        assert not FB.verify_binding(com, w, dirs, bad).ok


def test_statement_errors(setup):
    _, com, state, w, dirs, _ = setup
    with pytest.raises(TypeError, match="integer"):
        FB.prove_binding(com, state, w, dirs.astype(np.float64))
    with pytest.raises(ValueError, match="zero"):
        FB.prove_binding(com, state, w, np.zeros((1, 64), dtype=np.int64))
    with pytest.raises(ValueError, match="too large"):
        FB.prove_binding(com, state, w, np.full((1, 64), 1 << 20, dtype=np.int64))
    with pytest.raises(ValueError, match="shape"):
        FB.prove_binding(com, state, w, dirs[:, :10])
    with pytest.raises(ValueError, match="no weight"):
        FB.prove_binding(com, state, "nope", dirs)
    other = _quantized(2)
    _, state_o = _commit(other.spec, other.weights)
    with pytest.raises(ValueError, match="does not belong"):
        FB.prove_binding(com, state_o, w, dirs)


# --- which weight: the input's only reader (a decoy first layer must not be bindable) ------------------

ACC = (1 << 29) - 1


def _with_decoy(qm, rng):
    """The MLP's spec with a decoy linear inserted as op 0: it reads the input too, its output is unused,
    and its weight has directions of its own that the real first layer does not annihilate."""
    from blindproof.quant.spec import Op, TensorSpec, WeightSpec

    spec = qm.spec
    decoy = Op("linear", ("x",), "decoy.acc", {"weight": "decoy.weight", "bias": None})
    spec2 = dataclasses.replace(
        spec, ops=(decoy, *spec.ops),
        tensors=dict(spec.tensors) | {"decoy.acc": TensorSpec("decoy.acc", 0, -ACC, ACC, "accumulator")},
        weights=dict(spec.weights) | {"decoy.weight": WeightSpec("decoy.weight", (32, 64), "int8", 0)})
    return spec2, dict(qm.weights) | {"decoy.weight": rng.integers(-127, 128, size=(32, 64))}


def _old_first_linear_weight(commitment):
    """The former rule: the weight of op 0 whenever it is a linear op on the input."""
    op = commitment.spec.ops[0]
    if op.kind != "linear" or op.inputs[0] not in commitment.spec.inputs:
        raise ValueError("the committed program does not start with a linear op on its input")
    return op.params["weight"]


def test_decoy_first_layer_is_refused(monkeypatch):
    from blindproof.quant.reference import run_program

    qm = _quantized(3)
    rng = np.random.default_rng(3)
    spec, weights = _with_decoy(qm, rng)
    com, state = _commit(spec, weights)
    dirs = FB.published_directions(weights["decoy.weight"], count=4)
    assert not np.any(weights["decoy.weight"] @ dirs.T)  # harmless for the decoy ...
    x = rng.integers(-2000, 2000, size=(1, 64))
    base = run_program(spec, weights, {"x": x}).tensors["logits"]
    moved = run_program(spec, weights, {"x": x + 40 * dirs[0]}).tensors["logits"]
    assert not np.array_equal(base, moved)  # ... but not for the model: the output changes

    # under the former rule the decoy's binding proof was made and accepted
    monkeypatch.setattr(FB, "first_linear_weight", _old_first_linear_weight)
    assert FB.first_linear_weight(com) == "decoy.weight"
    forged = FB.prove_binding(com, state, "decoy.weight", dirs)
    assert FB.verify_binding(com, "decoy.weight", dirs, forged).ok
    monkeypatch.undo()

    res = FB.verify_binding(com, "decoy.weight", dirs, forged)
    assert not res.ok and "exactly one linear op" in res.reason, res.reason
    with pytest.raises(ValueError, match="exactly one linear op"):
        FB.first_linear_weight(com)
    with pytest.raises(ValueError, match="exactly one linear op"):
        FB.prove_binding(com, state, "decoy.weight", dirs)
    res = FB.verify_binding(com, "l0.acc.weight", FB.published_directions(qm.weights["l0.acc.weight"], 2), forged)
    assert not res.ok and "exactly one linear op" in res.reason  # nor the real layer: the input has two readers


def _tiny(ops, outputs=("y",), extra_tensors=(), inputs=("x",)):
    from blindproof.quant.spec import QuantSpec, TensorSpec, WeightSpec

    t = lambda n, lo=-32767, hi=32767, role="activation": TensorSpec(n, 0, lo, hi, role)  # noqa: E731
    names = {"x", "a", "y", *extra_tensors}
    tensors = {n: t(n, -ACC, ACC, "accumulator") if n == "a" else t(n) for n in names}
    return QuantSpec(arch={"family": "test"}, inputs=inputs, outputs=outputs, ops=tuple(ops), tensors=tensors,
                     weights={"W": WeightSpec("W", (4, 8), "int8", 0), "V": WeightSpec("V", (8,), "int16", 0)},
                     tables={})


def test_input_reader_refuses_every_other_program_shape():
    from blindproof.quant.spec import Op

    lin = Op("linear", ("x",), "a", {"weight": "W", "bias": None})
    tail = Op("rescale", ("a",), "y", {"shift": 3})
    assert FB.input_reader(_tiny([lin, tail])) == lin
    # a second, non-linear reader of the input (its output added to the real path)
    side = [Op("rescale", ("x",), "s", {"shift": 0}), Op("linear", ("s",), "a", {"weight": "W", "bias": None}),
            Op("rescale", ("a",), "r", {"shift": 3}), Op("add", ("r", "s"), "y", {})]
    with pytest.raises(ValueError, match="exactly one linear op"):
        FB.input_reader(_tiny([Op("linear", ("x",), "d", {"weight": "W", "bias": None}), *side],
                              extra_tensors=("s", "r", "d")))
    with pytest.raises(ValueError, match="read by a rescale op"):  # the only reader is not a linear op
        FB.input_reader(_tiny(side, extra_tensors=("s", "r")))
    with pytest.raises(ValueError, match="read by a mul_weight op"):
        FB.input_reader(_tiny([Op("mul_weight", ("x",), "y", {"weight": "V"})]))
    # (specs whose input is also an output are refused when built, before the binding sees them)
    with pytest.raises(ValueError, match="reaches no program output|both inputs and outputs"):
        FB.input_reader(_tiny([lin], outputs=("x",)))  # the layer's output is unused
    with pytest.raises(ValueError, match="also one of its outputs|both inputs and outputs"):  # δ shows directly
        FB.input_reader(_tiny([lin, tail], outputs=("y", "x")))
    with pytest.raises(ValueError, match="one input"):
        FB.input_reader(_tiny([lin, Op("add", ("a", "z"), "y", {})], inputs=("x", "z"), extra_tensors=("z",)))


def test_weight_wider_than_the_bound_is_refused(setup):
    qm, com, state, w, dirs, proof = setup
    spec = dataclasses.replace(qm.spec, weights=dict(qm.spec.weights) | {
        w: dataclasses.replace(qm.spec.weights[w], dtype="int16")})
    com16, state16 = _commit(spec, qm.weights)
    with pytest.raises(ValueError, match="int16"):
        FB.prove_binding(com16, state16, w, dirs)
    res = FB.verify_binding(com16, w, dirs, proof)
    assert not res.ok and "above the bound" in res.reason
    # with the int16 bound the statement holds again (and the directions' size limit tightens)
    ok = FB.prove_binding(com16, state16, w, dirs, bound=(1 << 15) - 1)
    assert FB.verify_binding(com16, w, dirs, ok, bound=(1 << 15) - 1).ok


# --- the opening ledger -------------------------------------------------------------------------------

def test_binding_is_charged_to_the_ledger_and_refused_past_the_budget(setup):
    from blindproof.zk.commit import pcs
    from blindproof.zk.proof.keys import OpeningBudgetExceeded, OpeningLedger

    qm, _, _, w, dirs, _ = setup
    com, state = commit_model(qm.spec, qm.weights, CommitmentKey.generate(), budget=2)
    state.ledger = None
    with pytest.raises(ValueError, match="ledger"):  # never an uncounted opening of the weights
        FB.prove_binding(com, state, w, dirs)
    ledger = OpeningLedger()
    proof = FB.prove_binding(com, state, w, dirs, ledger=ledger)
    assert FB.verify_binding(com, w, dirs, proof).ok
    opened = ledger.opened(com.weights)
    parts = FB.BindingProof.from_bytes(proof)
    companion = pcs.Commitment.from_bytes(parts.companion_commitment)
    w_open = pcs.Opening.from_bytes(parts.weight_opening, [com.weights, companion])  # stacked with the companion
    assert set(w_open.positions.tolist()) <= opened  # the binding's positions, after the well-formedness ones
    assert len(opened) > len(set(w_open.positions.tolist()))
    # budget 2: well-formedness, this proof, and the opening kept for a rotation
    with pytest.raises(OpeningBudgetExceeded, match="rotat"):
        FB.prove_binding(com, state, w, dirs, ledger=ledger)
    assert ledger.opened(com.weights) == opened


# --- format v2: the weight's value is randomized (what a proof reveals about W) ------------------------

def _replay(com, w, dirs, proof):
    """What any verifier computes from public bytes: the rows point ``r``, the sumcheck point ``s``, the
    messages, and the transcript challenges (the verifier's own transcript, replayed)."""
    from blindproof.zk.commit import pcs
    from blindproof.zk.iop import mle
    from blindproof.zk.iop.layout import dim_vars
    from blindproof.zk.iop.transcript import Transcript

    m, n = com.spec.weights[w].shape
    a, b = dim_vars(m), dim_vars(n)
    parts = FB.BindingProof.from_bytes(proof)
    tr = Transcript(FB.DOMAIN, FB._statement(com, w, np.asarray(dirs, dtype=np.int64), FB.INT8_BOUND))
    tr.absorb_digest("binding/mask_commitment", pcs.Commitment.from_bytes(parts.mask_commitment).digest())
    tr.absorb_digest("binding/companion_commitment", pcs.Commitment.from_bytes(parts.companion_commitment).digest())
    r = tr.challenge_exts("binding/rows", a)
    beta = tr.challenge_exts("binding/beta", dirs.shape[0])
    d_tab = FB._combined_directions(np.asarray(dirs, dtype=np.int64), beta, 1 << b)
    rounds = FB.Rounds.from_bytes(parts.sumcheck, b)
    log = _Recorder(tr)
    s, why = FB._verify_rounds(rounds, lambda pt: mle.evaluate(d_tab, pt), log)
    assert s is not None, why
    return r, s, rounds, d_tab, log.challenges


class _Recorder:
    """A transcript that records its challenges (to replay them with other tables)."""

    def __init__(self, tr=None, challenges=None):
        self.tr, self.challenges, self.i = tr, list(challenges or []), 0

    def absorb_ext(self, label, v):
        if self.tr is not None:
            self.tr.absorb_ext(label, v)

    def challenge_ext(self, label):
        if self.tr is not None:
            v = self.tr.challenge_ext(label)
            self.challenges.append(v)
            return v
        self.i += 1
        return self.challenges[self.i - 1]


def _weight_table(qm, w):
    from blindproof.zk.field import babybear as F
    from blindproof.zk.iop.layout import dim_vars

    m, n = qm.weights[w].shape
    full = np.zeros((1 << dim_vars(m), 1 << dim_vars(n)), dtype=np.uint32)
    full[:m, :n] = F.from_signed(np.asarray(qm.weights[w], dtype=np.int64))
    return full.reshape(-1)


def _base_rows(point, coef=None) -> np.ndarray:
    """The four base-field coefficient rows of ``X ↦ coef·X̃(point)`` on the entries of ``X``."""
    from blindproof.zk.field import babybear as F
    from blindproof.zk.iop import mle

    eq = mle.eq_table(point)
    if coef is not None:
        eq = F.emul(eq, np.asarray(coef, dtype=np.uint32)[None, :])
    return np.ascontiguousarray(eq.T).astype(np.int64)


def test_the_revealed_value_is_randomized_and_its_functionals_do_not_leak(setup):
    """Format 1 revealed ``W̃(r, s)`` at a transcript point: 4 base linear equations in ``W`` per proof
    (an attacker stacks them over many proofs). Now the value is ``Ŵ(r, s)``: it differs from ``W̃(r, s)``,
    the equations ``v_i = eq(p_i)·W`` are false for the true ``W``, and over 8 proofs no combination of
    the revealed values cancels the fresh randomizers without cancelling ``W``:
    rank([R | W]) − rank(R) = 0 (as tests/test_zk_leakage_rank.py counts model proofs)."""
    from blindproof.zk.iop import mle
    from blindproof.zk.proof.keys import OpeningLedger

    qm, com, state, w, dirs, _ = setup
    m, n = qm.weights[w].shape
    rule = FB.blinding_rule(w, m, n)
    table = _weight_table(qm, w)
    k = 8
    r_rows, w_rows = [], []
    for i in range(k):
        proof = FB.prove_binding(com, state, w, dirs[:4], ledger=OpeningLedger())
        assert FB.verify_binding(com, w, dirs[:4], proof).ok
        r, s, rounds, _, _ = _replay(com, w, dirs[:4], proof)
        p, v = np.concatenate([r, s]), rounds.w_value
        assert not np.array_equal(v, mle.evaluate(table, p)), f"proof {i} reveals W̃(r, s)"
        _, phi_point, coef = rule.settle_terms(p)[1]
        rr = np.zeros((4, k << rule.r_vars), dtype=np.int64)  # each proof's R is fresh: its own block
        rr[:, i << rule.r_vars:(i + 1) << rule.r_vars] = _base_rows(phi_point, coef)
        r_rows.append(rr)
        w_rows.append(_base_rows(p))
    R, W = np.concatenate(r_rows), np.concatenate(w_rows)
    rank_r = _rank_mod_p(R)
    assert rank_r == 4 * k  # every revealed value carries 4 independent base forms of its randomizer
    assert _rank_mod_p(np.concatenate([R, W], axis=1)) - rank_r == 0
    # the same count on format 1's values (no randomizer): all 4·k equations are about W
    assert _rank_mod_p(W) == 4 * k


def _view_matrix(setup, base_mask: bool = False):
    """Everything one proof's sumcheck shows (mask sum, round values, ``Ŵ(r, s)``, ``G(s)``; the two
    openings reveal these values and nothing else) as base linear forms, with the real proof's
    challenges: columns for the randomness (mask coefficients, ``R``) and for the table ``W̃(r, ·)`` the
    sumcheck reads (its 4·2^b base coordinates: every ``W`` gives one, every one comes from some ``W``).
    ``base_mask``: the mask restricted to base-field coefficients (as ``sumcheck.MaskPolynomial``)."""
    from blindproof.zk.field import babybear as F
    from blindproof.zk.proof.keys import OpeningLedger
    from blindproof.zk.iop import blind as BL

    qm, com, state, w, dirs, _ = setup
    m, n = qm.weights[w].shape
    b = 6
    rule = FB.blinding_rule(w, m, n)
    proof = FB.prove_binding(com, state, w, dirs[:4], ledger=OpeningLedger())
    r, _, _, d_tab, challenges = _replay(com, w, dirs[:4], proof)

    def view(w_r, R, coef):
        out, _ = FB._prove_rounds(w_r, d_tab, BL.blinder(rule, R, 0, FB._view(r, b)), S.MaskPolynomial(coef),
                                  _Recorder(challenges=challenges))
        return np.concatenate([out.mask_sum[None], *out.rounds, out.w_value[None], out.mask_value[None]]
                              ).reshape(-1).astype(np.int64)

    def statement(w_r):  # Σ_x W̃(r, x)·D̃(x), public (it is 0): the final check reveals it
        return F.edot_ext(w_r, d_tab).reshape(-1).astype(np.int64)

    zw, zr, zc = np.zeros((1 << b, 4), np.uint32), np.zeros(1 << rule.r_vars, np.uint32), np.zeros((b, 4, 4), np.uint32)
    base = view(zw, zr, zc)
    cols_rand, cols_w, cols_s = [], [], []
    for i, d in enumerate(FB._round_degrees(b)):
        for t in range(d + 1):
            for c in range(1 if base_mask else 4):
                u = zc.copy()
                u[i, t, c] = 1
                cols_rand.append(view(zw, zr, u) - base)
    for j in range(1 << rule.r_vars):
        u = zr.copy()
        u[j] = 1
        cols_rand.append(view(zw, u, zc) - base)
    for j in range(1 << b):
        for c in range(4):
            u = zw.copy()
            u[j, c] = 1
            cols_w.append(view(u, zr, zc) - base)
            cols_s.append(statement(u))
    rand, wcols, stmt = np.stack(cols_rand, 1) % F.P, np.stack(cols_w, 1) % F.P, np.stack(cols_s, 1) % F.P
    # leak = dim of what the values say about W̃(r, ·) beyond the statement, once the randomness cancels
    known = np.concatenate([np.zeros((4, rand.shape[1]), np.int64), stmt], 1)
    full = np.concatenate([np.concatenate([rand, wcols], 1), known])
    return rand, _rank_mod_p(full) - _rank_mod_p(rand) - _rank_mod_p(stmt)


def test_the_sumcheck_messages_reveal_no_functional_of_the_weight(setup):
    """Every value of the sumcheck is masked by fresh randomness: over its 16 extension values,
    rank([rand | W]) − rank(rand) is the statement's own 4 base forms (``Σ_x W̃(r, x)·D̃(x) = 0``, which
    the final check reveals) and nothing more. With a base-field mask (``sumcheck.MaskPolynomial``'s) the same count is
    positive: ``ρ·g`` covers a quarter of each round's base dimensions (and ``prove_mask_opening``'s
    unmasked reduction would reveal ``g`` itself)."""
    rand, leak = _view_matrix(setup)
    assert _rank_mod_p(rand) == rand.shape[0] - 4  # 64 base values less the final check (one extension relation)
    assert leak == 0
    _, leak = _view_matrix(setup, base_mask=True)
    assert leak >= 24, leak


@pytest.mark.parametrize("weight", [[[1, -1, 0, 2], [0, 3, -3, 1]], [[1, -1], [2, -2], [0, 0]]])
def test_small_weights(weight):
    """Two column variables (the randomizer over a row and a column variable), and one (over the rows
    only; the sumcheck is its blinded round)."""
    from blindproof.zk.proof.keys import OpeningLedger

    m, n = np.shape(weight)
    torch.manual_seed(0)
    qm = quant.quantize(MLP((n, m, 2)), torch.randn(16, n))
    weights = dict(qm.weights) | {"l0.acc.weight": np.array(weight, dtype=np.int64)}
    com, state = commit_model(qm.spec, weights, CommitmentKey.generate())
    dirs = FB.published_directions(weights["l0.acc.weight"])
    proof = FB.prove_binding(com, state, "l0.acc.weight", dirs, ledger=OpeningLedger())
    assert FB.verify_binding(com, "l0.acc.weight", dirs, proof).ok
    bad = np.concatenate([dirs[:1], np.eye(1, n, dtype=np.int64)])
    forged = FB.prove_binding(com, state, "l0.acc.weight", bad, _check=False, ledger=OpeningLedger())
    assert not FB.verify_binding(com, "l0.acc.weight", bad, forged).ok


def test_blinding_rule_from_public_shapes():
    rule = FB.blinding_rule("l0.acc.weight", 32, 64)  # 5 row + 6 column variables
    assert rule.tensor == "w:l0.acc.weight" and rule.s == 10 and rule.A == (8, 9) and rule.r_vars == 4
    assert FB._round_degrees(6) == (2, 2, 2, 2, 2, 3)  # Ŵ has degree 2 in the last round
    small = FB.blinding_rule("W", 1, 4)  # one variable above x_s: an extension-valued constant Φ, 4 dimensions
    assert small.A == () and small.ext and small.r_vars == 4 and BL.span(small.s, small.A) == 4
    with pytest.raises(ValueError, match="too few variables"):
        FB.blinding_rule("W", 1, 2)


def _swap_companion(monkeypatch, fn):
    """Let a cheating prover commit ``fn(tensors)`` as its companion instead of the randomizer it uses."""
    from blindproof.zk.commit import pcs

    real = pcs.commit_companion
    monkeypatch.setattr(pcs, "commit_companion",
                        lambda base, tensors=None, rng=None: real(base, fn(dict(tensors)), rng))


def test_rejects_a_companion_that_is_not_the_sumcheck_randomizer(setup, monkeypatch):
    from blindproof.zk.field import babybear as F
    from blindproof.zk.proof.keys import OpeningLedger

    _, com, state, w, dirs, _ = setup
    rng = np.random.default_rng(5)
    _swap_companion(monkeypatch, lambda t: {k: F.random(rng, v.size) for k, v in t.items()})
    forged = FB.prove_binding(com, state, w, dirs, ledger=OpeningLedger())
    res = FB.verify_binding(com, w, dirs, forged)
    assert not res.ok and "weight opening" in res.reason, res.reason


@pytest.mark.parametrize("change", ["extra tensor", "larger randomizer", "no randomizer", "other code"])
def test_rejects_a_companion_of_another_layout(setup, change):
    """The verifier fixes the companion's layout from public shapes: the weights' code, the mask rows and
    exactly the randomizer table of :func:`blinding_rule`'s size."""
    from blindproof.zk.commit import pcs

    qm, com, _, w, dirs, proof = setup
    table = FB.blinding_rule(w, 32, 64).table
    rand = np.arange(16, dtype=np.uint32)
    base = com.weights.layout
    tensors = {"extra tensor": {table: rand, "zk~blind:w:extra": rand}, "larger randomizer": {table: np.tile(rand, 2)},
               "no randomizer": {}, "other code": {table: rand}}[change]
    if change == "other code":  # a companion of a fresh (one-opening) commitment's code
        other, _ = pcs.commit({"x": np.arange(1 << 14, dtype=np.uint32)}, openings=4)
        base = other.layout
    comp, _ = pcs.commit_companion(base, tensors, rng=np.random.default_rng(0))
    parts = FB.BindingProof.from_bytes(proof)
    res = FB.verify_binding(com, w, dirs, dataclasses.replace(parts, companion_commitment=comp.to_bytes()).to_bytes())
    assert not res.ok and "layout" in res.reason, res.reason


def test_rejects_a_tampered_value(setup, monkeypatch):
    """The weight's value in the sumcheck (its final value) and in the stacked opening's linear claim."""
    from blindproof.zk.field import babybear as F
    from blindproof.zk.commit import pcs
    from blindproof.zk.proof.keys import OpeningLedger

    _, com, state, w, dirs, proof = setup
    parts = FB.BindingProof.from_bytes(proof)
    for field in ("w_value", "mask_value"):
        rounds = FB.Rounds.from_bytes(parts.sumcheck, 6)
        setattr(rounds, field, F.eadd(getattr(rounds, field), F.eone()))
        bad = dataclasses.replace(parts, sumcheck=rounds.to_bytes()).to_bytes()
        res = FB.verify_binding(com, w, dirs, bad)
        assert not res.ok and "sumcheck" in res.reason, res.reason

    real = pcs.open_claims

    def shifted(states, claims, tr, **kw):
        claims = [dataclasses.replace(c, value=F.eadd(c.value, F.eone())) if isinstance(c, pcs.LinearClaim) else c
                  for c in claims]
        return real(states, claims, tr, **kw)

    monkeypatch.setattr(pcs, "open_claims", shifted)
    forged = FB.prove_binding(com, state, w, dirs, ledger=OpeningLedger())
    res = FB.verify_binding(com, w, dirs, forged)
    assert not res.ok and "weight opening" in res.reason, res.reason


def test_rejects_a_mask_commitment_that_is_not_the_sumcheck_mask(setup, monkeypatch):
    from blindproof.zk.field import babybear as F
    from blindproof.zk.proof.keys import OpeningLedger

    _, com, state, w, dirs, _ = setup
    real = S.MaskPolynomial.committed_table

    def other(self):
        t = real(self).copy()
        t[1] = (int(t[1]) + 1) % F.P  # the committed table differs from the mask the rounds used
        return t

    monkeypatch.setattr(S.MaskPolynomial, "committed_table", other)
    forged = FB.prove_binding(com, state, w, dirs, ledger=OpeningLedger())
    res = FB.verify_binding(com, w, dirs, forged)
    assert not res.ok and "mask opening" in res.reason, res.reason


def test_rejects_format_v1_and_damaged_companions(setup):
    _, com, _, w, dirs, proof = setup
    assert proof[4:6] == (2).to_bytes(2, "little")
    res = FB.verify_binding(com, w, dirs, proof[:4] + (1).to_bytes(2, "little") + proof[6:])
    assert not res.ok and "version" in res.reason
    parts = FB.BindingProof.from_bytes(proof)
    for comp in (parts.mask_commitment, b"", parts.companion_commitment[:-1]):
        res = FB.verify_binding(com, w, dirs, dataclasses.replace(parts, companion_commitment=comp).to_bytes())
        assert not res.ok
    from blindproof.zk.commit import pcs

    for other in ({"not_mask": np.arange(16, dtype=np.uint32)}, {FB.MASK_TABLE: np.arange(1 << 8, dtype=np.uint32)}):
        c, _ = pcs.commit(other, com.params, rng=np.random.default_rng(0))
        res = FB.verify_binding(com, w, dirs, dataclasses.replace(parts, mask_commitment=c.to_bytes()).to_bytes())
        assert not res.ok and "exactly the mask table" in res.reason
    weak, _ = pcs.commit({FB.MASK_TABLE: np.arange(1 << 7, dtype=np.uint32)}, pcs.PcsParams(security_bits=20),
                         rng=np.random.default_rng(0))  # the prover's own, weaker code
    res = FB.verify_binding(com, w, dirs, dataclasses.replace(parts, mask_commitment=weak.to_bytes()).to_bytes())
    assert not res.ok and "parameters give" in res.reason
    start = proof.index(parts.companion_commitment)
    rng = np.random.default_rng(11)
    for pos in rng.integers(start, start + len(parts.companion_commitment), 24):
        bad = bytearray(proof)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        assert not FB.verify_binding(com, w, dirs, bytes(bad)).ok, f"flip at companion byte {pos - start}"
