"""Rotation of the reused weight commitment (docs/design-zk.md §2.3): a certificate that two commitments hold
the same weights, chains of them, the ledgers it charges, its file format and the CLI (mlp-784-56-10)."""

from __future__ import annotations

import json
import numpy as np
import pytest

from blindproof.zk.commit import pcs
from blindproof.zk.proof import rotation as R
from blindproof.zk.proof.commitment import commit_model
from blindproof.zk.proof.keys import CommitmentKey, OpeningBudgetExceeded, OpeningLedger
from blindproof.zk.field.encoding import ProofFormatError
from blindproof.zk.proof.prover import ModelProver, example_input, quantized_workload
from blindproof.zk.proof.verifier import verify_model_proof

NAME = "mlp-784-56-10"
K1, K2, K3 = (CommitmentKey(bytes([b]) * 32) for b in (0x51, 0x52, 0x53))


@pytest.fixture(scope="module")
def qm():
    return quantized_workload(NAME)


@pytest.fixture(scope="module")
def chain(qm):
    """old → new → newer, each certificate made with in-memory ledgers."""
    old, _ = commit_model(qm.spec, qm.weights, K1)
    l1, l2, l3 = OpeningLedger(), OpeningLedger(), OpeningLedger()
    new, c12 = R.rotate(qm.spec, qm.weights, K1, old, K2, old_ledger=l1, new_ledger=l2)
    newer, c23 = R.rotate(qm.spec, qm.weights, K2, new, K3, old_ledger=l2, new_ledger=l3)
    return {"coms": (old, new, newer), "certs": (c12.to_bytes(), c23.to_bytes()), "ledgers": (l1, l2, l3)}


# --- completeness ---------------------------------------------------------------------------------------

def test_a_proof_with_the_newest_key_verifies_against_the_pinned_commitment(qm, chain):
    old, new, newer = chain["coms"]
    c12, c23 = chain["certs"]
    res = R.verify_rotation(old, new, c12)
    assert res.ok and res.provable_bits >= old.params.security_bits, res.reason
    assert R.follow_chain(old, []) is old
    assert R.follow_chain(old, [(new, c12), (newer, c23)]) is newer
    # the prover with the newest key rebuilds exactly the certified commitment
    prover = ModelProver.create(qm, K3, budget=newer.budget, ledger=chain["ledgers"][2])
    assert prover.commitment.digest() == newer.digest() != old.digest()
    proof = prover.prove(prover.model.encode(example_input(NAME))).to_bytes()
    assert verify_model_proof(R.follow_chain(old, [(new, c12), (newer, c23)]), proof).ok
    assert not verify_model_proof(old, proof).ok  # the proof names the newest commitment only


# --- soundness ------------------------------------------------------------------------------------------

def test_a_certificate_between_different_weights_is_rejected(qm, chain):
    old = chain["coms"][0]
    name = sorted(qm.weights)[0]
    w = {k: np.array(v, copy=True) for k, v in qm.weights.items()}
    flat = w[name].reshape(-1)
    flat[3] += 1 if flat[3] < 100 else -1  # one weight changed by 1, still in range
    _, old_state = commit_model(qm.spec, qm.weights, K1)
    bad, bad_state = commit_model(qm.spec, w, K2)
    cert = R._certify(old, old_state, bad, bad_state, OpeningLedger(), OpeningLedger(), None)
    res = R.verify_rotation(old, bad, cert)
    assert not res.ok and "opening" in res.reason
    # the stated figures are the honest ones: the rejection is the opening's, not the header's
    assert cert.provable_tenths == chain_tenths(old)


def chain_tenths(mc) -> int:
    return R._tenths(mc.weights.layout)[0]


def test_a_certificate_for_another_pair_is_rejected(chain):
    old, new, newer = chain["coms"]
    c12, c23 = chain["certs"]
    for a, b, cert in ((old, newer, c12), (new, old, c12), (old, new, c23), (new, newer, c12)):
        res = R.verify_rotation(a, b, cert)
        assert not res.ok and "another pair" in res.reason
    # the digests patched to the other pair: the transcript (both digests) and the roots no longer match
    cert = R.RotationCertificate.from_bytes(c12)
    forged = R.RotationCertificate(old.digest(), newer.digest(), cert.provable_tenths, cert.conjectured_tenths,
                                   cert.opening)
    assert not R.verify_rotation(old, newer, forged).ok
    with pytest.raises(R.RotationError, match="link 2 of 2"):
        R.follow_chain(old, [(new, c12), (newer, c12)])
    with pytest.raises(R.RotationError, match="link 1 of 1"):
        R.follow_chain(old, [(newer, c23)])
    assert not R.verify_rotation(old, old, c12).ok  # a commitment never certifies itself


