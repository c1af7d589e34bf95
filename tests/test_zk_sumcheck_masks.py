"""Zero-knowledge masks of the op sumchecks in whole-model proofs: completeness and must-reject tests."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("blindproof.zk.proof.program")

from blindproof.zk.field import babybear as F  # noqa: E402
from blindproof.zk.iop import lookup as L  # noqa: E402
from blindproof.zk.iop import mle  # noqa: E402
from blindproof.zk.commit import pcs  # noqa: E402
from blindproof.zk.iop import sumcheck as S  # noqa: E402
from blindproof.zk.proof.keys import CommitmentKey  # noqa: E402
from blindproof.zk.ops import base as B  # noqa: E402
from blindproof.zk.iop import claims as CL
from blindproof.zk.iop import masks as M  # noqa: E402
from blindproof.zk.proof.program import ProgramProof  # noqa: E402
from blindproof.zk.proof.proof_file import ModelProof  # noqa: E402
from blindproof.zk.proof.prover import ModelProver, example_input, quantized_workload  # noqa: E402
from blindproof.zk.proof.verifier import verify_model_proof  # noqa: E402

KEY = CommitmentKey(b"\x09" * 32)
NAME = "mlp-784-56-10"


@pytest.fixture(scope="module")
def mlp():
    prover = ModelProver.create(quantized_workload(NAME), KEY)
    inputs = prover.model.encode(example_input(NAME))
    proof = prover.prove(inputs, rng=np.random.default_rng(0))
    return prover, proof


def _spec_of(part: bytes) -> S.SumcheckShape | None:
    """The shape a serialized sumcheck declares in its header (None for other parts)."""
    return S.shape_of_bytes(part)


def _edit_sumchecks(proof: ModelProof, edit) -> bytes:
    """Re-encode the proof after ``edit(sumcheck, parts_after)`` on every masked op sumcheck;
    ``edit`` returns the new sumcheck and how many following parts to drop."""
    prog = ProgramProof.from_bytes(proof.program_proof, _n_ops(proof))
    for op in prog.op_proofs:
        if op is None:
            continue
        out, i = [], 0
        while i < len(op.parts):
            part, spec = op.parts[i], _spec_of(op.parts[i])
            i += 1
            if spec is not None:
                sc = S.SumcheckProof.from_bytes(part, spec)
                if sc.mask_sum is not None:
                    sc, drop = edit(sc)
                    part = sc.to_bytes(spec)
                    i += drop
            out.append(part)
        op.parts = out
    fields = dict(proof.__dict__)
    fields["program_proof"] = prog.to_bytes()
    return ModelProof(**fields).to_bytes()


def _n_ops(proof: ModelProof) -> int:
    return int.from_bytes(proof.program_proof[6:10], "little")


def _masked_count(proof: ModelProof) -> int:
    seen = []
    _edit_sumchecks(proof, lambda sc: (seen.append(1) or sc, 0))
    return len(seen)


def _lookup_mask_count(proof: ModelProof) -> int:
    """Committed randomness of the batched lookups, from each lookup proof's header: per statement
    the table's log size, the group sizes and the repetitions give its trees (one blinding table
    each) and their depth (per GKR layer: its mask and the two randomizers of the layer it reads)."""
    total = 0
    for part in ProgramProof.from_bytes(proof.program_proof, _n_ops(proof)).lookups.parts:
        if isinstance(part, bytes) and part[:4] == b"BPLK":
            at, depths = 7, []
            for _ in range(part[6]):
                table_log, _, n_groups, reps = part[at:at + 4]
                lay = L.tree_layout(tuple(part[at + 4:at + 4 + n_groups]), table_log, True)
                depths += [lay.depth] * reps
                at += 4 + n_groups
            total += len(depths) + 3 * max(depths)
    return total


def test_every_op_sumcheck_is_masked_and_its_mask_committed(mlp):
    prover, proof = mlp
    assert verify_model_proof(prover.commitment, proof.to_bytes()).ok
    masks = [n for n in pcs.Commitment.from_bytes(proof.trace_commitment).layout.names if M.is_mask(n)]
    assert masks and len(masks) == _masked_count(proof) + _lookup_mask_count(proof)
    assert _lookup_mask_count(proof) > 0
    prog = ProgramProof.from_bytes(proof.program_proof, _n_ops(proof))
    for op in prog.op_proofs:  # an unmasked sumcheck (n > 0) is only ever a mask opening
        specs = [_spec_of(p) for p in (op.parts if op else [])]
        masked = [s is not None and S.SumcheckProof.from_bytes(p, s).mask_sum is not None
                  for p, s in zip(op.parts if op else [], specs)]
        for i, s in enumerate(specs):
            if s is not None and s.n_vars > 0 and not masked[i]:
                assert i > 0 and masked[i - 1]


def test_rejects_stripped_masks(mlp):
    prover, proof = mlp

    def strip(sc):
        return S.SumcheckProof(sc.round_evals, sc.final_evals), 1  # and drop the mask opening

    res = verify_model_proof(prover.commitment, _edit_sumchecks(proof, strip))
    assert not res.ok and "masked" in res.reason


def test_rejects_tampered_mask_sum(mlp):
    prover, proof = mlp

    def bump(sc):
        return S.SumcheckProof(sc.round_evals, sc.final_evals, F.eadd(sc.mask_sum, F.eone()), sc.mask_eval), 0

    assert not verify_model_proof(prover.commitment, _edit_sumchecks(proof, bump)).ok


def test_rejects_tampered_mask_eval(mlp):
    prover, proof = mlp

    def bump(sc):
        return S.SumcheckProof(sc.round_evals, sc.final_evals, sc.mask_sum, F.eadd(sc.mask_eval, F.eone())), 0

    assert not verify_model_proof(prover.commitment, _edit_sumchecks(proof, bump)).ok


def test_rejects_masks_missing_from_the_trace_commitment(mlp, monkeypatch):
    """A prover that commits no masks cannot open the mask claims: the verifier's opening rejects."""
    prover, proof = mlp
    orig = pcs.commit

    def commit_without_masks(tables, params, rng=None, **kw):
        return orig({k: v for k, v in tables.items() if not M.is_mask(k)}, params, rng=rng, **kw)

    monkeypatch.setattr(pcs, "commit", commit_without_masks)
    with pytest.raises(ValueError):  # an honest prover notices it cannot open them
        prover.prove(prover.model.encode(example_input(NAME)), rng=np.random.default_rng(1))


