"""Weight padding of a third party's model commitment: junk in a committed weight table's padding
cannot change an accepted output (blindproof.zk.proof.config.check_padding_sound, docs/proofs.md §4).

A verifier never sees the committed weight tables, so their padding may hold anything. The exploit
tested here: a linear whose input width (6) is padded (to 8), junk in the padded columns of ``W``, and
junk on the padded columns of its input ``h`` (a rescale output), so that ``Σ_j h_j·W_cj`` over the
padded width adds ``W_c6·h_6`` to every real output. The rescale pins its output's padding to zero, so
the proof is rejected; specs that would let a linear read a tensor with unpinned padding are refused
when a commitment is made or read."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from blindproof.zk.proof import program as P
from blindproof.zk.proof.commitment import ModelCommitment, commit_model
from blindproof.zk.proof.keys import CommitmentKey
from blindproof.zk.proof.config import check_padding_sound, zero_padded_tensors
from blindproof.zk.ops import base as B
from blindproof.zk.iop import claims as CL
from blindproof.zk.iop import layout as LAY
from blindproof.zk.proof.proof_file import ProofFileError
from blindproof.quant.reference import run_program, shift_round
from blindproof.quant.spec import Op, QuantSpec, TensorSpec, WeightSpec

I16 = (1 << 15) - 1
ACC = (1 << 29) - 1


def _program() -> QuantSpec:
    t = lambda n, lo=-I16, hi=I16, role="activation": TensorSpec(n, 0, lo, hi, role)  # noqa: E731
    ops = (Op("rescale", ("a",), "h", {"shift": 1}), Op("linear", ("h",), "acc", {"weight": "W", "bias": None}),
           Op("rescale", ("acc",), "out", {"shift": 4}))
    tensors = {"a": t("a"), "h": t("h"), "acc": t("acc", -ACC, ACC, "accumulator"), "out": t("out")}
    return QuantSpec(arch={"family": "test"}, inputs=("a",), outputs=("out",), ops=ops, tensors=tensors,
                     weights={"W": WeightSpec("W", (3, 6), "int8", 0)}, tables={})


@pytest.fixture
def junk(monkeypatch):
    """``junk[name] = padded int64 array``: the table a cheating prover commits for ``name``."""
    tables: dict[str, np.ndarray] = {}
    orig = B.ProverContext.table
    monkeypatch.setattr(B.ProverContext, "table",
                        lambda self, name: LAY.canonical(tables[name]) if name in tables else orig(self, name))
    return tables


def _cheat(rng):
    spec = _program()
    W = rng.integers(-127, 128, size=(3, 6))
    a = rng.integers(-20000, 20000, size=(1, 3, 6))
    trace = run_program(spec, {"W": W}, {"a": a})
    Wp = np.zeros((4, 8), dtype=np.int64)
    Wp[:3, :6] = W
    Wp[:3, 6:] = rng.integers(50, 127, size=(3, 2))  # junk weight padding
    hp = np.zeros((1, 4, 8), dtype=np.int64)
    hp[:, :3, :6] = trace.tensors["h"]
    hp[:, :3, 6] = 900  # junk on the padded column of the activation
    acc = np.einsum("btj,cj->btc", hp[:, :3], Wp[:3])  # the sum over the padded width
    q, r = shift_round(acc, 4)
    tensors = dict(trace.tensors, acc=acc, out=np.clip(q, -I16, I16), **{"out/q": q, "out/r": r})
    assert not np.array_equal(tensors["out"], trace.tensors["out"])  # the exploit changes the output
    return spec, W, dataclasses.replace(trace, tensors=tensors), {"w:W": Wp, "h": hp, "h/q": hp}


def test_junk_weight_padding_exploit_is_rejected(junk):
    spec, W, cheat, tables = _cheat(np.random.default_rng(1))
    junk.update(tables)
    settler = CL.OracleSettler()
    proof = P.prove_trace(spec, {"W": W}, cheat, settler, strict=False)
    res = P.verify_trace(spec, {"a": cheat.tensors["a"]}, {"out": cheat.tensors["out"]}, proof, settler)
    assert not res.ok


def test_honest_program_with_junk_weight_padding_only_proves(junk):
    """Junk weight padding alone is harmless: the honest output still proves (the padded columns of the
    linear's input are zero, so the junk columns of W count nothing)."""
    spec, W, _, tables = _cheat(np.random.default_rng(2))
    trace = run_program(spec, {"W": W}, {"a": np.random.default_rng(2).integers(-20000, 20000, size=(1, 3, 6))})
    junk["w:W"] = tables["w:W"]
    settler = CL.OracleSettler()
    proof = P.prove_trace(spec, {"W": W}, trace, settler)
    assert P.verify_trace(spec, {"a": trace.tensors["a"]}, {"out": trace.tensors["out"]}, proof, settler).ok


def _unpinned_spec() -> QuantSpec:
    """embed -> linear: the embedding output's padded columns carry the table's junk padding."""
    t = lambda n, lo=-I16, hi=I16, role="activation": TensorSpec(n, 0, lo, hi, role)  # noqa: E731
    ops = (Op("embed", ("tok",), "e", {"index": "tokens", "weight": "E"}),
           Op("linear", ("e",), "acc", {"weight": "W", "bias": None}), Op("rescale", ("acc",), "out", {"shift": 4}))
    tensors = {"tok": t("tok", 0, 9, "index"), "e": t("e"), "acc": t("acc", -ACC, ACC, "accumulator"),
               "out": t("out")}
    return QuantSpec(arch={"family": "test"}, inputs=("tok",), outputs=("out",), ops=ops, tensors=tensors,
                     weights={"E": WeightSpec("E", (10, 6), "int16", 0), "W": WeightSpec("W", (3, 6), "int8", 0)},
                     tables={})


def test_spec_with_a_linear_on_unpinned_padding_is_refused():
    spec = _unpinned_spec()
    assert "e" not in zero_padded_tensors(spec)
    with pytest.raises(ValueError, match="junk weight padding"):
        check_padding_sound(spec)
    w = {"E": np.zeros((10, 6), dtype=np.int64), "W": np.zeros((3, 6), dtype=np.int64)}
    with pytest.raises(ValueError, match="junk weight padding"):
        commit_model(spec, w, CommitmentKey(b"k" * 32))


def test_reading_such_a_commitment_is_refused():
    """A third party's model.commit with such a spec is refused when read (as a verifier reads it)."""
    good, _ = commit_model(_program(), {"W": np.ones((3, 6), dtype=np.int64)}, CommitmentKey(b"k" * 32))
    bad = ModelCommitment(_unpinned_spec().to_json(), good.weights, good.params)
    with pytest.raises(ProofFileError, match="junk weight padding"):
        ModelCommitment.from_bytes(bad.to_bytes())


def test_workload_programs_keep_weight_padding_away():
    from blindproof.zk.proof.prover import quantized_workload
    for name in ("tiny-llama", "mlp-784-56-10"):
        check_padding_sound(quantized_workload(name).spec)