def test_commitments_of_another_layout_cannot_be_linked(qm, chain):
    old = chain["coms"][0]
    other, _ = commit_model(qm.spec, qm.weights, K2, budget=3)  # the same weights, another code
    res = R.verify_rotation(old, other, chain["certs"][0])
    assert not res.ok and "layouts" in res.reason
    with pytest.raises(ValueError, match="layouts"):
        R.check_rotatable(old, other)


def test_a_certificate_below_the_target_is_rejected(chain, monkeypatch):
    old, new, _ = chain["coms"]
    cert = R.RotationCertificate.from_bytes(chain["certs"][0])
    monkeypatch.setattr(R, "certificate_soundness", lambda lay: (99.0, 105.0))  # a weaker analysis
    low = R.RotationCertificate(cert.old_digest, cert.new_digest, 990, 1050, cert.opening)
    res = R.verify_rotation(old, new, low)
    assert not res.ok and "below the commitment's target" in res.reason


def test_rotate_refuses_below_the_target_before_charging(qm, monkeypatch):
    """A certificate no verifier would accept is never made, and costs neither key any opening."""
    old, _ = commit_model(qm.spec, qm.weights, K1)
    l1, l2 = OpeningLedger(), OpeningLedger()
    monkeypatch.setattr(R, "_tenths", lambda lay: (990, 1050))
    with pytest.raises(R.RotationError, match="below the commitment's target"):
        R.rotate(qm.spec, qm.weights, K1, old, K2, old_ledger=l1, new_ledger=l2)
    fresh = OpeningLedger().openings_left(old.weights)
    assert l1.openings_left(old.weights) == fresh and l2.openings_left(old.weights) == fresh  # nothing charged


def test_a_chain_longer_than_the_bound_is_refused_before_any_work(chain):
    old, new, _ = chain["coms"]
    with pytest.raises(R.RotationError, match="exceeds"):
        R.follow_chain(old, [(new, chain["certs"][0])] * (R.MAX_LINKS + 1))


def test_tampered_or_malformed_certificates_are_rejected_never_raise(chain):
    old, new, _ = chain["coms"]
    good = chain["certs"][0]
    rng = np.random.default_rng(7)
    picks = list(range(64)) + sorted(rng.choice(np.arange(64, len(good)), 60, replace=False).tolist())
    for i in picks:
        bad = bytearray(good)
        bad[i] ^= 1 << int(rng.integers(8))
        assert not R.verify_rotation(old, new, bytes(bad)).ok, i
    for bad in (b"", good[:-1], good + b"\0", good[:40], b"BPRT" + b"\xff" * 64, rng.bytes(500), "text", None):
        res = R.verify_rotation(old, new, bad)
        assert not res.ok and res.reason
    with pytest.raises(ProofFormatError):
        R.RotationCertificate.from_bytes(good[:-3])
    # a stated figure other than the recomputed one
    c = R.RotationCertificate.from_bytes(good)
    lie = R.RotationCertificate(c.old_digest, c.new_digest, c.provable_tenths + 1, c.conjectured_tenths, c.opening)
    assert "figures" in R.verify_rotation(old, new, lie.to_bytes()).reason


# --- the ledgers ----------------------------------------------------------------------------------------

def test_both_ledgers_are_charged_and_a_spent_key_still_rotates_once(qm):
    l1, l2, l3 = OpeningLedger(), OpeningLedger(), OpeningLedger()
    prover = ModelProver.create(qm, K1, budget=2, ledger=l1)
    old = prover.commitment
    lay = old.weights.layout
    assert prover.openings_left() == 1  # well-formedness + 1 proof + the reserved rotation: 3 openings
    prover.prove(prover.model.encode(example_input(NAME)))
    assert prover.openings_left() == 0
    with pytest.raises(OpeningBudgetExceeded):
        prover.prove(prover.model.encode(example_input(NAME)))
    before = l1.opened(old.weights)
    new, cert = R.rotate(qm.spec, qm.weights, K1, old, K2, old_ledger=l1, new_ledger=l2)
    assert R.verify_rotation(old, new, cert).ok
    positions = pcs.Opening.from_bytes(R.RotationCertificate.from_bytes(cert.to_bytes()).opening,
                                       [R._renamed(old.weights, R.OLD), R._renamed(new.weights, R.NEW)]).positions
    assert set(positions.tolist()) <= l1.opened(old.weights) and len(l1.opened(old.weights)) > len(before)
    assert set(positions.tolist()) <= l2.opened(new.weights)
    assert len(l1.opened(old.weights)) <= lay.hiding_symbols
    # the reserve is spent: no second rotation from the old key; the new key's ledger is not touched by it
    after2 = l2.opened(new.weights)
    with pytest.raises(OpeningBudgetExceeded, match="rotation"):
        R.rotate(qm.spec, qm.weights, K1, old, K3, old_ledger=l1, new_ledger=l3)
    assert l2.opened(new.weights) == after2
    # a budget of 2 leaves the new key, after its well-formedness and the certificate, only its reserve
    assert l2.openings_left(new.weights) == 0 and l2.rotation_left(new.weights)


