"""Padding soundness: a cheating prover controls every committed table, padded entries included.

Each test commits a chosen tensor with nonzero entries in its padding (the committed canonical table is
not the zero-padded one) and a real output that the junk would explain if the padding counted, and
checks that the verifier rejects. ``ProverContext.table`` is patched to hand out the junk table, so
the proof, the commitment digest and the settled openings all see the same (cheating) data."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from blindproof.zk.proof import program as P
from blindproof.zk.field.encoding import ProofFormatError
from blindproof.zk.field.babybear import FieldError
from blindproof.zk.ops import base as B
from blindproof.zk.iop import claims as CL
from blindproof.zk.iop import layout as LAY
from blindproof.zk.ops import norm, softmax
from blindproof.quant.reference import run_program
from blindproof.quant.spec import Op, TensorSpec
from blindproof.quant.tables import exp_table

from zk_nonlinear_harness import REJECTIONS, one_op_spec, run, trace_values
from zk_ops_cases import ACC, I16, one_op, tensor

BIG = (1 << 28) - 1  # scores: a spread below 0.87·2^30 (ops/softmax.py)


@pytest.fixture
def junk(monkeypatch):
    """``junk[name] = padded int64 array``: the table committed for ``name`` (real block + padding)."""
    tables: dict[str, np.ndarray] = {}
    orig = B.ProverContext.table

    def table(self, name):
        if name in tables:
            return LAY.canonical(tables[name])
        return orig(self, name)

    monkeypatch.setattr(B.ProverContext, "table", table)
    return tables


def padded(real: np.ndarray, rng: np.random.Generator, lo: int, hi: int) -> np.ndarray:
    """``real`` in its block, random junk in ``[lo, hi]`` on every padded entry."""
    out = rng.integers(lo, hi + 1, size=LAY.padded_shape(real.shape)).astype(np.int64)
    out[tuple(slice(0, d) for d in real.shape)] = real
    return out


def _single(spec, vals, junk_tables) -> tuple[bool, str]:
    """Prove op 0 with a lenient prover, verify, settle against the (junk) committed tables."""
    public = {n: vals[n] for n in spec.inputs}
    full, shapes = P.with_aux(spec, vals, public, strict=False)
    proof, _claims, out = P.prove_op(spec, 0, full, shapes, public, 0, strict=False)
    tables = {n: (LAY.canonical(junk_tables[n]) if n in junk_tables else LAY.canonical(v)) for n, v in full.items()}
    try:
        claims = P.verify_op(spec, 0, out.value, B.OpProof.from_bytes(proof.to_bytes()), shapes, public)
        CL.OracleSettler(tables).check(claims)
    except (CL.Reject, ProofFormatError, FieldError) as exc:
        return False, str(exc)
    return True, ""


# --- norm: junk in the hidden dimension's padding ------------------------------------------------------

@pytest.mark.parametrize("kind", ["rms", "layer"])
def test_norm_padding_in_hidden_dim_is_rejected(junk, kind):
    """The cheater runs the norm over the padded width (48 -> 64 columns of which 16 are junk) and
    commits that run: padded x, and every full-size witness with its padding columns."""
    d, dp = 48, 64
    rng = np.random.default_rng(1)
    x = np.clip(rng.normal(0, 1500, size=(2, 5, d)).round().astype(np.int64), -I16, I16)
    tensors = {"x": TensorSpec("x", 10, -I16, I16, "activation"), "y": TensorSpec("y", 12, -I16, I16, "activation")}
    mk = lambda w: Op("norm", ("x",), "y", {"kind": kind, "d": w, "E": 671, "C": 32768})  # noqa: E731
    spec = one_op_spec(mk(d), tensors, {})
    honest = trace_values(spec, {"x": x})
    xp = padded(x, rng, -3000, 3000)
    wide = trace_values(one_op_spec(mk(dp), tensors, {}), {"x": xp})  # the sums include the padding
    cheat = {}
    for name, v in wide.items():
        if v.shape[-1] == dp:
            cheat[name] = v[..., :d].copy()
            junk[name] = v
        else:
            cheat[name] = v  # per-row witnesses (S, s, mean, …) of the padded run
    assert not np.array_equal(cheat["y"], honest["y"])
    with pytest.raises(REJECTIONS):
        run(norm, spec, spec.ops[0], cheat, strict=False)


def test_norm_output_padding_rows_are_not_forced_to_zero(junk):
    """Documents why no op may sum over padded rows of a trace tensor on trust: on a padded row the
    norm's square root is 0, so ``n·s + r = 0`` leaves ``n`` (and ``y = n``) free. This proof of a
    norm whose output holds junk on its padded row (and honest real rows) is ACCEPTED — harmless on
    its own, since the real rows are right; `mean_pool` (below) must not count those rows."""
    rng = np.random.default_rng(2)
    x = np.clip(rng.normal(0, 1500, size=(1, 3, 16)).round().astype(np.int64), -I16, I16)
    tensors = {"x": TensorSpec("x", 10, -I16, I16, "activation"), "y": TensorSpec("y", 12, -I16, I16, "activation")}
    op = Op("norm", ("x",), "y", {"kind": "rms", "d": 16, "E": 5, "C": 20000})
    spec = one_op_spec(op, tensors, {})
    vals = trace_values(spec, {"x": x})
    assert norm._Plan(op, x.shape, spec).identity
    for name in ("y", "y/n"):
        t = np.zeros((1, 4, 16), dtype=np.int64)
        t[:, :3] = vals[name]
        t[:, 3] = 777  # the padded row
        junk[name] = t
    checks = norm._Plan(op, x.shape, spec).checks

    def recount(extra):  # multiplicities of the committed (junk) columns, as a cheater would send
        get = lambda n: LAY.canonical(junk[n] if n in junk else extra.get(n, vals.get(n)))  # noqa: E731
        for table, groups, mname in checks._chunks():
            extra[mname] = B._lenient_multiplicities(table, [[get(n) for n in names] for names, _ in groups])

    run(norm, spec, op, vals, cheat_aux=recount, strict=False)  # accepted: padded rows are free


# --- softmax: junk keys in the padding ------------------------------------------------------------------

@pytest.mark.parametrize("junk_score", [0, 5000, 40000])
def test_softmax_padding_keys_are_rejected(junk, junk_score):
    """Non-causal softmax over 7 keys (padded to 8): the cheater runs it over 8 keys, the eighth a junk
    score, so mass moves to the padding key and every real probability drops."""
    t, T, Tp = 5, 7, 8
    op = Op("softmax", ("s",), "p", {"causal": False, "frac": 14, "table": "softmax.exp"})
    tensors = {"s": TensorSpec("s", 12, -BIG, BIG, "accumulator"), "p": TensorSpec("p", 14, 0, 1 << 14, "activation")}
    spec = one_op_spec(op, tensors, {"softmax.exp": exp_table("softmax.exp", 12, 15)})
    rng = np.random.default_rng(3)
    s = rng.normal(0, 3000, size=(1, 2, t, T)).round().astype(np.int64)
    honest = trace_values(spec, {"s": s})
    sp = np.zeros((1, 2, 8, Tp), dtype=np.int64)
    sp[..., :T] = np.concatenate([s, np.zeros((1, 2, 8 - t, T), dtype=np.int64)], axis=2)[..., :T]
    sp[..., T] = int(s.max()) + junk_score
    wide = trace_values(spec, {"s": sp[:, :, :t]})  # 8 keys, the last one junk
    cheat = {}
    for name, v in wide.items():
        real = v[..., :T] if v.shape[-1] == Tp else v
        cheat[name] = np.ascontiguousarray(real)
        if v.shape[-1] == Tp:
            junk[name] = v
    assert not np.array_equal(cheat["p"], honest["p"])
    with pytest.raises(REJECTIONS):
        run(softmax, spec, op, cheat, strict=False)


def test_softmax_output_padding_keys_alone_are_rejected(junk):
    """Honest real entries, junk probability on a padded key of a real row: rejected. This is what
    keeps `pv` sound: it sums p·v over padded keys, and v's padded rows need not be zero."""
    op = Op("softmax", ("s",), "p", {"causal": True, "frac": 14, "table": "softmax.exp"})
    tensors = {"s": TensorSpec("s", 12, -BIG, BIG, "accumulator"), "p": TensorSpec("p", 14, 0, 1 << 14, "activation")}
    spec = one_op_spec(op, tensors, {"softmax.exp": exp_table("softmax.exp", 12, 15)})
    s = np.random.default_rng(4).normal(0, 3000, size=(1, 2, 3, 3)).round().astype(np.int64)
    vals = trace_values(spec, {"s": s})
    p = np.zeros((1, 2, 4, 4), dtype=np.int64)
    p[..., :3, :3] = vals["p"]
    p[0, 0, 0, 3] = 100
    junk["p"] = p
    with pytest.raises(REJECTIONS):
        run(softmax, spec, op, vals, strict=False)


