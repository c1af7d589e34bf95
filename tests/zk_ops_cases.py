"""Test harness for the linear-algebra op proofs: one-op programs, honest or cheating provers, proofs
checked from their bytes and every claim settled against the committed tables (an oracle)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

from blindproof.zk.field import babybear as F
from blindproof.zk.proof import program as P
from blindproof.zk.field.encoding import ProofFormatError
from blindproof.zk.ops import base as B
from blindproof.zk.iop import claims as CL
from blindproof.zk.iop import layout as LAY
from blindproof.quant.reference import run_program
from blindproof.quant.spec import Op, QuantSpec, TensorSpec, WeightSpec

ACC = (1 << 30) - 1
I16 = (1 << 15) - 1


def tensor(name: str, lo: int = -I16, hi: int = I16, role: str = "activation") -> TensorSpec:
    return TensorSpec(name, 0, lo, hi, role)


def one_op(op: Op, tensors: list[TensorSpec], weights: dict[str, tuple[tuple[int, ...], str]] | None = None,
           tables: dict | None = None) -> QuantSpec:
    """A program of one op whose inputs are the op's tensor inputs."""
    ws = {k: WeightSpec(k, shape, dt, 0) for k, (shape, dt) in (weights or {}).items()}
    return QuantSpec(arch={"family": "test"}, inputs=tuple(dict.fromkeys(op.inputs)), outputs=(op.output,),
                     ops=(op,), tensors={t.name: t for t in tensors}, weights=ws, tables=dict(tables or {}))


def trace_values(spec: QuantSpec, weights: dict, inputs: dict, start: int = 0) -> dict[str, np.ndarray]:
    """Trace tensors and weights (``"w:"``) of a reference run."""
    vals = dict(run_program(spec, weights, inputs, start=start).tensors)
    vals.update({LAY.weight_name(k): np.asarray(v, dtype=np.int64) for k, v in weights.items()})
    return vals


def run_op(spec: QuantSpec, values: dict[str, np.ndarray], op_index: int = 0, start: int = 0,
           tamper: Callable[[dict], None] | None = None,
           tamper_bytes: Callable[[bytes], bytes] | None = None,
           other_point: bool = False) -> tuple[bool, str, int]:
    """Prove op ``op_index`` (after ``tamper`` edits the values; aux columns are then computed leniently),
    verify from bytes, settle. Returns (accepted, reason, proof size)."""
    vals = {k: np.array(v, dtype=np.int64, copy=True) for k, v in values.items()}
    strict = tamper is None
    if tamper is not None:
        tamper(vals)
    public = {n: vals[n] for n in spec.inputs}
    full, shapes = P.with_aux(spec, vals, public, start=start, strict=strict)
    proof, _claims, out = P.prove_op(spec, op_index, full, shapes, public, start, strict)
    data = proof.to_bytes()
    if tamper_bytes is not None:
        data = tamper_bytes(data)
    value = out.value
    if other_point:  # the verifier is handed the claim moved to another point
        value = LAY.public_eval(full[out.tensor], F.ext(3, 1, 4, 1)[None].repeat(out.point.shape[0], 0)) \
            if out.point.shape[0] else F.eadd(value, F.eone())
    try:
        claims = P.verify_op(spec, op_index, value, B.OpProof.from_bytes(data), shapes, public, start)
        oracle = P.oracle_for(full)
        oracle.check(claims)
    except (CL.Reject, ProofFormatError, F.FieldError) as exc:
        return False, str(exc), len(data)
    return True, "", len(data)


def rejects_all_flips(spec: QuantSpec, values: dict[str, np.ndarray], rng: np.random.Generator, n: int = 24,
                      start: int = 0) -> bool:
    """Prove once honestly, then verify ``n`` copies of the proof with one bit flipped each: True iff
    every copy is rejected (and the untouched proof is accepted)."""
    public = {k: values[k] for k in spec.inputs}
    full, shapes = P.with_aux(spec, values, public, start=start)
    proof, _claims, out = P.prove_op(spec, 0, full, shapes, public, start)
    oracle = P.oracle_for(full)

    def accepted(data: bytes) -> bool:
        try:
            oracle.check(P.verify_op(spec, 0, out.value, B.OpProof.from_bytes(data), shapes, public, start))
        except (CL.Reject, ProofFormatError, F.FieldError):
            return False
        return True

    data = proof.to_bytes()
    return accepted(data) and not any(accepted(bad) for bad in flip_bytes(data, rng, n))


def flip_bytes(data: bytes, rng: np.random.Generator, n: int = 24) -> list[bytes]:
    """``n`` copies of ``data`` with one random bit flipped each."""
    out = []
    for pos in rng.choice(len(data), size=min(n, len(data)), replace=False):
        b = bytearray(data)
        b[pos] ^= 1 << int(rng.integers(8))
        out.append(bytes(b))
    return out


def completeness_test(cases: dict):
    """``test_complete`` over every case of ``cases`` (name -> builder of (spec, values) from an rng): the
    honest proof verifies and its claims settle. Bind it to a module-level name starting with ``test_``."""
    @pytest.mark.parametrize("case", sorted(cases))
    def test_complete(case):
        spec, vals = cases[case](np.random.default_rng(1))
        ok, why, _ = run_op(spec, vals)
        assert ok, why
    return test_complete


def wrong_output_test(cases: dict, names=None, seed: int = 2):
    """``test_rejects_wrong_output_element``: one output entry (the smallest in magnitude) off by one is
    rejected, for ``names`` (default: every case)."""
    @pytest.mark.parametrize("case", sorted(cases) if names is None else names)
    def test_rejects_wrong_output_element(case):
        spec, vals = cases[case](np.random.default_rng(seed))

        def tamper(v):
            y = v["y"].reshape(-1)
            y[int(np.argmin(np.abs(y)))] += 1

        assert not run_op(spec, vals, tamper=tamper)[0]
    return test_rejects_wrong_output_element