def test_masks_are_fresh_per_proof(mlp):
    prover, proof = mlp
    again = prover.prove(prover.model.encode(example_input(NAME)), rng=np.random.default_rng(2))
    assert verify_model_proof(prover.commitment, again.to_bytes()).ok
    assert again.program_proof != proof.program_proof


def test_prover_masks_follow_their_plan():
    masks = M.ProverMasks.sample([(3, 2), (5, 3)], np.random.default_rng(0))
    assert set(masks.tables()) == {M.mask_name(0), M.mask_name(1)}
    assert masks.take(3, 2)[0] == M.mask_name(0)
    with pytest.raises(ValueError):
        masks.take(4, 3)
    with pytest.raises(ValueError):
        masks.check_all_used()


def test_unmasked_context_rejects_a_masked_sumcheck_and_vice_versa():
    from blindproof.zk.iop.transcript import Transcript

    tabs = [F.random(np.random.default_rng(3), 8), F.random(np.random.default_rng(4), 8)]
    spec = S.SumcheckSpec.make(3, 2, [(1, (0, 1))])
    claim = S.hypercube_sum(spec, tabs)
    masks = M.ProverMasks.sample([(3, 2)], np.random.default_rng(5))
    pctx = B.VerifierContext(Transcript(b"t"), None, {}, masks=masks)
    proof = B.OpProof()
    B.prove_sum(pctx, proof, 3, tabs, [(1, (0, 1))], claim)
    vctx = B.VerifierContext(Transcript(b"t"), None, {}, masks=M.VerifierMasks())
    B.verify_sum(vctx, B.ProofReader(proof), 3, 2, [(1, (0, 1))], claim)
    assert [{t for t, _, _ in c.terms} for c in vctx.masks.claims] == [{M.mask_name(0)}]
    assert np.array_equal(vctx.masks.claims[0].value, pctx.masks.claims[0].value)
    table = masks.tables()[M.mask_name(0)]  # the claim holds on the committed table, and says g(r)
    opened = F.ezero()
    for _, pt, coef in vctx.masks.claims[0].terms:
        opened = F.eadd(opened, F.emul(coef, mle.evaluate(table, pt)))
    assert np.array_equal(opened, vctx.masks.claims[0].value)
    with pytest.raises(CL.Reject):
        B.verify_sum(B.VerifierContext(Transcript(b"t"), None, {}), B.ProofReader(proof), 3, 2, [(1, (0, 1))], claim)
    plain = B.OpProof()
    B.prove_sum(B.VerifierContext(Transcript(b"t"), None, {}), plain, 3, tabs, [(1, (0, 1))], claim)
    with pytest.raises(CL.Reject, match="masked"):
        B.verify_sum(B.VerifierContext(Transcript(b"t"), None, {}, masks=M.VerifierMasks()), B.ProofReader(plain),
                     3, 2, [(1, (0, 1))], claim)