def test_rotate_refuses_a_key_that_does_not_open_the_old_commitment(qm, chain):
    old = chain["coms"][0]
    with pytest.raises(R.RotationError, match="do not give the old commitment"):
        R.rotate(qm.spec, qm.weights, K3, old, K2, old_ledger=OpeningLedger(), new_ledger=OpeningLedger())
    with pytest.raises(R.RotationError, match="fresh key"):
        R.rotate(qm.spec, qm.weights, K1, old, K1, old_ledger=OpeningLedger(), new_ledger=OpeningLedger())


# --- the command line -----------------------------------------------------------------------------------

@pytest.mark.timeout(300)
def test_cli_rotate_prove_verify_round_trip(tmp_path, monkeypatch, capsys):
    from blindproof.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.chdir(tmp_path)
        try:
            rc = main(list(args))
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 2
        out = capsys.readouterr()
        return rc, out.out, out.err

    m = ("--model", NAME)
    assert run("commit", *m, "-o", "a.commit", "--budget", "3")[0] == 0
    assert (tmp_path / "a.commit.key.ledger").exists()  # commit starts the key's ledger
    rc, out, err = run("rotate", *m, "--commitment", "a.commit", "-o", "b.commit", "--json")
    assert rc == 0, err
    info = json.loads(out)
    assert info["certificate"] == "b.commit.rotation" and info["provable_bits"] >= 104
    assert (tmp_path / "a.commit.key.ledger").exists() and (tmp_path / "b.commit.key.ledger").exists()
    # nothing is overwritten silently
    rc, _, err = run("rotate", *m, "--commitment", "a.commit", "-o", "b.commit")
    assert rc == 2 and "--force" in err
    assert run("prove", *m, "--commitment", "b.commit", "-o", "p.bin")[0] == 0
    rc, out, _ = run("verify", "p.bin", "--commitment", "a.commit", "--rotation", "b.commit", "b.commit.rotation")
    assert rc == 0 and "VALID" in out and "rotation verified" in out
    assert run("verify", "p.bin", "--commitment", "a.commit")[0] == 1  # without the link: another commitment
    # a corrupt certificate is a "no" (1); a missing link file is unusable input (2)
    data = bytearray((tmp_path / "b.commit.rotation").read_bytes())
    data[len(data) // 2] ^= 4
    (tmp_path / "bad.rotation").write_bytes(bytes(data))
    rc, out, _ = run("verify", "p.bin", "--commitment", "a.commit", "--rotation", "b.commit", "bad.rotation", "--json")
    assert rc == 1 and not json.loads(out)["valid"] and "link 1" in json.loads(out)["reason"]
    assert run("verify", "p.bin", "--commitment", "a.commit", "--rotation", "b.commit", "nope.rotation")[0] == 2
    # the old key certifies successors while t positions are left (budget 3: its well-formedness opening,
    # b's certificate, then one or two more, as repeated positions allow), then refuses with exit 1
    codes = [run("rotate", *m, "--commitment", "a.commit", "-o", f"{c}.commit")[:1] + (c,) for c in "cde"]
    ok = [c for rc, c in codes if rc == 0]
    assert 1 <= len(ok) <= 2 and codes[len(ok)][0] == 1, codes
    assert not (tmp_path / f"{codes[len(ok)][1]}.commit.key").exists()  # a refused rotation leaves no key
    # a key whose ledger is missing cannot rotate: the positions it opened are unknown
    (tmp_path / "a.commit.key.ledger").unlink()
    rc, _, err = run("rotate", *m, "--commitment", "a.commit", "-o", "f.commit")
    assert rc == 2 and "no opening ledger" in err
