"""Model commitment, proof-file framing and the PCS claim settler (no op proofs needed)."""

from __future__ import annotations

import numpy as np
import pytest

from blindproof.zk.field import babybear as F
from blindproof.zk.commit import pcs
from blindproof.zk.iop import mle
from blindproof.zk.proof.commitment import ModelCommitment, commit_model, weight_tables
from blindproof.zk.proof.keys import CommitmentKey, KeyedFieldRng
from blindproof.zk.iop.claims import Claim, Reject
from blindproof.zk.iop.layout import canonical
from blindproof.zk.proof.proof_file import ModelProof, ProofFileError, SoundnessFigures
from blindproof.zk.proof.prover import PcsProverSettler, committed_table, quantized_workload
from blindproof.zk.iop.transcript import Transcript
from blindproof.zk.proof.verifier import PcsVerifierSettler
from blindproof.zk.proof.statement import CountingTranscript, soundness_figures

KEY = CommitmentKey(bytes(range(32)))


@pytest.fixture(scope="module")
def mlp():
    qm = quantized_workload("mlp-784-56-10")
    mc, state = commit_model(qm.spec, qm.weights, KEY)
    return qm, mc, state


def test_commitment_is_deterministic_per_key_and_hiding_across_keys(mlp):
    qm, mc, _ = mlp
    again, _ = commit_model(qm.spec, qm.weights, KEY)
    other, _ = commit_model(qm.spec, qm.weights, CommitmentKey.generate())
    assert again.digest() == mc.digest()
    assert other.digest() != mc.digest() and other.weights.root != mc.weights.root


def test_commitment_binds_weights_and_spec(mlp):
    qm, mc, _ = mlp
    w = {k: v.copy() for k, v in qm.weights.items()}
    name = next(iter(w))
    w[name].flat[0] += 1
    changed, _ = commit_model(qm.spec, w, KEY)
    assert changed.weights.root != mc.weights.root
    assert set(mc.weights.layout.names) == {f"w:{n}" for n in qm.spec.weights}


def test_commitment_file_round_trip(mlp, tmp_path):
    _, mc, _ = mlp
    path = tmp_path / "model.commit"
    mc.save(path)
    back = ModelCommitment.load(path)
    assert back.digest() == mc.digest() and back.spec.to_json() == mc.spec_json
    # spec and weight commitment stay small; the weights' well-formedness proof is most of the file
    assert path.stat().st_size - len(mc.wellformed) < 16_000 and len(mc.wellformed) < 270_000