# --- mean_pool: junk rows in the padded sequence ------------------------------------------------------

def test_mean_pool_padding_rows_are_rejected(junk):
    """x (3, 5, 6): the sequence axis is padded to 8. The cheater fills the 3 padded rows with junk and
    claims ``y = ⌊(Σ over all 8 rows + ⌊5/2⌋) / 5⌋`` (a consistent remainder in range)."""
    T = 5
    spec = one_op(Op("mean_pool", ("x",), "y"), [tensor("x"), tensor("y")])
    rng = np.random.default_rng(5)
    x = rng.integers(-1000, 1000, size=(3, T, 6))
    vals = dict(run_program(spec, {}, {"x": x}).tensors)
    xp = padded(x, rng, -2000, 2000)
    xp[3:], xp[..., 6:] = 0, 0  # junk on the padded sequence rows only
    total = xp[:3, :, :6].sum(axis=1) + T // 2
    y = total // T
    cheat = dict(vals, y=y, **{"y/r": total - T * y})
    assert not np.array_equal(y, vals["y"])
    junk["x"] = xp
    ok, reason = _single(spec, cheat, junk)
    assert not ok, "junk padding rows of mean_pool's input changed its output unnoticed"


# --- linear: junk in the shared dimension of the activation --------------------------------------------

