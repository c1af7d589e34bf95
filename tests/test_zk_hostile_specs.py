"""Must-reject: hostile specs from a model owner (a third party's ``model.commit`` is hostile input).

Each was a forgery accepted by ``verify_model_proof``, ``verify_exchange`` and ``blindproof verify``
with default arguments, with a commitment that loaded through every check of the decoder:

- an input named ``"w:<weight>"``: claims on the weight were settled against the prover's "input";
- two tables sharing one ``TableSpec.name``: the batched lookup checked one op against the other's table;
- an accumulator pooled by ``mean_pool`` into a declared range its mean can leave: the sum's residue
  mod p verified in place of the reference's mean.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from blindproof.zk.field import babybear as F
from blindproof.zk.proof import program as P
from blindproof.zk.proof.commitment import ModelCommitment, commit_model
from blindproof.zk.proof.keys import CommitmentKey
from blindproof.zk.iop.lookup import LookupTable
from blindproof.zk.ops import base as B
from blindproof.zk.iop import claims as CL
from blindproof.zk.proof.proof_file import ProofFileError
from blindproof.zk.proof.prover import quantized_workload
from blindproof.quant.reference import run_program, shift_round
from blindproof.quant.spec import Op, QuantSpec, TensorSpec, WeightSpec
from blindproof.quant.tables import make_table, rope_table

KEY = CommitmentKey(b"\x5c" * 32)
ACC = (1 << 29) - 1
I16 = (1 << 15) - 1


def _load(spec_json: str, weights) -> None:
    """Build the hostile spec and, when that passes, commit and reload it as a verifier would."""
    spec = QuantSpec.from_json(spec_json)
    com, _ = commit_model(spec, weights, KEY)
    ModelCommitment.from_bytes(com.to_bytes())


def test_an_input_named_like_a_weight_is_refused():
    qm = quantized_workload("mlp-784-56-10")
    shadow = "w:l1.acc.weight"
    d = json.loads(qm.spec.to_json())
    d["inputs"] = ["x", shadow]
    d["tensors"][shadow] = TensorSpec(shadow, 0, -127, 127, "input").to_dict()
    with pytest.raises(ValueError, match="reserved character"):
        _load(json.dumps(d), qm.weights)
    # and the shapes of a program never let a weight overwrite a public tensor
    spec = qm.spec
    with pytest.raises(ValueError, match="also a public tensor"):
        P.infer_shapes(_UncheckedSpec(spec, extra_input=shadow), {"x": (1, 784), shadow: (16, 64)})


class _UncheckedSpec:
    """A spec object that skips QuantSpec's own validation (what a future loader bug would hand on)."""

    def __init__(self, spec: QuantSpec, extra_input: str) -> None:
        self.inputs = (*spec.inputs, extra_input)
        self.weights, self.ops = spec.weights, spec.ops
        self._spec = spec

    def __getattr__(self, name):
        return getattr(self._spec, name)


def test_two_tables_under_one_name_are_refused_and_never_share_a_lookup():
    silu = make_table("act", "silu", 4, 4, -128, 127)
    gelu = make_table("act", "gelu", 4, 4, -128, 127)  # same name, other function and digest
    with pytest.raises(ValueError, match="names itself"):
        QuantSpec(arch={"family": "test"}, inputs=("x",), outputs=("y1", "y2"),
                  ops=(Op("add_weight", ("x",), "h", {"weight": "b"}),
                       Op("lookup", ("h",), "y1", {"table": "t_silu"}),
                       Op("lookup", ("h",), "y2", {"table": "t_gelu"})),
                  tensors={"x": TensorSpec("x", 4, -100, 100, "input"),
                           "h": TensorSpec("h", 4, -120, 120, "activation"),
                           "y1": TensorSpec("y1", 4, -200, 200, "activation"),
                           "y2": TensorSpec("y2", 4, -200, 200, "activation")},
                  weights={"b": WeightSpec("b", (8,), "int8", 4)}, tables={"t_silu": silu, "t_gelu": gelu})
    # defence in depth: the batched lookups pack by table contents, not by name alone
    a = LookupTable.function("fn:act:0", F.from_signed(np.arange(4)), F.from_signed(np.arange(4)))
    b = LookupTable.function("fn:act:0", F.from_signed(np.arange(4)), F.from_signed(np.arange(4) * 2))
    batch = B.LookupBatch()
    batch.add(a, [(("u", "v"), (4,))], "ma")
    batch.add(b, [(("s", "t"), (4,))], "mb")
    packs = list(batch._packs())
    assert len(packs) == 2 and {p[0][0].digest_bytes() for p in packs} == {a.digest_bytes(), b.digest_bytes()}


