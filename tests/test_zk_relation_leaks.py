"""Nothing an opening settles determines a weight on its own.

Every claim an opening settles is a linear form in committed columns. Cancel every randomizer and
mask column (``zk~…``) and every other data tensor by elimination: what is left are equations on one
weight alone, which a verifier could solve. There must be none — in the well-formedness proof of a
commitment file and in model proofs. Two ways to get some were found: a linear relation's δ split
per opening (the weight's part ``c·z·Φ_w(p)`` beside the claim ``ŵ(p)`` gives ``w̃(p)``), in the
well-formedness proof's window checks and in ``add_weight``; both recovered weights exactly (an
int32 bias from one commitment file, an int8 bias from two proofs) before relations were kept to one
opening (``ops.base._relation_groups``) and ``add_weight`` read its weight by a sumcheck. A third:
a weight read by more ops than its randomizer was sized for (a shared matrix read 8 times gave 14
equations per proof) before the randomizer was sized by the spec's count of readers
(``program.weight_reads``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from blindproof.zk.field import babybear as F
from blindproof.zk.iop import mle
from blindproof.zk.commit import pcs
from blindproof.zk.proof import wellformed as WF
from blindproof.zk.proof.commitment import ModelCommitment
from blindproof.zk.proof.keys import CommitmentKey
from blindproof.zk.ops import base as B
from blindproof.zk.iop import claims as CL
from blindproof.zk.proof.prover import ModelProver
from blindproof.quant.quantizer import QuantizedModel
from blindproof.quant.spec import Op, QuantSpec, TensorSpec, WeightSpec
from blindproof.zk.proof.verifier import verify_model_proof

P = F.P


@pytest.fixture
def settled(monkeypatch):
    """The linear parts of the claims of every opening the verifiers check (one list per opening)."""
    seen: list = []
    real = pcs.verify

    def hook(commitment, claims, opening, transcript):
        seen.append([pcs._linear_parts(c) for c in claims])
        return real(commitment, claims, opening, transcript)

    monkeypatch.setattr(pcs, "verify", hook)
    return seen


def _eliminate(m: np.ndarray, cols: int) -> np.ndarray:
    """Rows of ``m`` (mod p) reduced to zero on its first ``cols`` columns (their other columns)."""
    m = m.copy() % P
    rank = 0
    for c in range(cols):
        nz = np.nonzero(m[rank:, c])[0]
        if not nz.size:
            continue
        piv = rank + nz[0]
        m[[rank, piv]] = m[[piv, rank]]
        m[rank] = m[rank] * pow(int(m[rank, c]), P - 2, P) % P
        others = np.nonzero(m[:, c])[0]
        others = others[others != rank]
        m[others] = (m[others] - m[others, c:c + 1] * m[rank]) % P
        rank += 1
    return m[rank:, cols:]


def _rank(m: np.ndarray) -> int:
    return m.shape[0] - _eliminate(np.concatenate([m, np.zeros((m.shape[0], 1), np.int64)], 1), m.shape[1]).shape[0]


def equations_on(parts: list, target: str) -> int:
    """Independent base equations the settled claims give on ``target`` alone."""
    sizes: dict[str, int] = {}
    for terms, _, _ in parts:
        for name, pt, _ in terms:
            sizes.setdefault(name, 1 << pt.shape[0])
    if target not in sizes:
        return 0
    order = sorted((n for n in sizes if n != target), key=lambda n: not n.startswith("zk~")) + [target]
    offset, at = {}, 0
    for n in order:
        offset[n] = at
        at += sizes[n]
    m = np.zeros((4 * len(parts), at), dtype=np.int64)
    for i, (terms, _, _) in enumerate(parts):
        for name, pt, coef in terms:
            w = F.emul(mle.eq_table(np.asarray(pt, dtype=np.uint32)), np.asarray(coef, dtype=np.uint32)[None, :])
            o = offset[name]
            m[4 * i:4 * i + 4, o:o + sizes[name]] += np.ascontiguousarray(w.T).astype(np.int64)
    rest = _eliminate(m, offset[target])
    rest = rest[rest.any(axis=1)]
    return _rank(rest) if len(rest) else 0


def _classifier():
    import torch

    from blindproof.models.workloads import MLP, init_weights
    from blindproof.quant import quantize

    torch.manual_seed(0)
    return quantize(init_weights(MLP((16, 8, 2)), 3), torch.randn(64, 16))


def test_a_commitment_files_wellformedness_proof_determines_no_weight(settled):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = ModelProver.create(_classifier(), CommitmentKey(b"\x77" * 32)).commitment.to_bytes()
    com = ModelCommitment.from_bytes(data)
    settled.clear()
    assert WF.verify_wellformed(com, com.wellformed).ok
    (parts,) = settled
    int32 = [n for n, w in com.spec.weights.items() if w.dtype == "int32"]
    assert int32 and any(any(t[0] == "w:" + n for t in p[0]) for p in parts for n in int32)
    for name in com.spec.weights:
        assert equations_on(parts, "w:" + name) == 0, name


def _add_weight_model() -> QuantizedModel:
    spec = QuantSpec(arch={"family": "test"}, inputs=("x",), outputs=("y",),
                     ops=(Op("add_weight", ("x",), "h", {"weight": "b"}), Op("rescale", ("h",), "y", {"shift": 6})),
                     tensors={"x": TensorSpec("x", 0, -100, 100, "input"),
                              "h": TensorSpec("h", 0, -300, 300, "activation"),
                              "y": TensorSpec("y", -6, -8, 8, "activation")},
                     weights={"b": WeightSpec("b", (8,), "int8", 0)}, tables={})
    return QuantizedModel(spec, {"b": np.random.default_rng(2024).integers(-127, 128, size=8)})


def test_model_proofs_of_an_added_weight_determine_nothing_about_it(settled):
    prover = ModelProver.create(_add_weight_model(), CommitmentKey(b"\x41" * 32))
    rng = np.random.default_rng(7)
    proofs = [prover.prove({"x": rng.integers(-100, 101, size=(1, 8))}).to_bytes() for _ in range(3)]
    com = ModelCommitment.from_bytes(prover.commitment.to_bytes())
    settled.clear()
    for data in proofs:
        assert verify_model_proof(com, data).ok
    assert len(settled) >= 6  # trace and weight openings of each proof
    assert any(t[0] == "w:b" for parts in settled for p in parts for t in p[0])
    assert all(equations_on(parts, "w:b") == 0 for parts in settled)


def test_a_relation_across_the_trace_and_weight_openings_is_refused():
    """Its δ would be sent per opening: refused by prover and verifier alike."""
    from blindproof.zk.iop import blind as BL
    from blindproof.zk.iop.transcript import Transcript

    rules = {"a": BL.make_rule("a", 3, 2), "w:b": BL.make_rule("w:b", 3, 2)}
    pt = F.random(np.random.default_rng(0), (3, 4))
    rel = [(1, "a", pt, True), (-1, "w:b", pt, True)]
    ctx = B.VerifierContext(Transcript(b"t"), None, {}, blind=rules)
    with pytest.raises(CL.Reject, match="spans the trace and weight openings"):
        B.verify_relation(ctx, B.ProofReader(B.OpProof()), rel, "x")
    one = B.VerifierContext(Transcript(b"t"), None, {}, blind=rules, one_opening=True)
    data = B.OpProof()
    data.put_ext(F.random(np.random.default_rng(1), (1, 4)))
    B.verify_relation(one, B.ProofReader(data), rel, "x")
    assert len(one.blind_claims) == 1 and len(one.blind_claims[0].terms) == 2


def _shared_weight_model(reads: int, d: int = 4) -> QuantizedModel:
    """One int8 ``W`` read by ``reads`` linear ops (weights shared across layers)."""
    ops, tensors, prev = [], {"x": TensorSpec("x", 0, -100, 100, "input")}, "x"
    for i in range(reads):
        out = "y" if i == reads - 1 else f"h{i}"
        ops += [Op("linear", (prev,), f"a{i}", {"weight": "W", "bias": None}),
                Op("rescale", (f"a{i}",), out, {"shift": 8})]
        tensors[f"a{i}"] = TensorSpec(f"a{i}", 0, -(1 << 20), 1 << 20, "activation")
        tensors[out] = TensorSpec(out, -8, -100, 100, "activation")
        prev = out
    spec = QuantSpec(arch={"family": "test"}, inputs=("x",), outputs=("y",), ops=tuple(ops), tensors=tensors,
                     weights={"W": WeightSpec("W", (d, d), "int8", 0)}, tables={})
    return QuantizedModel(spec, {"W": np.random.default_rng(5).integers(-127, 128, size=(d, d))})


def test_a_weight_read_by_eight_ops_stays_hidden(settled):
    """The randomizer is sized for the spec's eight reads: no equation on ``W`` from two proofs and no
    warning (sized for four, each proof gave 14 equations and two proofs the whole matrix)."""
    from blindproof.zk.proof.program import NotHiddenWarning, weight_reads

    qm = _shared_weight_model(8)
    assert weight_reads(qm.spec) == {"w:W": 8}
    prover = ModelProver.create(qm, CommitmentKey(b"\x42" * 32))
    rng = np.random.default_rng(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotHiddenWarning)
        proofs = [prover.prove({"x": rng.integers(-100, 101, size=(1, 4))}).to_bytes() for _ in range(2)]
    com = ModelCommitment.from_bytes(prover.commitment.to_bytes())
    settled.clear()
    for data in proofs:
        assert verify_model_proof(com, data).ok
    assert sum(t[0] == "w:W" for parts in settled for p in parts for t in p[0]) >= 16
    assert all(equations_on(parts, "w:W") == 0 for parts in settled)


@pytest.mark.parametrize("workload", ["mlp-784-56-10", "tiny-llama", "shared", "add_weight"])
def test_each_reader_of_a_weight_makes_one_claim(workload, monkeypatch):
    """What the companion's sizes rest on: a proof reveals each weight exactly as often as the spec
    says (a claim per reader, and a bias's payback; counted by the prover's own dry run)."""
    from blindproof.zk.proof import program as PR
    from blindproof.zk.proof.prover import example_input, quantized_workload

    qm = {"shared": lambda: _shared_weight_model(5), "add_weight": _add_weight_model}.get(
        workload, lambda: quantized_workload(workload))()
    seen: dict = {}
    real = PR.reveal_counts

    def counts(run, ctx):
        seen.update(out := real(run, ctx))
        return out

    monkeypatch.setattr(PR, "reveal_counts", counts)
    monkeypatch.setattr(PR, "_MASK_PLANS", {})  # a cached plan would skip the count
    prover = ModelProver.create(qm, CommitmentKey(b"\x43" * 32))
    if workload in ("shared", "add_weight"):
        x = {"x": np.ones((1, qm.spec.weights[next(iter(qm.spec.weights))].shape[-1]), dtype=np.int64)}
    else:
        x = prover.model.encode(example_input(workload))
    prover.prove(x)
    reads = PR.weight_reads(qm.spec)
    assert reads and {w: seen.get("zk~blind:" + w) for w in reads} == reads