def _linear_case(rng, k=5):
    weights = {"W": ((7, k), "int8"), "b": ((7,), "int32")}
    spec = one_op(Op("linear", ("x",), "y", {"weight": "W", "bias": "b"}),
                  [tensor("x"), tensor("y", -ACC, ACC, "accumulator")], weights)
    w = {"W": rng.integers(-127, 128, size=(7, k)), "b": rng.integers(-(1 << 20), 1 << 20, size=7)}
    return spec, run_program(spec, w, {"x": rng.integers(-I16, I16 + 1, size=(2, 3, k))}), w


def test_linear_padding_in_shared_dim_cannot_change_the_output(junk):
    """x (2, 3, 5) @ W(7, 5)^T: k = 5 is padded to 8. With junk in x's padded columns the sum over the
    padded k still equals the real one (the weight commitment is zero-padded), so a wrong real output
    is rejected, and the honest output with junk padding is accepted (the junk is harmless)."""
    rng = np.random.default_rng(6)
    spec, tr, w = _linear_case(rng)
    vals = dict(tr.tensors)
    vals.update({LAY.weight_name(k): np.asarray(v, dtype=np.int64) for k, v in w.items()})
    xp = padded(vals["x"], rng, -I16, I16)
    xp[:, 3:] = 0  # junk in the shared dimension only (padded rows would have to reach y's padding)
    junk["x"] = xp
    # what the junk would add if the weight's padding were not zero: the cheater claims some wrong y
    bad = dict(vals, y=vals["y"].copy())
    bad["y"][1, 2, 3] += 1
    ok, _ = _single(spec, bad, junk)
    assert not ok
    ok, reason = _single(spec, vals, junk)
    assert ok, reason


# --- a whole program: MLP 784-56-10 with a junk-padded intermediate --------------------------------------

