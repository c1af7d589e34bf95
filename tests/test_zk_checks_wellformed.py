"""The well-formedness verifier's checks that tests/test_zk_wellformed.py does not isolate: each test is a
cheating model owner's proof that the check alone refuses, confirmed to be accepted with that check
deleted from blindproof/zk/proof/wellformed.py (or, where a docstring says "defence in depth", refused
by a later check with another reason).

Not tested here, being redundant: the weight layout rule in ``_check_weight_commitment`` (a weaker
weight layout's opening falls below the floor, which the final soundness check refuses; the
``ModelCommitment`` constructor refuses it first), and the aux layout's missing-column check (a claim
on a column that is not committed fails the aux opening)."""

from __future__ import annotations

import numpy as np
import pytest

from blindproof.zk.field import babybear as F
from blindproof.zk.commit import pcs
from blindproof.zk.proof import wellformed as WF
from blindproof.zk.ops import base as B
from blindproof.zk.iop import claims as CL
from blindproof.zk.iop import layout as LAY
from blindproof.zk.iop import masks as M
from blindproof.zk.iop.layout import canonical, weight_name

from test_zk_wellformed import _commit_tables, _forge, _parts, _spec, _weights


@pytest.fixture(scope="module")
def case():
    spec = _spec()
    return spec, _weights(np.random.default_rng(0))


def _tables(spec, w):
    return {weight_name(n): canonical(np.asarray(w[n], dtype=np.int64), ws.shape) for n, ws in spec.weights.items()}


def test_weight_commitment_holding_a_tensor_the_spec_lacks_is_rejected(case, monkeypatch):
    """``_check_weight_commitment``: a commitment with an extra (never read) tensor next to the spec's
    weights, and a proof made by a prover that skips its own check. Accepted without the check."""
    spec, w = case
    com, state = _commit_tables(spec, _tables(spec, w) | {"w:decoy": np.zeros(16, dtype=np.uint32)})
    monkeypatch.setattr(WF, "_check_weight_commitment", lambda spec, com, params: None)
    proof = WF.prove_wellformed(spec, state, _parts(spec, com)[2])
    monkeypatch.undo()
    res = WF.verify_wellformed(_parts(spec, com), proof)
    assert not res.ok and "does not hold exactly the spec's weights" in res.reason, res.reason


def _with_extra_aux(monkeypatch, extra):
    """Make the prover's aux commitment also hold ``extra(tensors)``'s tables."""
    real = pcs.commit_companion

    def commit(base, tensors=None, rng=None):
        return real(base, dict(tensors) | extra(tensors), rng)

    monkeypatch.setattr(pcs, "commit_companion", commit)


def test_aux_commitment_with_an_unexpected_tensor_is_rejected(case, monkeypatch):
    """``_check_aux_layout``: an aux tensor that is neither a column of the checks nor a mask (a
    second encoding of the same proof). Defence in depth: without the check the tensor is counted as
    a mask and the mask count refuses the proof."""
    spec, w = case
    com, state = _commit_tables(spec, _tables(spec, w))
    _with_extra_aux(monkeypatch, lambda t: {"junk": np.zeros(16, dtype=np.uint32)})
    proof = WF.prove_wellformed(spec, state, _parts(spec, com)[2])
    monkeypatch.undo()
    res = WF.verify_wellformed(_parts(spec, com), proof)
    assert not res.ok and "unexpected tensors" in res.reason, res.reason


def test_aux_commitment_with_an_unused_mask_is_rejected(case, monkeypatch):
    """The mask count: one more mask committed than the proof uses. Accepted without the check."""
    spec, w = case
    com, state = _commit_tables(spec, _tables(spec, w))

    def one_more_mask(tensors):
        n = sum(1 for k in tensors if k.startswith(M.mask_name(0)[:-1]))
        return {M.mask_name(n): np.zeros(16, dtype=np.uint32)}

    _with_extra_aux(monkeypatch, one_more_mask)
    proof = WF.prove_wellformed(spec, state, _parts(spec, com)[2])
    monkeypatch.undo()
    res = WF.verify_wellformed(_parts(spec, com), proof)
    assert not res.ok and "masks, the proof uses" in res.reason, res.reason


def test_int32_padding_check_with_a_false_indicator_value_is_rejected(case, monkeypatch):
    """The int32 padding zero-check's indicator value: junk (9, in range) in the padding of the int32
    bias, and a prover that runs the zero-check of ``(1 − ind)·W`` with ``1 − ind`` replaced by zeros,
    so every round is consistent. Accepted without the check."""
    spec, w = case
    monkeypatch.setattr(WF, "_padding_table", lambda shape: np.zeros(1 << 2, dtype=np.uint32))
    com, proof = _forge(spec, w, {"b": [(3, 9)]})
    monkeypatch.undo()
    res = WF.verify_wellformed(_parts(spec, com), proof)
    assert not res.ok and "wrong indicator value" in res.reason, res.reason


