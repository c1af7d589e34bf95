"""The reused weight commitment stays hiding over many proofs (docs/design-zk.md §2.3, §2.4).

Real mlp-784-56-10 proofs, seen as any verifier sees them (``bench_zk_leakage.observe``):

* attack (b), pooled opened columns: within the opening budget the distinct positions stay below the
  code's dimension ``C + t_h``, so the interpolation returns nothing; before this change 9 proofs gave
  every weight;
* attack (c), row combinations: each proof's revealed rows carry fresh companion mask rows, so the
  equations on the weight rows stay at rank 0 over 40 proofs (10 gave every row before);
* the budget: the prover refuses the proof that would exceed ``t_h − t`` positions (the last ``t`` are
  kept for a rotation certificate, tests/test_zk_rotation.py), the ledger survives a restart, a corrupt
  ledger is an error;
* soundness of the stacked opening: a companion from another proof, a companion not absorbed, a
  changed companion column, a wrong linear-claim coefficient or a term moved to the other commitment
  are rejected.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from blindproof.zk.field import babybear as F
from blindproof.zk.commit import pcs
from blindproof.zk.iop import mle
from blindproof.zk.proof.commitment import commit_model
from blindproof.zk.proof.keys import CommitmentKey, LedgerError, OpeningBudgetExceeded, OpeningLedger
from blindproof.zk.proof.proof_file import ModelProof
from blindproof.zk.proof.prover import ModelProver, PcsProverSettler, quantized_workload
from blindproof.zk.iop.transcript import Transcript
from blindproof.zk.proof.verifier import verify_model_proof

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_zk_leakage as L  # noqa: E402

NAME = "mlp-784-56-10"


@pytest.fixture(scope="module")
def qm():
    return quantized_workload(NAME)


def _inputs(prover: ModelProver, i: int):
    from blindproof.models.workloads import get_workload

    return prover.model.encode(get_workload(NAME).example_input(seed=1000 + i, batch=1))


def _proofs(prover: ModelProver, n: int) -> list[bytes]:
    return [prover.prove(_inputs(prover, i)).to_bytes() for i in range(n)]


# --- leakage -------------------------------------------------------------------------------------------

def test_columns_within_the_budget_determine_nothing_and_the_next_proof_is_refused(qm, tmp_path):
    key = CommitmentKey.generate()
    key.save(tmp_path / "m.key")
    prover = ModelProver.create(qm, key)  # the default budget, ledger beside the key file
    lay = prover.commitment.weights.layout
    assert prover.commitment.budget == 8 and lay.hiding_symbols == 9 * lay.n_queries and not lay.masks
    assert prover.ledger.path == tmp_path / "m.key.ledger"
    obs = []
    for i in range(prover.openings_left()):
        data = prover.prove(_inputs(prover, i)).to_bytes()
        assert verify_model_proof(prover.commitment, data).ok
        obs.append(L.observe(prover.commitment, data))
    assert len(obs) >= prover.commitment.budget - 1  # the last opening is kept for a rotation certificate
    res = L.attack_columns(obs, lay)
    assert res.proofs_needed is None and res.recovered is None
    distinct = res.progress[-1]
    assert distinct <= lay.hiding_symbols < lay.n_cols + lay.hiding_symbols
    # any t_h positions of a row are uniform (Vandermonde in the t_h hiding symbols), so every
    # weight table is consistent with what was seen; the attack needs C + t_h positions
    assert all(o.columns.shape[1] > lay.n_rows for o in obs)  # each opening also carries companion rows
    # the next proof could open up to t new positions: refused before any work
    with pytest.raises(OpeningBudgetExceeded, match="budget"):
        prover.prove(_inputs(prover, 99))


def test_row_combinations_give_no_equation_on_the_weights(qm):
    """Attack (c) with four times the 10 proofs it needed: rank 0 on the weight rows."""
    prover = ModelProver.create(qm, CommitmentKey(b"\x21" * 32), budget=40, ledger=OpeningLedger())
    obs = [L.observe(prover.commitment, d) for d in _proofs(prover, 40)]
    res = L.attack_rows(obs, prover.commitment.weights.layout)
    assert res.progress == [0] * 40 and res.proofs_needed is None
    # the attack itself still works: read as if the masks were not there (as when they were the weight
    # commitment's own rows, fixed by the key), every proof gives 8 equations on the weight rows
    n_w = prover.commitment.weights.layout.n_rows
    stripped = [dataclasses.replace(o, row_weights=o.row_weights[:n_w], gammas=o.gammas[:, :n_w]) for o in obs[:3]]
    assert L.attack_rows(stripped, prover.commitment.weights.layout).progress == [8, 16, 24]


# --- the ledger ------------------------------------------------------------------------------------------

def test_ledger_survives_a_restart_and_refuses_past_the_budget(qm, tmp_path):
    key = CommitmentKey.generate()
    key.save(tmp_path / "k")
    p1 = ModelProver.create(qm, CommitmentKey.load(tmp_path / "k"), budget=2)
    wf = len(p1.ledger.opened(p1.commitment.weights))  # the well-formedness opening, charged at create
    assert 0 < wf <= p1.commitment.weights.layout.n_queries
    p1.prove(_inputs(p1, 0))
    after_one = p1.ledger.opened(p1.commitment.weights)
    # a new process: the key file finds its ledger, which holds the positions already opened
    p2 = ModelProver.create(qm, CommitmentKey.load(tmp_path / "k"), budget=2)
    assert p2.ledger.opened(p2.commitment.weights) == after_one
    while p2.openings_left() > 0:
        p2.prove(_inputs(p2, 1))
    with pytest.raises(OpeningBudgetExceeded):
        p2.prove(_inputs(p2, 2))
    # the exact check at the opening (a prover that skips the early refusal): nothing recorded
    ledger = p2.ledger
    lay = p2.commitment.weights.layout
    before = ledger.opened(p2.commitment.weights)
    fresh = np.setdiff1d(np.arange(lay.codeword_len), np.array(sorted(before)))[:lay.hiding_symbols]
    with pytest.raises(OpeningBudgetExceeded, match="hiding symbols"):
        ledger.charge(p2.commitment.weights, fresh)
    assert ledger.opened(p2.commitment.weights) == before


def test_corrupt_ledger_is_an_error_never_a_reset(qm, tmp_path):
    key = CommitmentKey.generate()
    key.save(tmp_path / "k")
    prover = ModelProver.create(qm, CommitmentKey.load(tmp_path / "k"), budget=2)
    prover.prove(_inputs(prover, 0))
    path = tmp_path / "k.ledger"
    good = path.read_bytes()
    for bad in (good[:-10], good.replace(b'"positions": [', b'"positions": [7, ', 1), b"", b"{}"):
        path.write_bytes(bad)
        with pytest.raises(LedgerError, match="corrupt"):
            ModelProver.create(qm, CommitmentKey.load(tmp_path / "k"), budget=2)
    path.write_bytes(good)
    assert ModelProver.create(qm, CommitmentKey.load(tmp_path / "k"), budget=2).openings_left() >= 0


# --- soundness of the stacked opening --------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_proofs(qm):
    prover = ModelProver.create(qm, CommitmentKey(b"\x22" * 32), ledger=OpeningLedger())
    a, b = (prover.prove(_inputs(prover, i)) for i in range(2))
    assert verify_model_proof(prover.commitment, a.to_bytes()).ok
    return prover, a, b


def test_companion_from_another_proof_is_rejected(two_proofs):
    prover, a, b = two_proofs
    mixed = dataclasses.replace(a, companion_commitment=b.companion_commitment)
    assert not verify_model_proof(prover.commitment, mixed.to_bytes()).ok
    mixed = dataclasses.replace(a, companion_commitment=b.companion_commitment, weight_opening=b.weight_opening)
    assert not verify_model_proof(prover.commitment, mixed.to_bytes()).ok


def test_changed_companion_column_is_rejected(two_proofs):
    prover, a, _ = two_proofs
    comp = pcs.Commitment.from_bytes(a.companion_commitment)
    op = pcs.Opening.from_bytes(a.weight_opening, [prover.commitment.weights, comp])
    n_w = prover.commitment.weights.layout.n_rows
    cols = op.columns.copy()
    cols[0, n_w + 3] = (cols[0, n_w + 3] + 1) % F.P  # a companion symbol
    bad = dataclasses.replace(a, weight_opening=dataclasses.replace(op, columns=cols).to_bytes())
    res = verify_model_proof(prover.commitment, bad.to_bytes())
    assert not res.ok and "commitment 1 of 2" in res.reason


def test_companion_not_absorbed_is_rejected(qm, monkeypatch):
    """A prover whose transcript skips the companion root could pick the companion after the
    challenges; its proofs are rejected."""
    prover = ModelProver.create(qm, CommitmentKey(b"\x23" * 32), ledger=OpeningLedger())
    real = PcsProverSettler.commit

    def commit_without_companion(self, tables, transcript):
        class Skip:  # forwards everything but the companion's digest
            def __getattr__(self, k):
                return getattr(transcript, k)

            def absorb_digest(self, label, d):
                if label != "model/companion-commitment":
                    transcript.absorb_digest(label, d)
        real(self, tables, Skip())

    monkeypatch.setattr(PcsProverSettler, "commit", commit_without_companion)
    cheat = prover.prove(_inputs(prover, 0))
    monkeypatch.undo()
    res = verify_model_proof(prover.commitment, cheat.to_bytes())
    assert not res.ok


def test_weight_opening_without_companion_commitment_is_rejected(two_proofs):
    prover, a, _ = two_proofs
    res = verify_model_proof(prover.commitment, dataclasses.replace(a, companion_commitment=b"").to_bytes())
    assert not res.ok and "companion" in res.reason


# --- linear claims across a reused commitment and its companion -----------------------------------------

@pytest.fixture(scope="module")
def stacked():
    rng = np.random.default_rng(5)
    w, other = F.random(rng, 1 << 12), F.random(rng, 1 << 12)
    com, st = pcs.commit({"W": w, "V": other}, pcs.PcsParams(), rng=rng, openings=5)
    blind = F.random(rng, 1 << 6)
    ccom, cst = pcs.commit_companion(com.layout, {"B": blind}, rng=rng)
    r, r2 = F.random(rng, (12, 4)), F.random(rng, (6, 4))
    z = F.random(rng, (4,))
    v = F.eadd(mle.evaluate(w, r), F.emul(z, mle.evaluate(blind, r2)))
    claim = pcs.LinearClaim((("W", r, 1), ("B", r2, z)), v)
    plain = pcs.Claim("V", r, mle.evaluate(other, r))
    op = pcs.open_claims([st, cst], [claim, plain], Transcript(b"lin"))
    return com, ccom, claim, plain, op.to_bytes(), (w, other, blind, r, r2, z)


def test_linear_claim_completeness(stacked):
    com, ccom, claim, plain, op, _ = stacked
    assert pcs.verify([com, ccom], [claim, plain], op, Transcript(b"lin")).ok
    assert not pcs.verify([com, ccom], [plain, claim], op, Transcript(b"lin")).ok  # order is part of it


def test_linear_claim_soundness(stacked):
    com, ccom, claim, plain, op, (w, other, blind, r, r2, z) = stacked
    one = F.ext(1)
    wrong_coef = pcs.LinearClaim((("W", r, 1), ("B", r2, F.eadd(z, one))), claim.value)
    wrong_value = pcs.LinearClaim(claim.terms, F.eadd(claim.value, one))
    # the weight term read from the other tensor of the weight commitment, the blinder term moved
    # out of the companion into the weight commitment (a tensor of the same size there): both false
    moved = pcs.LinearClaim((("V", r, 1), ("B", r2, z)), claim.value)
    dropped = pcs.Claim("W", r, claim.value)
    for bad in (wrong_coef, wrong_value, moved, dropped):
        assert not pcs.verify([com, ccom], [bad, plain], op, Transcript(b"lin")).ok
    # a true claim with the companion term moved to the weight commitment still needs its own proof
    w_small = pcs.LinearClaim((("W", r, 1), ("V", r, z)), F.eadd(mle.evaluate(w, r), F.emul(z, mle.evaluate(other, r))))
    assert not pcs.verify([com, ccom], [w_small, plain], op, Transcript(b"lin")).ok
    # the companion is not a weight commitment: swapped order, or without it, nothing verifies
    assert not pcs.verify([ccom, com], [claim, plain], op, Transcript(b"lin")).ok
    assert not pcs.verify(com, [claim, plain], op, Transcript(b"lin")).ok


def test_one_term_claims_are_linear_claims(stacked):
    com, ccom, _, plain, _, (w, other, blind, r, r2, z) = stacked
    st_free = pcs.LinearClaim((("V", r, 1),), plain.value)
    rng = np.random.default_rng(3)
    c2, s2 = pcs.commit({"V": other}, rng=rng)
    op = pcs.open_claims(s2, [plain], Transcript(b"one"))
    assert pcs.verify(c2, [st_free], op.to_bytes(), Transcript(b"one")).ok
    with pytest.raises(ValueError, match="coefficient 0"):
        pcs.open_claims(s2, [pcs.LinearClaim((("V", r, 0),), plain.value)], Transcript(b"one"))


def test_old_versions_are_refused_by_version(two_proofs):
    prover, a, _ = two_proofs
    from blindproof.proto import proof_pb2
    from blindproof.zk.proof.proof_file import ProofFileError

    m = proof_pb2.ModelProof()
    m.ParseFromString(a.to_bytes())
    m.version = 2
    with pytest.raises(ProofFileError, match="version 2"):
        ModelProof.from_bytes(m.SerializeToString(deterministic=True))
    c = proof_pb2.ModelCommitment()
    c.ParseFromString(prover.commitment.to_bytes())
    c.version = 2
    with pytest.raises(ProofFileError, match="version 2"):
        prover.commitment.from_bytes(c.SerializeToString(deterministic=True))
    op = bytearray(a.weight_opening)
    op[4:6] = (1).to_bytes(2, "little")
    assert not verify_model_proof(prover.commitment, dataclasses.replace(a, weight_opening=bytes(op)).to_bytes()).ok


def test_in_memory_keys_share_one_ledger_per_process():
    """A key that never touched disk gets the SAME ledger from every call (a fresh one per prover or
    rotation reset the budget: 27 proofs of one key recovered a whole weight matrix)."""
    from blindproof.zk.proof.keys import memory_ledger  # what ledger() returns for such a key (the
    # suite's own keys get an unmetered one instead: conftest)

    secret = CommitmentKey.generate().secret
    assert memory_ledger(secret) is memory_ledger(bytes(secret))
    assert memory_ledger(CommitmentKey.generate().secret) is not memory_ledger(secret)


def test_two_weight_sets_under_one_key_share_no_randomness():
    """One key, two weight sets of one spec: the hiding symbols differ (they were equal, and the two
    commitments' openings gave the weights' difference away)."""
    qm = quantized_workload("mlp-784-56-10")
    key = CommitmentKey(b"\x3d" * 32)
    other = {k: v.copy() for k, v in qm.weights.items()}
    name = next(iter(other))
    other[name].flat[0] = 1 - other[name].flat[0]
    _, a = commit_model(qm.spec, qm.weights, key)
    _, b = commit_model(qm.spec, other, key)
    assert not np.array_equal(a.hiding, b.hiding)


def test_the_evaluation_row_reveals_nothing_about_the_weight_rows(mlp_honest, monkeypatch):
    """The weight opening's evaluation row ``u = Σ_r w_r·M_r`` and the masks' value, as base-field
    observations of the rows' values at ζ: their rank minus the rank on the companion's rows alone is
    what they say about the weights — 0. With the four mask rows' values sent apart (the earlier
    format) it was 4: one extension relation on the weight rows per opening, which matched the real
    weights on every proof."""
    from test_zk_leakage_rank import _rank_mod_p

    prover, _, proof = mlp_honest
    seen = []
    real = pcs._eval_row_weights
    monkeypatch.setattr(pcs, "_eval_row_weights", lambda lay, *a: seen.append((lay, real(lay, *a))) or seen[-1][1])
    assert verify_model_proof(prover.commitment, proof.to_bytes()).ok
    lay, w = seen[-1]  # the weight opening is verified last
    n_w, h0 = prover.commitment.weights.layout.n_rows, lay.eval_mask_row
    rows = [r for r in range(w.shape[0]) if w[r].any()]
    col = {(r, c): i for i, (r, c) in enumerate((r, c) for r in rows for c in range(4))}
    obs = []
    for j in range(4):  # coordinate j of u(ζ): Σ_r (w_r)_j M_r(ζ), one extension (four base) equations
        for c in range(4):
            row = np.zeros(len(col), dtype=np.int64)
            for r in rows:
                row[col[r, c]] = int(w[r, j])
            obs.append(row)
    x_pow = pcs._x_powers()
    for c in range(4):  # the mask value Σ_k x^k·H_k(ζ), coordinate c
        row = np.zeros(len(col), dtype=np.int64)
        for k in range(pcs.EVAL_MASKS):
            for c2 in range(4):  # (x^k·h)[c] = Σ_c2 (x^k·e_c2)[c]·h[c2]
                row[col[h0 + k, c2]] = int(F.emul(x_pow[k], np.eye(4, dtype=np.uint32)[c2])[c])
        obs.append(row)
    A = np.stack(obs)
    companion = np.array([r >= n_w for r, _ in col])

    def leak(a):
        return _rank_mod_p(a) - _rank_mod_p(a[:, companion])

    assert leak(A) == 0
    units = [np.eye(len(col), dtype=np.int64)[col[h0 + k, c]] for k in range(pcs.EVAL_MASKS) for c in range(4)]
    assert leak(np.concatenate([A, np.stack(units)])) == 4  # the four rows' values sent apart


def test_saving_a_key_keeps_its_openings_and_a_copied_key_file_needs_its_ledger(qm, tmp_path):
    """A key used in memory and then saved carries its openings into the ledger file (a fresh file
    gave a second full budget: 28 proofs of one secret recovered the whole weight matrix); a key file
    without its ledger is refused, not given an empty one."""
    import shutil

    from blindproof.zk.proof.keys import memory_ledger

    key = CommitmentKey.generate()
    com, _ = commit_model(qm.spec, qm.weights, key)
    memory_ledger(key.secret).charge(com.weights, [1, 2, 3])
    key.save(tmp_path / "k.key")
    assert key.ledger().opened(com.weights) >= {1, 2, 3}
    assert CommitmentKey.load(tmp_path / "k.key").ledger().opened(com.weights) >= {1, 2, 3}
    shutil.copy(tmp_path / "k.key", tmp_path / "copy.key")  # the key file alone
    with pytest.raises(LedgerError, match="no opening ledger"):
        CommitmentKey.load(tmp_path / "copy.key").ledger()
    with pytest.raises(LedgerError):
        ModelProver.create(qm, CommitmentKey.load(tmp_path / "copy.key"))