def test_mlp_program_with_junk_padding_and_wrong_output_is_rejected(junk):
    """The hidden width 56 is padded to 64: the cheater commits l0.acc and l0.relu with junk in the
    padded columns and claims a wrong logit; the whole-program proof (oracle settler) is rejected."""
    from blindproof.models.workloads import get_workload
    from blindproof.quant import quantize

    wl = get_workload("mlp-784-56-10")
    model = wl.build(0)
    x = wl.example_input(0, 1)
    qm = quantize(model, x)
    trace = qm.run(x)
    rng = np.random.default_rng(7)
    for name in ("l0.acc", "l0.relu"):
        if name in trace.tensors:
            junk[name] = padded(np.asarray(trace.tensors[name], dtype=np.int64), rng, 0, 100)
    assert junk, "the MLP's intermediate names changed"
    tensors = dict(trace.tensors)
    tensors["logits"] = tensors["logits"].copy()
    tensors["logits"][0, 3] += 1
    cheat = dataclasses.replace(trace, tensors=tensors)
    settler = CL.OracleSettler()
    proof = P.prove_trace(qm.spec, qm.weights, cheat, settler, strict=False)
    inputs = {n: tensors[n] for n in qm.spec.inputs}
    outputs = {n: tensors[n] for n in qm.spec.outputs}
    assert not P.verify_trace(qm.spec, inputs, outputs, proof, settler).ok


# --- a whole program: norm -> mean_pool, junk on the norm output's padded row ---------------------------

def test_norm_then_mean_pool_program_with_junk_padded_row_is_rejected(junk, monkeypatch):
    """Two ops, 3 tokens (padded to 4). The norm's output and quotient hold junk on the padded row — the
    norm's relations allow that (see above) — and the cheater claims the pooled output that counts the
    row. Before mean_pool pinned its input's padded rows to zero this whole-program proof was
    accepted with a wrong public output."""
    from blindproof.quant.spec import QuantSpec

    T, d = 3, 16
    op_n = Op("norm", ("x",), "y", {"kind": "rms", "d": d, "E": 5, "C": 20000})
    op_p = Op("mean_pool", ("y",), "pooled")
    tensors = {n: TensorSpec(n, 10, -I16, I16, "activation") for n in ("x", "y", "pooled")}
    spec = QuantSpec(arch={"family": "test"}, inputs=("x",), outputs=("pooled",), ops=(op_n, op_p),
                     tensors=tensors, weights={}, tables={})
    rng = np.random.default_rng(8)
    x = np.clip(rng.normal(0, 1500, size=(1, T, d)).round().astype(np.int64), -I16, I16)
    trace = run_program(spec, {}, {"x": x})
    vals = dict(trace.tensors)
    row = rng.integers(2000, 9000, size=d)  # the padded row
    for name in ("y", "y/n"):
        t = np.zeros((1, 4, d), dtype=np.int64)
        t[:, :T] = vals[name]
        t[:, T] = row
        junk[name] = t
    total = junk["y"].sum(axis=1) + T // 2
    pooled = total // T
    assert not np.array_equal(pooled, vals["pooled"])
    vals["pooled"], vals["pooled/r"] = pooled, total - T * pooled

    checks = norm._Plan(op_n, x.shape, spec).checks
    orig_aux = norm.aux

    def aux(ctx, op):  # multiplicities of the committed (junk) columns, as a cheater would send
        extra = orig_aux(ctx, op)
        get = lambda n: LAY.canonical(junk[n] if n in junk else extra.get(n, vals.get(n)))  # noqa: E731
        for table, groups, mname in checks._chunks():
            extra[mname] = B._lenient_multiplicities(table, [[get(n) for n in names] for names, _ in groups])
        return extra

    monkeypatch.setattr(norm, "aux", aux)
    cheat = dataclasses.replace(trace, tensors=vals)
    settler = CL.OracleSettler()
    proof = P.prove_trace(spec, {}, cheat, settler, strict=False)
    res = P.verify_trace(spec, {"x": x}, {"pooled": pooled}, proof, settler)
    assert not res.ok
    assert "mean_pool" in res.reason, res.reason
