"""The weights' well-formedness proof (blindproof/zk/proof/wellformed.py): every committed weight entry lies in
its dtype's range and its padding is zero. Completeness on the real workloads, and cheating model owners
who commit out-of-range or padded junk and run the prover anyway (``strict=False``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from blindproof.zk.field import babybear as F
from blindproof.zk.iop import mle
from blindproof.zk.commit import pcs
from blindproof.zk.proof import wellformed as WF
from blindproof.zk.proof.commitment import commit_model
from blindproof.zk.proof.keys import CommitmentKey
from blindproof.zk.proof.config import DEFAULT_BUDGET, default_params
from blindproof.zk.iop.layout import canonical, weight_name
from blindproof.quant.reference import _DTYPE_MAX
from blindproof.quant.spec import Op, QuantSpec, TensorSpec, WeightSpec

pytestmark = pytest.mark.timeout(300)

I16 = (1 << 15) - 1
ACC = (1 << 29) - 1


def _spec() -> QuantSpec:
    """A small program with a padded int8 matrix, an int32 bias and an int16 vector."""
    t = lambda n, lo=-I16, hi=I16, role="activation": TensorSpec(n, 0, lo, hi, role)  # noqa: E731
    ops = (Op("rescale", ("a",), "h", {"shift": 1}),
           Op("linear", ("h",), "acc", {"weight": "W", "bias": "b"}),
           Op("rescale", ("acc",), "r", {"shift": 4}),
           Op("add_weight", ("r",), "out", {"weight": "g"}))
    tensors = {"a": t("a"), "h": t("h"), "acc": t("acc", -ACC, ACC, "accumulator"), "r": t("r"), "out": t("out")}
    weights = {"W": WeightSpec("W", (3, 6), "int8", 0), "b": WeightSpec("b", (3,), "int32", 0),
               "g": WeightSpec("g", (3,), "int16", 0)}
    return QuantSpec(arch={"family": "test"}, inputs=("a",), outputs=("out",), ops=ops, tensors=tensors,
                     weights=weights, tables={})


def _weights(rng) -> dict[str, np.ndarray]:
    return {"W": rng.integers(-127, 128, size=(3, 6)), "b": np.array([ACC, -ACC, 12345]),
            "g": np.array([I16, -I16, 7])}


def _commit_tables(spec: QuantSpec, tables: dict[str, np.ndarray]):
    """What a cheating owner commits: any field tables at the right sizes (commit_model's own path)."""
    return pcs.commit(tables, default_params(), rng=CommitmentKey.generate().rng("test"), openings=DEFAULT_BUDGET + 1)


def _parts(spec, com):
    return (spec, com, default_params())


@pytest.fixture(scope="module")
def small():
    spec = _spec()
    w = _weights(np.random.default_rng(0))
    com, state = commit_model(spec, w, CommitmentKey.generate())
    return spec, w, com, state, WF.prove_wellformed(spec, state, com.params)


def test_dtype_bounds_are_the_reference_ones():
    assert WF.DTYPE_BOUNDS == _DTYPE_MAX
    assert WF.dtype_bound("int32") == (1 << 29) - 1
    with pytest.raises(ValueError, match="unknown weight dtype"):
        WF.dtype_bound("int64")


def test_completeness_small(small):
    spec, _, com, _, proof = small
    res = WF.verify_wellformed(com, proof)
    assert res.ok, res.reason
    assert res.provable_bits >= 100
    assert WF.verify_wellformed(_parts(spec, com.weights), proof).ok  # (spec, weights, params) form
    assert WF.verify_wellformed((com.spec_json, com.weights, com.params), proof).ok


@pytest.mark.parametrize("name", ["mlp-784-56-10", "tiny-llama"])
def test_completeness_workloads(name):
    from blindproof.zk.proof.prover import quantized_workload

    qm = quantized_workload(name)
    com, state = commit_model(qm.spec, qm.weights, CommitmentKey.generate())
    proof = WF.prove_wellformed(qm.spec, state, com.params)
    res = WF.verify_wellformed(com, proof)
    assert res.ok, res.reason
    assert res.provable_bits >= 100


def test_reproducible_from_the_key(small):
    spec, w, _, _, _ = small
    key = CommitmentKey.generate()
    com, state = commit_model(spec, w, key)
    a = WF.prove_wellformed(spec, state, com.params, rng=key.rng("wf"))
    b = WF.prove_wellformed(spec, state, com.params, rng=key.rng("wf"))
    assert a == b and WF.verify_wellformed(com, a).ok
    c = WF.prove_wellformed(spec, state, com.params)  # OS randomness: another proof of the same statement
    assert c != a and WF.verify_wellformed(com, c).ok


# --- cheating owners -------------------------------------------------------------------------------------

def _forge(spec: QuantSpec, w: dict[str, np.ndarray], pad: dict[str, tuple] | None = None):
    """Commit ``w`` as raw field elements (no range check, optional junk at padded positions) and run the
    prover anyway; returns (weight commitment, proof)."""
    tables = {}
    for name, ws in spec.weights.items():
        t = canonical(np.asarray(w[name], dtype=np.int64), ws.shape)
        for idx, v in (pad or {}).get(name, ()):
            t[idx] = F.from_signed(np.array([v]))[0]
        tables[weight_name(name)] = t
    com, state = _commit_tables(spec, tables)
    return com, WF.prove_wellformed(spec, state, default_params(), strict=False)


@pytest.mark.parametrize("name, index, value", [
    ("W", (1, 2), 300),  # an int8 entry of 300
    ("W", (0, 0), -128),  # just below int8's symmetric range
    ("W", (2, 5), (F.P - 1) // 2),  # field-sized: the largest residue
    ("W", (0, 3), -(F.P - 1) // 2),  # the residue (p + 1)/2
    ("g", (1,), I16 + 1),  # int16
    ("g", (0,), -(1 << 20)),
    ("b", (0,), 1 << 29),  # in the low window [-B, 2^29], not in the high one
    ("b", (1,), -(1 << 29)),  # in the high window [-2^29, B], not in the low one
    ("b", (2,), 1 << 30),
    ("b", (2,), (F.P - 1) // 2),
])
def test_out_of_range_weight_is_rejected(small, name, index, value):
    spec, w, _, _, _ = small
    bad = {k: v.copy() for k, v in w.items()}
    bad[name][index] = value
    with pytest.raises(ValueError):  # the honest prover refuses
        com, state = commit_model(spec, bad, CommitmentKey.generate())
        WF.prove_wellformed(spec, state, com.params)
    com, forged = _forge(spec, bad)
    res = WF.verify_wellformed(_parts(spec, com), forged)
    assert not res.ok and "lookup" in res.reason, res.reason


def test_field_wrap_values_are_the_same_residue(small):
    """The commitment holds residues: p - 100 is the residue of -100, so it IS the int8 weight -100."""
    spec, w, _, _, _ = small
    ok = {k: v.copy() for k, v in w.items()}
    ok["W"][0, 3] = F.P - 100
    ok["b"][2] = F.P - ACC
    com, proof = _forge(spec, ok)
    assert WF.verify_wellformed(_parts(spec, com), proof).ok


@pytest.mark.parametrize("name, index, value, stopped_by", [
    ("W", 7, 5, "lookup"),  # row 0, padded column 7 (shape (3, 6) padded to (4, 8)): an in-range value
    ("W", 30, -1, "lookup"),  # padded row 3
    ("g", 3, -4, "lookup"),  # int16 (3,) padded to (4,)
    ("b", 3, 9, "padding check"),  # int32 (3,) padded to (4,): the windows' zero-check
])
def test_junk_padding_is_rejected(small, name, index, value, stopped_by):
    """In-range junk on padding entries: int8 / int16 entries are looked up paired with the public
    indicator (a padding entry must be the row (0, 0)), int32 padding has a zero-check."""
    spec, w, _, _, _ = small
    com, forged = _forge(spec, w, {name: [(index, value)]})
    res = WF.verify_wellformed(_parts(spec, com), forged)
    assert not res.ok and stopped_by in res.reason, res.reason
    with pytest.raises(ValueError, match="padding"):
        tables = {weight_name(n): canonical(np.asarray(w[n]), ws.shape) for n, ws in spec.weights.items()}
        tables[weight_name(name)][index] = F.from_signed(np.array([value]))[0]
        _, state = _commit_tables(spec, tables)
        WF.prove_wellformed(spec, state, default_params())


def test_indicator_column_is_the_verifiers(small, monkeypatch):
    """A prover that pairs junk padding with a flag of 1 (an all-ones "indicator") passes the lookup;
    the verifier evaluates the indicator itself (its terms move to the value side of the lookup's leaf
    claims, which the opening then refutes)."""
    spec, w, _, _, _ = small
    real = WF._flag_values
    monkeypatch.setattr(WF, "_flag_values", lambda plan: {k: np.ones_like(v) for k, v in real(plan).items()})
    com, forged = _forge(spec, w, {"W": [(7, 5)]})
    monkeypatch.undo()
    res = WF.verify_wellformed(_parts(spec, com), forged)
    assert not res.ok and ("indicator column" in res.reason or "does not match the claimed values" in res.reason), \
        res.reason


def test_weaker_aux_commitment_is_rejected(small):
    """An aux commitment with fewer queries than the weight commitment's code (the stacked opening
    cannot even be made with one; the verifier refuses the commitment's layout first)."""
    spec, _, com, _, proof = small
    wp = WF.WellformedProof.from_bytes(proof)
    aux = pcs.Commitment.from_bytes(wp.aux_commitment)
    weak_base = dataclasses.replace(com.weights.layout, n_queries=max(1, com.weights.layout.n_queries // 8))
    tables = {n: np.zeros(1 << k, dtype=np.uint32) for n, k in zip(aux.layout.names, aux.layout.log_sizes)}
    weak, _ = pcs.commit_companion(weak_base, tables)
    forged = dataclasses.replace(wp, aux_commitment=weak.to_bytes()).to_bytes()
    res = WF.verify_wellformed(com, forged)
    assert not res.ok and "layout" in res.reason, res.reason


def test_proof_is_bound_to_its_commitment(small):
    spec, w, com, _, proof = small
    other, _ = commit_model(spec, w, CommitmentKey.generate())  # same weights, other hiding randomness
    assert not WF.verify_wellformed(other, proof).ok
    w2 = {k: v.copy() for k, v in w.items()}
    w2["W"][0, 0] = -w2["W"][0, 0] + 1
    com2, _ = commit_model(spec, w2, CommitmentKey.generate())
    assert not WF.verify_wellformed(com2, proof).ok
    stronger = pcs.PcsParams.for_security(110.0)  # other parameters: the statement differs
    assert not WF.verify_wellformed((spec, com.weights, stronger), proof).ok
    spec2 = dataclasses.replace(spec, arch={"family": "test2"})
    assert not WF.verify_wellformed((spec2, com.weights, com.params), proof).ok


def test_statement_errors(small):
    spec, w, com, state, proof = small
    bad = dataclasses.replace(spec, weights=dict(spec.weights) | {"g": WeightSpec("g", (3,), "int64", 0)})
    res = WF.verify_wellformed((bad, com.weights, com.params), proof)
    assert not res.ok and "bad statement" in res.reason
    with pytest.raises(ValueError, match="unknown weight dtype"):
        WF.prove_wellformed(bad, state, com.params)
    res = WF.verify_wellformed(object(), proof)
    assert not res.ok and "bad statement" in res.reason
    assert not WF.verify_wellformed(com, "not bytes").ok  # type: ignore[arg-type]
    with pytest.raises(WF.WellformedError, match="does not verify"):
        WF.require_wellformed(com, proof[:-1])
    assert WF.require_wellformed(com, proof).ok


def test_soundness_accounting_failure_is_a_named_rejection(small, monkeypatch):
    """The verifier's call of ``soundness_figures``: when it refuses the transcript's records (a draw
    without a recorded degree, uneven lookup draws) the proof is rejected with that reason. No proof
    reaches this (the verifier's own transcript records every draw; test_zk_verifier_checks.py::
    test_f1_soundness_figures_refuse_unaccounted_or_uneven_draws), so the refusal is simulated."""
    from blindproof.zk.proof import statement as STMT
    from blindproof.zk.iop.claims import Reject

    spec, _, com, _, proof = small

    def refuse(*args, **kw):
        raise Reject("GKR batching challenges without a recorded degree")

    monkeypatch.setattr(STMT, "soundness_figures", refuse)
    res = WF.verify_wellformed(com, proof)
    assert not res.ok and res.reason == "wellformed: GKR batching challenges without a recorded degree", res.reason


def test_byte_flips_truncation_and_trailing_bytes(small):
    _, _, com, _, proof = small
    rng = np.random.default_rng(11)
    positions = np.unique(np.concatenate([np.arange(12), rng.integers(0, len(proof), 80)]))
    for pos in positions:
        bad = bytearray(proof)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        res = WF.verify_wellformed(com, bytes(bad))  # never raises
        assert not res.ok, f"flip at byte {pos} accepted"
    for bad in (proof[:-1], proof + b"\0", b"", proof[: len(proof) // 2], b"BPWF" + b"\0" * 64):
        assert not WF.verify_wellformed(com, bad).ok


# --- the proof ships with the model commitment ------------------------------------------------------------

def test_commit_model_carries_the_proof_and_loading_checks_it(small):
    from blindproof.zk.proof import proof_file
    from blindproof.zk.proof.commitment import ModelCommitment
    from blindproof.zk.proof.proof_file import ProofFileError

    spec, w, com, _, _ = small
    assert com.wellformed and WF.verify_wellformed(com, com.wellformed).ok
    key = CommitmentKey.generate()
    again, _ = commit_model(spec, w, key)
    assert commit_model(spec, w, key)[0].to_bytes() == again.to_bytes()  # reproducible from the key
    back = ModelCommitment.from_bytes(com.to_bytes())
    assert back.wellformed == com.wellformed and back.digest() == com.digest()

    def with_proof(proof: bytes) -> bytes:
        m = proof_file.proof_pb2.ModelCommitment()
        m.ParseFromString(com.to_bytes())
        m.wellformed = proof
        return m.SerializeToString(deterministic=True)

    with pytest.raises(ProofFileError, match="lacks the proof that its weights respect their dtypes"):
        ModelCommitment.from_bytes(with_proof(b""))
    with pytest.raises(ProofFileError, match="respect their dtypes does not verify"):
        ModelCommitment.from_bytes(with_proof(again.wellformed))  # a proof about other hiding randomness
    flipped = bytearray(com.wellformed)
    flipped[len(flipped) // 3] ^= 4
    with pytest.raises(ProofFileError, match="does not verify"):
        ModelCommitment.from_bytes(with_proof(bytes(flipped)))


def test_out_of_range_weights_cannot_be_committed_or_loaded(small):
    """The owner's tool refuses them; a third party's file with them (and a proof made anyway) does not load."""
    from blindproof.zk.proof.commitment import ModelCommitment
    from blindproof.zk.proof.proof_file import ProofFileError

    spec, w, _, _, _ = small
    bad = {k: v.copy() for k, v in w.items()}
    bad["W"][1, 1] = 300
    with pytest.raises(ValueError, match="outside"):
        commit_model(spec, bad, CommitmentKey.generate())
    wcom, forged = _forge(spec, bad)
    third = ModelCommitment(spec.to_json(), wcom, default_params(), forged)
    with pytest.raises(ProofFileError, match="does not verify: .*lookup"):
        ModelCommitment.from_bytes(third.to_bytes())


def _opened(monkeypatch, run):
    """The claims every opening made while ``run()`` proved, and what it returned."""
    seen: list = []
    real = pcs.open_claims

    def record(states, claims, transcript, **kw):
        seen.extend(claims)
        return real(states, claims, transcript, **kw)

    monkeypatch.setattr(pcs, "open_claims", record)
    try:
        out = run()
    finally:
        monkeypatch.undo()
    return seen, out


def test_no_weight_value_is_revealed(small, monkeypatch):
    """Zero knowledge of the commitment file: every claim the proof settles that touches a weight (or
    a limb column of one) is a linear claim that also has a fresh randomizer or mask term, so its
    value says nothing about the weights (format 2 settled plain ``W̃(p)`` at every lookup leaf point:
    a 10-entry bias of mlp-784-56-10 came back exactly from one commitment file)."""
    spec, _, com, state, _ = small
    seen, proof = _opened(monkeypatch, lambda: WF.prove_wellformed(spec, state, com.params))
    assert WF.verify_wellformed(_parts(spec, com.weights), proof).ok
    secret = lambda n: n.startswith("w:") or ".limb" in n or ":limb" in n  # noqa: E731
    touching = 0
    for c in seen:
        terms = getattr(c, "terms", None) or ((c.tensor, c.point, (1, 0, 0, 0)),)
        names = [t[0] for t in terms]
        if any(secret(n) for n in names):
            touching += 1
            assert any(n.startswith(("zk~blind:", "zk~mask.")) for n in names), \
                f"a claim reveals a value of {[n for n in names if secret(n)]} with no randomizer"
    assert touching >= 3  # the int8, int16 and int32 weights are all read


def test_a_two_entry_int32_bias_is_hidden_by_the_commitment_file(monkeypatch):
    """A binary classifier's 2-entry int32 output bias (one variable: an extension-valued randomizer,
    four base dimensions). Its two windows share one point, so the commitment file reveals it once
    and the rank of what that value says about the bias, beyond its randomizer, is 0 (with a
    base-field randomizer, or a value per window, the bias came back exactly from the file)."""
    from test_zk_leakage_rank import _binary_classifier, _form_rows, _rank_mod_p

    qm, _ = _binary_classifier()
    seen, _ = _opened(monkeypatch, lambda: commit_model(qm.spec, qm.weights, CommitmentKey.generate()))
    (bias,) = [f"w:{k}" for k, w in qm.spec.weights.items() if w.dtype == "int32" and tuple(w.shape) == (2,)]
    table = "zk~blind:" + bias
    forms = {}
    for c in seen:
        names = [t[0] for t in getattr(c, "terms", ())]
        if bias in names and table in names:  # a revealed value of the bias (δ claims: implied by them)
            forms[b"".join(np.asarray(t[1]).tobytes() for t in c.terms)] = c
    assert len(forms) == 1  # one point for both windows
    rows = np.concatenate([_form_rows([t for t in c.terms if t[0] == table], {table: 0})[table] for c in forms.values()])
    tensor = np.concatenate([np.ascontiguousarray(mle.eq_table(next(t[1] for t in c.terms if t[0] == bias)).T)
                             .astype(np.int64) for c in forms.values()])
    assert _rank_mod_p(rows) == 4 and _rank_mod_p(np.concatenate([rows, tensor], axis=1)) == 4


def test_a_one_entry_weight_is_named_as_not_hidden():
    """A one-entry weight has no variable to randomize in: committing it warns, naming it."""
    from blindproof.zk.proof.program import NotHiddenWarning

    spec = _spec()  # one output channel: the bias (one value per channel) has one entry
    one = dataclasses.replace(spec, weights={**spec.weights, "W": dataclasses.replace(spec.weights["W"], shape=(1, 6)),
                                             "b": dataclasses.replace(spec.weights["b"], shape=(1,)),
                                             "g": dataclasses.replace(spec.weights["g"], shape=(1,))})
    w = _weights(np.random.default_rng(0)) | {"W": np.arange(6).reshape(1, 6), "b": np.array([12345]), "g": np.array([7])}
    with pytest.warns(NotHiddenWarning, match="w:b"):
        commit_model(one, w, CommitmentKey.generate())