def test_commitment_file_rejects_corruption(mlp):
    _, mc, _ = mlp
    data = mc.to_bytes()
    for bad in (b"", data[:-1], data[: len(data) // 2], data + b"\x00", b"\xff" * 40):
        with pytest.raises(ProofFileError):
            ModelCommitment.from_bytes(bad)
    rng = np.random.default_rng(0)
    for pos in rng.choice(len(data), 60, replace=False):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << int(rng.integers(8))
        try:
            back = ModelCommitment.from_bytes(bytes(flipped))
        except ProofFileError:
            continue
        assert back.digest() != mc.digest()  # accepted only as a different commitment


def test_key_file(tmp_path):
    k = CommitmentKey.generate()
    k.save(tmp_path / "k")
    assert CommitmentKey.load(tmp_path / "k") == k
    assert (tmp_path / "k").stat().st_mode & 0o077 == 0
    (tmp_path / "bad").write_bytes(b"nope")
    with pytest.raises(ValueError):
        CommitmentKey.load(tmp_path / "bad")


def test_keyed_rng_is_uniform_field_elements():
    a = KeyedFieldRng(b"a" * 32, "x").integers(0, F.P, size=10_000, dtype=np.uint32)
    b = KeyedFieldRng(b"a" * 32, "x").integers(0, F.P, size=10_000, dtype=np.uint32)
    c = KeyedFieldRng(b"a" * 32, "y").integers(0, F.P, size=10_000, dtype=np.uint32)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.max() < F.P and abs(a.mean() / F.P - 0.5) < 0.02
    with pytest.raises(ValueError):
        KeyedFieldRng(b"short", "x")


def test_weight_tables_canonical(mlp):
    qm, _, state = mlp
    tables = weight_tables(qm.spec, qm.weights)
    for name, t in tables.items():
        assert np.array_equal(committed_table(state, name), t)
        assert t.size & (t.size - 1) == 0


# --- settler ---------------------------------------------------------------------------------------

def _proof_shell(inputs, outputs, settler: PcsProverSettler, mc: ModelCommitment) -> ModelProof:
    return ModelProof(mc.digest(), mc.spec_digest, pcs.PcsParams(), 0, inputs, outputs,
                      settler.trace_com.to_bytes(), b"", settler.trace_opening, settler.weight_opening,
                      SoundnessFigures(0, 0), settler.trace_claims, settler.weight_claims,
                      settler.companion_com.to_bytes())


def _setup(mlp, cheat: str | None = None):
    qm, mc, state = mlp
    rng = np.random.default_rng(1)
    x = rng.integers(-50, 50, size=(1, 5)).astype(np.int64)
    y = rng.integers(-50, 50, size=(1, 3)).astype(np.int64)
    act = rng.integers(-1000, 1000, size=(3, 7)).astype(np.int64)
    tables = {"act": canonical(act), "x": canonical(x), "y": canonical(y)}
    tables.update(weight_tables(qm.spec, qm.weights))
    from blindproof.zk.proof import program  # the weights' randomizer tables go to the companion (zeros will do)
    tables.update({n: np.zeros(1 << k, dtype=np.uint32) for n, k in program.companion_tensors(qm.spec).items()})
    public = {"x": x, "y": y}
    wname = mc.weights.layout.names[0]

    def claims(tr: Transcript) -> list[Claim]:
        pts = tr.challenge_exts("test/points", 5 + 3 + mc.weights.layout.log_sizes[0])
        p_act, p_x, p_w = pts[:5], pts[5:8], pts[8:]
        out = [Claim("act", p_act, mle.evaluate(tables["act"], p_act)),
               Claim("x", p_x, mle.evaluate(tables["x"], p_x)),
               Claim(wname, p_w, mle.evaluate(tables[wname], p_w))]
        if cheat:
            i = {"act": 0, "x": 1, "w": 2}[cheat]
            out[i] = Claim(out[i].tensor, out[i].point, F.eadd(out[i].value, F.eone()))
        return out

    return public, tables, claims


@pytest.mark.parametrize("cheat", [None, "act", "x", "w"])
def test_settler_round_trip_and_must_reject(mlp, cheat):
    _, mc, state = mlp
    public, tables, claims = _setup(mlp, cheat)
    ps = PcsProverSettler(state, public, pcs.PcsParams(), rng=np.random.default_rng(2))
    tp = Transcript(b"test")
    ps.commit(tables, tp)
    cl = claims(tp)
    if cheat == "x":  # the honest prover notices a false public claim itself
        with pytest.raises(Reject):
            ps.settle(cl, tp)
        ps.settle([c for c in cl if c.tensor != "x"], tp)
    else:
        ps.settle(cl, tp)
    assert "act" in ps.trace_com.layout.names and "x" not in ps.trace_com.layout.names
    proof = _proof_shell(public, public, ps, mc)
    vs = PcsVerifierSettler(proof, mc, ps.trace_com)
    tv = Transcript(b"test")
    vs.commit(None, tv)
    if cheat is None:
        vs.settle(claims(tv), tv)
        assert tv.state_digest() == tp.state_digest()
    else:
        with pytest.raises(Reject):
            vs.settle(claims(tv), tv)


def test_settler_rejects_without_commitment_or_twice(mlp):
    _, mc, state = mlp
    public, tables, claims = _setup(mlp)
    ps = PcsProverSettler(state, public, pcs.PcsParams(), rng=np.random.default_rng(2))
    tp = Transcript(b"test")
    ps.commit(tables, tp)
    ps.settle(claims(tp), tp)
    vs = PcsVerifierSettler(_proof_shell(public, public, ps, mc), mc, ps.trace_com)
    with pytest.raises(Reject, match="before the trace commitment"):
        vs.settle([], Transcript(b"test"))
    tv = Transcript(b"test")
    vs.commit(None, tv)
    vs.settle(claims(tv), tv)
    with pytest.raises(Reject, match="twice"):
        vs.settle(claims(tv), tv)


def test_settler_prover_refuses_other_weights(mlp):
    qm, mc, state = mlp
    public, tables, _ = _setup(mlp)
    name = mc.weights.layout.names[0]
    tables[name] = tables[name].copy()
    tables[name][0] = (int(tables[name][0]) + 1) % F.P
    with pytest.raises(ValueError, match="differs"):
        PcsProverSettler(state, public, pcs.PcsParams()).commit(tables, Transcript(b"t"))


def test_soundness_figures_union_bound(mlp):
    _, mc, _ = mlp
    lay = mc.weights.layout
    only_pcs = soundness_figures({}, [], None, 0, lay, 3)
    rep = lay.soundness(3)
    assert abs(only_pcs.provable_bits - rep.provable_bits) < 1e-9
    more = soundness_figures({"sumcheck/r": 1000, "lookup/alpha": 4, "pcs/r": 99}, [[1 << 20, 16, 4]], lay, 10, lay, 3)
    assert more.provable_bits < only_pcs.provable_bits and more.conjectured_bits >= more.provable_bits
    assert {t[0].split(" (")[0] for t in more.terms} == {"op challenges", "lookup challenges", "trace opening",
                                                         "weight opening"}
    lookup_bits = next(t[1] for t in more.terms if t[0].startswith("lookup"))
    assert abs(lookup_bits - (123.6 - np.log2(4 * ((1 << 20) + (1 << 16))))) < 0.1
    with pytest.raises(Reject):  # lookup challenges the transcript did not see a lookup for
        soundness_figures({"lookup/alpha": 2}, [], lay, 10, lay, 3)


def test_counting_transcript_records_lookup_shapes():
    import struct
    from blindproof.zk.iop.lookup import LookupTable
    tr = CountingTranscript(b"t")
    tr.absorb_bytes("lookup/table", LookupTable.range(13).digest_bytes())
    tr.absorb_bytes("lookup/groups", struct.pack("<3I", 10, 12, 0) + b"a.limb0\0b.limb1\0c")
    tr.challenge_exts("lookup/alpha", 2)
    tr.absorb_bytes("lookup/table", LookupTable.range(4).digest_bytes())
    tr.absorb_bytes("lookup/groups", struct.pack("<1I", 9) + b"d")
    tr.challenge_ext("lookup/alpha")
    tr.challenge_exts("sumcheck/r", 5)
    # queries, log2 of the row bound (the table or a group, whichever is larger), α and β draws,
    # repetitions
    assert tr.lookups == [[(1 << 10) + (1 << 12) + 1, 13, 2, 2], [1 << 9, 9, 1, 1]]
    assert tr.counts["sumcheck/r"] == 5 and tr.counts["lookup/alpha"] == 3