def _pool_spec(y_range: tuple[int, int]) -> QuantSpec:
    return QuantSpec(arch={"family": "test"}, inputs=("x",), outputs=("out",),
                     ops=(Op("linear", ("x",), "h", {"weight": "W", "bias": "b"}), Op("mean_pool", ("h",), "y"),
                          Op("rescale", ("y",), "out", {"shift": 20})),
                     tensors={"x": TensorSpec("x", 0, -127, 127, "input"),
                              "h": TensorSpec("h", 0, -ACC, ACC, "accumulator"),
                              "y": TensorSpec("y", 0, *y_range, "activation"),
                              "out": TensorSpec("out", 0, -I16, I16, "activation")},
                     weights={"W": WeightSpec("W", (2, 2), "int8", 0), "b": WeightSpec("b", (2,), "int32", 0)},
                     tables={})


def test_a_mean_pool_whose_mean_can_leave_its_declared_range_is_refused():
    spec = _pool_spec((-(1 << 27), 1 << 27))
    bias = (1 << 29) - (1 << 20)
    weights = {"W": np.zeros((2, 2), dtype=np.int64), "b": np.array([bias, bias], dtype=np.int64)}
    with pytest.raises(ValueError, match="proven range"):
        commit_model(spec, weights, KEY)
    # the forgery itself: the residue's mean in place of the reference's, refused by the verifier too
    x = np.ones((1, 4, 2), dtype=np.int64)
    tr = run_program(spec, weights, {"x": x})
    total = (int(tr.tensors["h"][0, :, 0].sum()) + 2) % F.P
    y, r = divmod(total, 4)
    tr.tensors["y"] = np.full((1, 2), y, dtype=np.int64)
    tr.tensors["y/r"] = np.full((1, 2), r, dtype=np.int64)
    q, rr = shift_round(tr.tensors["y"], 20)
    tr.tensors["out/q"], tr.tensors["out/r"], tr.tensors["out"] = q, rr, np.clip(q, -I16, I16)
    res = P.verify_trace(spec, {"x": x}, {"out": tr.tensors["out"]}, b"\x00", CL.OracleSettler())
    assert not res.ok and "proven range" in res.reason
    with pytest.raises(ValueError, match="proven range"):
        P.prove_trace(spec, weights, tr, CL.OracleSettler(), strict=False)


def test_a_hostile_spec_in_a_commitment_file_does_not_load():
    """The same refusals when the spec arrives inside a commitment file (the decoder re-checks it)."""
    qm = quantized_workload("mlp-784-56-10")
    com, _ = commit_model(qm.spec, qm.weights, KEY)
    from blindproof.proto import proof_pb2

    m = proof_pb2.ModelCommitment()
    m.ParseFromString(com.to_bytes())
    d = json.loads(m.spec_json)
    d["inputs"] = ["x", "w:l1.acc.weight"]
    d["tensors"]["w:l1.acc.weight"] = TensorSpec("w:l1.acc.weight", 0, -127, 127, "input").to_dict()
    m.spec_json = json.dumps(d, sort_keys=True, separators=(",", ":"))
    import blake3
    m.spec_digest = blake3.blake3(m.spec_json.encode()).digest()
    with pytest.raises(ProofFileError):
        ModelCommitment.from_bytes(m.SerializeToString(deterministic=True))


# --- parameters the loader did not bound, and a reference that wrapped ---------------------------------

def _spec(ops, tensors, weights, inputs=("x",), outputs=("y",)) -> QuantSpec:
    return QuantSpec(arch={"family": "test"}, inputs=inputs, outputs=outputs, ops=tuple(ops), tensors=tensors,
                     weights=weights, tables={})


def test_an_embed_index_other_than_tokens_or_positions_is_refused():
    # the reference read "token" as positions, the proof as tokens: W[start + t] vs W[tokens]
    with pytest.raises(ValueError, match="index must be"):
        _spec([Op("embed", ("tok",), "y", {"weight": "E", "index": "token"})],
              {"tok": TensorSpec("tok", 0, 0, 7, "index"), "y": TensorSpec("y", 0, -127, 127, "activation")},
              {"E": WeightSpec("E", (8, 4), "int8", 0)}, inputs=("tok",))


