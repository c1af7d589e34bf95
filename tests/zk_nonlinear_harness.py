"""Shared test harness for the nonlinear op proofs: prove one op of a trace, verify it from the proof
bytes, settle every claim against the committed tables (an oracle that evaluates them)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
import torch

from blindproof.zk.iop import mle
from blindproof.zk.field.encoding import ProofFormatError
from blindproof.zk.field.babybear import FieldError
from blindproof.zk.ops import base as B
from blindproof.zk.iop import claims as CL
from blindproof.zk.iop import layout as LAY
from blindproof.quant.reference import run_program
from blindproof.quant.spec import Op, QuantSpec, TensorSpec
from blindproof.zk.iop.transcript import Transcript

REJECTIONS = (CL.Reject, ProofFormatError, FieldError)


@dataclass
class Outcome:
    proof_bytes: bytes
    prover_claims: list
    verifier_claims: list
    verify: Callable[[bytes], list]  # verify other proof bytes for the same commitment and claim


def one_op_spec(op: Op, tensors: dict[str, TensorSpec], tables: dict) -> QuantSpec:
    """A program of one op (inputs = the op's inputs)."""
    return QuantSpec(arch={"family": "test"}, inputs=tuple(op.inputs), outputs=(op.output,), ops=(op,),
                     tensors=tensors, weights={}, tables=tables)


def trace_values(spec: QuantSpec, inputs: dict[str, np.ndarray], start: int = 0) -> dict[str, np.ndarray]:
    """Every tensor and witness of the reference run."""
    return dict(run_program(spec, {}, inputs, start=start).tensors)


def settle(tables: dict[str, np.ndarray], claims) -> None:
    """Oracle settlement: each claim must match the committed table's MLE."""
    for c in claims:
        t = tables.get(c.tensor)
        if t is None:
            raise CL.Reject(f"claim on {c.tensor!r}, which is not committed")
        if mle.num_vars(t) != c.point.shape[0]:
            raise CL.Reject(f"claim on {c.tensor!r} has the wrong number of coordinates")
        if not np.array_equal(mle.evaluate(t, c.point), c.value):
            raise CL.Reject(f"claim on {c.tensor!r} does not match the committed tensor")


def run(module, spec: QuantSpec, op: Op, values: dict[str, np.ndarray], start: int = 0,
        cheat_aux: Callable[[dict], None] | None = None,
        cheat_proof: Callable[[bytes], bytes] | None = None,
        cheat_claim_point: bool = False, strict: bool = True) -> Outcome:
    """Prove ``op`` on ``values`` (possibly tampered by the caller), verify and settle.

    ``cheat_aux`` edits the aux columns before they are committed; ``cheat_proof`` edits the proof
    bytes; ``cheat_claim_point`` hands the verifier the prover's claim moved to another point;
    ``strict=False`` lets a cheating prover finish its proof (no self-checks). Raises one of
    REJECTIONS when the verifier rejects."""
    shapes = {n: tuple(values[n].shape) for n in op.inputs}
    shapes.update(module.shapes(op, [shapes[n] for n in op.inputs], spec))
    vals = {n: np.asarray(values[n], dtype=np.int64) for n in shapes if n in values}
    pctx = B.ProverContext(transcript=Transcript(b"blindproof/test-ops"), spec=spec, shapes=shapes, start=start,
                           values=vals, strict=strict)
    extra = module.aux(pctx, op)
    if cheat_aux is not None:
        cheat_aux(extra)
    vals.update(extra)
    missing = [n for n in shapes if n not in vals]
    assert not missing, f"no values for {missing}"
    tables = {n: pctx.table(n) for n in shapes}
    digest = CL.OracleSettler.digest(tables)

    pctx.transcript.absorb_digest("ops/commitment", digest)
    point = pctx.transcript.challenge_exts("test/out_point", LAY.n_vars(shapes[op.output]))
    claim = B.claim_of(pctx, op.output, point)
    proof, pclaims = module.prove(pctx, op, [claim])
    data = proof.to_bytes()
    if cheat_proof is not None:
        data = cheat_proof(data)

    def verify(data: bytes) -> list:
        vctx = B.VerifierContext(transcript=Transcript(b"blindproof/test-ops"), spec=spec, shapes=shapes,
                                 start=start)
        vctx.transcript.absorb_digest("ops/commitment", digest)
        vpoint = vctx.transcript.challenge_exts("test/out_point", LAY.n_vars(shapes[op.output]))
        if cheat_claim_point:
            vpoint = vpoint.copy()
            vpoint[0, 0] = (int(vpoint[0, 0]) + 1) % 2013265921
        vclaims = module.verify(vctx, op, [CL.Claim(op.output, vpoint, claim.value)], B.OpProof.from_bytes(data))
        settle(tables, vclaims)
        return vclaims

    return Outcome(data, pclaims, verify(data), verify)


def same_claims(a, b) -> bool:
    return len(a) == len(b) and all(x.same(y) for x, y in zip(a, b))


def flip_bytes(data: bytes, rng: np.random.Generator, n: int) -> list[bytes]:
    """``n`` copies of ``data`` with one byte flipped each (positions sampled evenly)."""
    out = []
    for pos in np.linspace(8, len(data) - 1, n).astype(int):
        b = bytearray(data)
        b[pos] ^= 1 + int(rng.integers(0, 255))
        out.append(bytes(b))
    return out


@lru_cache(maxsize=None)
def tiny_llama_trace(seq: int = 8):
    """Quantized tiny-llama (seeded random weights) and one recorded trace."""
    from blindproof.models.transformer import Transformer
    from blindproof.models.workloads import TINY_LLAMA, init_weights
    from blindproof.quant import quantize

    model = init_weights(Transformer(TINY_LLAMA), 0).eval()
    g = torch.Generator().manual_seed(1)
    qm = quantize(model, torch.randint(0, TINY_LLAMA.vocab_size, (2, 16), generator=g))
    toks = torch.randint(0, TINY_LLAMA.vocab_size, (1, seq), generator=g)
    return qm, qm.run(toks)


@lru_cache(maxsize=None)
def small_family_trace(family: str, seq: int = 8):
    """A small GPT-2-style or BERT-style model (random weights) and one trace."""
    from blindproof.models.transformer import Transformer, TransformerConfig
    from blindproof.models.workloads import init_weights
    from blindproof.quant import quantize

    common = dict(vocab_size=300, d_model=96, n_layers=1, n_heads=4, d_ff=384, max_seq=64, norm="layer",
                  mlp="gelu", position="learned", bias=True)
    if family == "gpt2":
        cfg = TransformerConfig(**common, tie_embeddings=True, gelu_approx="tanh")
    else:
        cfg = TransformerConfig(**common, norm_position="post", causal=False, norm_eps=1e-12, embed_norm=True,
                                type_vocab_size=2, output="mean_pool")
    model = init_weights(Transformer(cfg), 3).eval()
    g = torch.Generator().manual_seed(1)
    qm = quantize(model, torch.randint(0, cfg.vocab_size, (2, 16), generator=g))
    return qm, qm.run(torch.randint(0, cfg.vocab_size, (1, seq), generator=g))


def op_values(qm, trace, op: Op) -> dict[str, np.ndarray]:
    """The tensors of one op from a whole-program trace (inputs, output, witnesses)."""
    out = {n: trace.tensors[n] for n in op.inputs}
    out[op.output] = trace.tensors[op.output]
    out.update({k: v for k, v in trace.tensors.items() if k.startswith(op.output + "/")})
    return out