def test_proof_below_the_floor_is_rejected(case):
    """The floor: weights and aux columns committed under 20-bit parameters, every layout the rule's
    for them, stated as such through the ``(spec, commitment, parameters)`` form (a
    ``ModelCommitment`` refuses such parameters itself, C3). Accepted without the check."""
    spec, w = case
    weak = pcs.PcsParams(security_bits=20.0)
    from blindproof.zk.proof.keys import CommitmentKey
    com, state = pcs.commit(_tables(spec, w), weak, rng=CommitmentKey.generate().rng("test"), openings=9)
    proof = WF.prove_wellformed(spec, state, weak)
    res = WF.verify_wellformed((spec, com, weak), proof)
    assert not res.ok and "below the floor" in res.reason, res.reason


# --- the verifier's own guards: each rejection names its check ---------------------------------------------
# The checks below cannot be told apart by acceptance (without them the input still fails, by the
# exception guard of ``verify_wellformed`` or by a later check); the tests pin their reasons.


@pytest.fixture(scope="module")
def statement(case):
    """A weight commitment of the spec (no proof needed: these inputs never reach the op checks)."""
    spec, w = case
    com, _ = _commit_tables(spec, _tables(spec, w))
    return _parts(spec, com)


@pytest.mark.parametrize("data", ["not bytes", None, 7, [1, 2]], ids=["str", "None", "int", "list"])
def test_a_proof_that_is_not_bytes_is_rejected(statement, data):
    """The type check on the proof (without it, ``bytes(data)`` raises or makes junk bytes)."""
    res = WF.verify_wellformed(statement, data)  # type: ignore[arg-type]
    assert not res.ok and "the proof must be bytes" in res.reason, res.reason


def _container(aux: bytes) -> bytes:
    return WF.WellformedProof(aux, B.OpProof(), B.OpProof(), b"").to_bytes()


@pytest.mark.parametrize("data", [b"", b"BPWF", b"BPWF" + b"\0" * 64, "container+1", "junk aux"],
                         ids=["empty", "magic", "zeros", "container+1", "junk aux"])
def test_a_malformed_proof_is_rejected_as_malformed(statement, data):
    """The parse of the container and of its aux commitment: an empty, truncated or padded container
    and a well-formed container whose aux commitment is not a commitment (without the check the
    parse error reaches the guard, or the verifier runs on with no proof)."""
    if data == "container+1":
        data = _container(b"") + b"\0"
    elif data == "junk aux":
        data = _container(b"\x01\x02 not a commitment")
    res = WF.verify_wellformed(statement, data)
    assert not res.ok and "malformed proof" in res.reason, res.reason


def test_bytearray_and_memoryview_proofs_are_read(statement):
    """The type check admits every bytes-like proof: a malformed one is refused as malformed."""
    for data in (bytearray(b"BPWF"), memoryview(b"BPWF")):
        res = WF.verify_wellformed(statement, data)
        assert not res.ok and "malformed proof" in res.reason, res.reason


def _flag_claims(spec):
    plan = WF._plan(spec)
    flag = next(f for f, w in plan.flags.items() if w == weight_name("W"))
    n = LAY.n_vars(plan.shapes[weight_name("W")])
    point = F.random(np.random.default_rng(3), 4 * n).reshape(n, 4)
    return plan, flag, point


def test_indicator_claim_at_a_point_of_another_size_is_rejected(case):
    """``_without_indicators``: a claim on a public indicator column (plain, or a term of a linear
    claim) read at a point with one coordinate too few or too many. The lookups derive these points
    from the spec's shapes, so no proof reaches this; it keeps the indicator's evaluation from being
    asked about another table."""
    spec, _ = case
    plan, flag, point = _flag_claims(spec)
    one = np.array([1, 0, 0, 0], dtype=np.uint32)
    for bad in (point[1:], np.concatenate([point, point[:1]])):
        plain = CL.Claim(flag, bad, F.ezero())
        linear = CL.LinearClaim(((flag, bad, one), (weight_name("W"), point, one)), F.ezero())
        for c in (plain, linear):
            with pytest.raises(CL.Reject, match="read at a point of another size"):
                WF._without_indicators(plan, [c])


def test_false_plain_claim_on_an_indicator_column_is_rejected(case):
    """``_without_indicators``: a plain claim on a public indicator column is checked by the verifier
    (never opened): a false value is refused, the true one is settled and dropped."""
    spec, _ = case
    plan, flag, point = _flag_claims(spec)
    true = LAY.indicator_eval(plan.real[weight_name("W")], point)
    assert WF._without_indicators(plan, [CL.Claim(flag, point, true)]) == []
    with pytest.raises(CL.Reject, match=f"indicator column {flag!r} has a wrong value"):
        WF._without_indicators(plan, [CL.Claim(flag, point, F.eadd(true, F.eone()))])