def test_an_embedding_table_that_is_not_2d_is_refused():
    # a (V, a, 1) table: the proof read it as (b, t, a), the reference as (b, t, a, 1)
    with pytest.raises(ValueError, match="2-D"):
        _spec([Op("embed", ("tok",), "y", {"weight": "E", "index": "tokens"})],
              {"tok": TensorSpec("tok", 0, 0, 7, "index"), "y": TensorSpec("y", 0, -127, 127, "activation")},
              {"E": WeightSpec("E", (8, 4, 1), "int8", 0)}, inputs=("tok",))


def test_a_left_shift_beyond_the_bound_is_refused():
    # shift -50: the reference's int64 x << 50 wrapped to 0, the proof read x·2^50 mod p
    with pytest.raises(ValueError, match="left shift"):
        _spec([Op("add_weight", ("x",), "h", {"weight": "b"}), Op("rescale", ("h",), "y", {"shift": -50})],
              {"x": TensorSpec("x", 0, -(1 << 18), 1 << 18, "input"),
               "h": TensorSpec("h", 0, -(1 << 19), 1 << 19, "activation"),
               "y": TensorSpec("y", 0, -I16, I16, "activation")},
              {"b": WeightSpec("b", (2,), "int8", 0)})


def test_a_norm_constant_E_beyond_the_sum_of_squares_bound_is_refused():
    # E = p + 1: the reference raised on every input, the proof used E mod p = 1
    with pytest.raises(ValueError, match="E = "):
        _spec([Op("add_weight", ("x",), "h", {"weight": "b"}),
               Op("norm", ("h",), "y", {"kind": "rms", "d": 4, "C": 127, "E": F.P + 1})],
              {"x": TensorSpec("x", 0, -100, 100, "input"), "h": TensorSpec("h", 0, -227, 227, "activation"),
               "y": TensorSpec("y", 0, -127, 127, "activation")},
              {"b": WeightSpec("b", (4,), "int8", 0)})


def test_the_reference_refuses_a_matmul_that_could_wrap_int64():
    # int32 weights on a wide input: the int64 matmul wrapped (2^64 + 4e8 -> 4e8) and a different residue
    # verified; now the reference raises, so no output is the specification's
    from blindproof.quant.reference import BoundError

    k = 66
    spec = _spec([Op("linear", ("x",), "y", {"weight": "W"})],
                 {"x": TensorSpec("x", 0, -ACC, ACC, "input"), "y": TensorSpec("y", 0, -ACC, ACC, "accumulator")},
                 {"W": WeightSpec("W", (1, k), "int32", 0)})
    x = np.array([[ACC] * 64 + [1 << 18, 399999936]], dtype=np.int64)
    w = {"W": np.array([[ACC] * 64 + [1 << 18, 1]], dtype=np.int64)}
    with pytest.raises(BoundError, match="overflow"):
        run_program(spec, w, {"x": x})


def test_a_table_with_entries_beyond_the_bound_is_refused():
    big = rope_table("c", "cos", 40, 4, 2, 10000.0)  # cos(0)·2^40: RoPE products would wrap int64
    with pytest.raises(ValueError, match="2\\^29"):
        QuantSpec(arch={"family": "test"}, inputs=("x",), outputs=("y",),
                  ops=(Op("lookup", ("x",), "y", {"table": "c"}),),
                  tensors={"x": TensorSpec("x", 0, 0, 3, "input"), "y": TensorSpec("y", 0, -ACC, ACC, "activation")},
                  weights={}, tables={"c": big})


def test_an_output_named_like_an_input_is_refused():
    """outputs=("x", "y") with input "x": the verifier's public table let the stated output replace the
    input, and only the leftover-claims check stood between that and a forgery."""
    with pytest.raises(ValueError, match="both inputs and outputs"):
        _spec([Op("add_weight", ("x",), "y", {"weight": "b"})],
              {"x": TensorSpec("x", 0, -100, 100, "input"), "y": TensorSpec("y", 0, -300, 300, "activation")},
              {"b": WeightSpec("b", (4,), "int8", 0)}, outputs=("x", "y"))
    spec = _spec([Op("add_weight", ("x",), "y", {"weight": "b"})],
                 {"x": TensorSpec("x", 0, -100, 100, "input"), "y": TensorSpec("y", 0, -300, 300, "activation")},
                 {"b": WeightSpec("b", (4,), "int8", 0)})
    aliased = _UncheckedSpec(spec, extra_input="x")
    aliased.inputs, aliased.outputs = ("x",), ("x", "y")
    x = np.zeros((1, 4), dtype=np.int64)
    with pytest.raises(CL.Reject, match="public output 'x' is also an input"):
        P._public(aliased, {"x": x}, {"x": x, "y": x})
