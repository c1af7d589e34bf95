"""Benchmark the layer protocols (blindproof.zk.ops): prove / verify time and proof size per op case.

Each case is one op of a small integer program on random data, proved against a random claim on its
output exactly as the program prover does (``program.prove_op``), verified from its bytes
(``program.verify_op``) and its claims checked against the tables. "commit" is the hiding PCS
commitment (``zk.commit.pcs.commit``, default parameters) of the tensors the case names — the activations the
op produces or needs committed; "prove total" = aux columns + commit + op proof. Verify time excludes
the PCS opening (batched over a whole proof; see docs/bench_pcs.md). One thread; medians; wall and
process CPU time (the machine may be shared). Writes docs/bench_zk_ops.{json,md}.

    python benchmarks/bench_zk_ops.py                 # every case
    python benchmarks/bench_zk_ops.py --quick         # small cases only
    python benchmarks/bench_zk_ops.py --case NAME     # one case (repeatable)

Cases live in ``CASES`` (name -> builder); add one with ``@case("name", quick=False)``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import blindproof  # noqa: E402,F401  (pins threads)
from bench_zk_core import machine, timed  # noqa: E402
from blindproof.zk.commit import pcs  # noqa: E402
from blindproof.zk.proof import program as P  # noqa: E402
from blindproof.zk.ops import base as B  # noqa: E402
from blindproof.zk.iop import claims as CL
from blindproof.zk.iop import layout as LAY
from blindproof.quant.reference import run_program  # noqa: E402
from blindproof.quant.spec import ACC_BOUND, Op, QuantSpec, TensorSpec, WeightSpec  # noqa: E402
from blindproof.quant.tables import rope_table  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent / "docs"
ACC = ACC_BOUND - 1  # accumulators: the integer model's bound
SCORES = (1 << 28) - 1  # softmax inputs: declared within ±2^28 (a wider spread could wrap max − s)
I16 = (1 << 15) - 1


@dataclass
class Case:
    """One op of a one-op program with its trace values."""

    spec: QuantSpec
    values: dict[str, np.ndarray]  # trace tensors and weights ("w:<name>")
    commit: tuple[str, ...] = ()  # tensors committed as part of "prove total"
    start: int = 0
    note: str = ""
    op_index: int = 0
    public: dict[str, np.ndarray] = field(default_factory=dict)


CASES: dict[str, tuple[Callable[[np.random.Generator], Case], bool]] = {}


def case(name: str, quick: bool = False):
    """Register a case builder under ``name``; ``quick`` cases also run with --quick."""
    def deco(fn):
        CASES[name] = (fn, quick)
        return fn
    return deco


def one_op(op: Op, tensors: list[TensorSpec], weights: dict | None = None, tables: dict | None = None) -> QuantSpec:
    """A program of one op whose inputs are the op's tensor inputs."""
    ws = {k: WeightSpec(k, shape, dt, 0) for k, (shape, dt) in (weights or {}).items()}
    return QuantSpec(arch={"family": "bench"}, inputs=tuple(dict.fromkeys(op.inputs)), outputs=(op.output,),
                     ops=(op,), tensors={t.name: t for t in tensors}, weights=ws, tables=dict(tables or {}))


def traced(spec: QuantSpec, weights: dict, inputs: dict, start: int = 0, **kw) -> Case:
    """Run the reference and wrap the values in a Case."""
    vals = dict(run_program(spec, weights, inputs, start=start).tensors)
    vals.update({LAY.weight_name(k): np.asarray(v, dtype=np.int64) for k, v in weights.items()})
    return Case(spec, vals, start=start, **kw)


def _t(name, lo=-I16, hi=I16, role="activation"):
    return TensorSpec(name, 0, lo, hi, role)


# --- cases: linear algebra -------------------------------------------------------------------------

def _linear(rng, m, k, n, bias=True, note=""):
    params, weights = {"weight": "W"}, {"W": ((n, k), "int8")}
    w = {"W": rng.integers(-127, 128, size=(n, k))}
    if bias:
        params["bias"] = "b"
        weights["b"] = ((n,), "int32")
        w["b"] = rng.integers(-(1 << 20), 1 << 20, size=n)
    spec = one_op(Op("linear", ("x",), "y", params), [_t("x"), _t("y", -ACC, ACC, "accumulator")], weights)
    x = rng.integers(-2000, 2000, size=(m, k))  # keeps k·|x|·127 below 2^30
    return traced(spec, w, {"x": x}, commit=("y",), note=note or f"x ({m}, {k}) int16, W ({n}, {k}) int8")


@case("linear 128x768 @ 768x3072")
def _c_linear_big(rng):
    return _linear(rng, 128, 768, 3072, note="GPT-2 MLP up-projection at 128 tokens; commits y (128x3072)")


@case("linear tiny-llama 16x64 @ 64x256", quick=True)
def _c_linear_tiny(rng):
    return _linear(rng, 16, 64, 256, bias=False)


def _attn(rng, kind, b, h, kv, t, hd):
    a_shape = (b, h, t, hd) if kind == "qk" else (b, h, t, t)
    spec = one_op(Op(kind, ("a", "c"), "y"), [_t("a"), _t("c"), _t("y", -ACC, ACC, "accumulator")])
    return traced(spec, {}, {"a": rng.integers(-1000, 1000, size=a_shape),
                             "c": rng.integers(-1000, 1000, size=(b, kv, t, hd))}, commit=("y",),
                  note=f"{h} heads ({kv} kv), t={t}, hd={hd}")


@case("qk tiny-llama (4 heads, 2 kv, t=16, hd=16)", quick=True)
def _c_qk_tiny(rng):
    return _attn(rng, "qk", 1, 4, 2, 16, 16)


@case("pv tiny-llama (4 heads, 2 kv, t=16, hd=16)", quick=True)
def _c_pv_tiny(rng):
    return _attn(rng, "pv", 1, 4, 2, 16, 16)


@case("qk GPT-2 (12 heads, t=128, hd=64)")
def _c_qk_gpt2(rng):
    return _attn(rng, "qk", 1, 12, 12, 128, 64)


def _rescale(rng, shape, shift, note):
    spec = one_op(Op("rescale", ("x",), "y", {"shift": shift}), [_t("x", -ACC, ACC, "accumulator"), _t("y")])
    x = rng.integers(-(1 << 24), 1 << 24, size=shape)
    return traced(spec, {}, {"x": x}, commit=("y", "y/q", "y/r"), note=note)


@case("rescale tiny-llama (16, 256) per-channel shifts", quick=True)
def _c_rescale_tiny(rng):
    return _rescale(rng, (16, 256), [int(v) for v in rng.integers(7, 10, size=256)], "clamped to int16")


@case("rescale 128x3072 per-channel shifts")
def _c_rescale_big(rng):
    return _rescale(rng, (128, 3072), [int(v) for v in rng.integers(8, 11, size=3072)], "clamped to int16")


@case("add tiny-llama (16, 64) with clamp", quick=True)
def _c_add(rng):
    spec = one_op(Op("add", ("a", "b"), "y"), [_t("a"), _t("b"), _t("y")])
    return traced(spec, {}, {"a": rng.integers(-I16, I16, size=(16, 64)), "b": rng.integers(-I16, I16, size=(16, 64))},
                  commit=("y", "y/raw"), note="residual add")


@case("mul tiny-llama (16, 256)", quick=True)
def _c_mul(rng):
    spec = one_op(Op("mul", ("a", "b"), "y"), [_t("a"), _t("b"), _t("y", -ACC, ACC, "accumulator")])
    # products stay below the integer model's 2^29 bound (a full-range int16 square would reach 2^30)
    return traced(spec, {}, {"a": rng.integers(-I16, I16, size=(16, 256)), "b": rng.integers(-2**13, 2**13, size=(16, 256))},
                  commit=("y",), note="SwiGLU product")


@case("rope tiny-llama (4 heads, t=16, hd=16)", quick=True)
def _c_rope(rng):
    tabs = {"rope.cos": rope_table("rope.cos", "cos", 13, 16, 256, 10000.0),
            "rope.sin": rope_table("rope.sin", "sin", 13, 16, 256, 10000.0)}
    spec = one_op(Op("rope", ("x",), "y", {"cos": "rope.cos", "sin": "rope.sin"}),
                  [_t("x"), _t("y", -ACC, ACC, "accumulator")], tables=tabs)
    return traced(spec, {}, {"x": rng.integers(-I16, I16, size=(1, 4, 16, 16))}, commit=("y",), note="")


@case("embed tiny-llama (16 tokens, 256 x 64 table)", quick=True)
def _c_embed(rng):
    spec = one_op(Op("embed", ("tokens",), "y", {"index": "tokens", "weight": "E"}),
                  [_t("tokens", 0, 255, "index"), _t("y")], {"E": ((256, 64), "int16")})
    c = traced(spec, {"E": rng.integers(-I16, I16, size=(256, 64))}, {"tokens": rng.integers(0, 256, size=(1, 16))},
               commit=("y",), note="")
    return c


# --- cases: nonlinear ops (lookup, softmax, norm) -------------------------------------------------------

def _nonlinear(spec: QuantSpec, inputs: dict, note: str, start: int = 0) -> Case:
    c = traced(spec, {}, inputs, start=start, note=note)
    c.commit = ("*",)  # resolved in measure(): every column the op introduces
    return c


def _lookup(rng, shape, fn, note):
    from blindproof.quant.tables import activation_table
    tab = activation_table("act.table", fn, 12, 12)
    spec = one_op(Op("lookup", ("x",), "y", {"table": "act.table"}), [_t("x"), _t("y")], tables={"act.table": tab})
    return _nonlinear(spec, {"x": rng.integers(-I16, I16 + 1, size=shape)}, note)


@case("lookup GELU 128x3072")
def _c_gelu_big(rng):
    return _lookup(rng, (128, 3072), "gelu", "GPT-2 MLP activation (2^18.6 pairs, 2^16-row table)")


@case("lookup SiLU tiny-llama (16, 256)", quick=True)
def _c_silu_tiny(rng):
    return _lookup(rng, (1, 16, 256), "silu", "SwiGLU gate")


def _softmax(rng, b, h, t, k, note, start=0):
    from blindproof.quant.tables import exp_table
    spec = one_op(Op("softmax", ("s",), "p", {"causal": True, "frac": 14, "table": "softmax.exp"}),
                  [_t("s", -SCORES, SCORES, "accumulator"), _t("p", 0, 1 << 14)],
                  tables={"softmax.exp": exp_table("softmax.exp", 12, 15)})
    return _nonlinear(spec, {"s": rng.normal(0, 6000, size=(b, h, t, k)).round().astype(np.int64)}, note, start)


@case("softmax 12 heads 128x128 causal")
def _c_softmax_big(rng):
    return _softmax(rng, 1, 12, 128, 128, "GPT-2 attention at 128 tokens (scores ~N(0, 1.5) real)")


@case("softmax tiny-llama (4 heads, 16x16) causal", quick=True)
def _c_softmax_tiny(rng):
    return _softmax(rng, 1, 4, 16, 16, "")


def _norm(rng, shape, kind, note):
    d = shape[-1]
    spec = one_op(Op("norm", ("x",), "y", {"kind": kind, "d": d, "E": 671, "C": 32768}), [_t("x"), _t("y")])
    x = np.clip(rng.normal(0, np.sqrt((1 << 27) / d), size=shape).round(), -I16, I16).astype(np.int64)  # S ~ 2^27
    return _nonlinear(spec, {"x": x}, note)


@case("norm LayerNorm 128x768")
def _c_layernorm_big(rng):
    return _norm(rng, (1, 128, 768), "layer", "GPT-2 LayerNorm at 128 tokens")


@case("norm RMSNorm tiny-llama (16, 64)", quick=True)
def _c_rmsnorm_tiny(rng):
    return _norm(rng, (1, 16, 64), "rms", "")


# --- cases: convolution and pooling ------------------------------------------------------------------

def _conv(rng, spatial, kernel, c, o, stride, padding, note):
    from blindproof.quant.conv import ConvGeometry
    geom = ConvGeometry(stride, padding, (1,) * len(spatial))
    spec = one_op(Op("conv", ("x",), "y", {"weight": "W", "bias": "b", **geom.to_params()}),
                  [_t("x"), _t("y", -ACC, ACC, "accumulator")], {"W": ((o, *kernel, c), "int8"), "b": ((o,), "int32")})
    w = {"W": rng.integers(-127, 128, size=(o, *kernel, c)), "b": rng.integers(-(1 << 20), 1 << 20, size=o)}
    return traced(spec, w, {"x": rng.integers(0, 2000, size=(1, *spatial, c))}, commit=("y",), note=note)


@case("conv 3x3 32->64 on 32x32", quick=False)
def _c_conv_big(rng):
    return _conv(rng, (32, 32), (3, 3), 32, 64, (1, 1), (1, 1), "a CIFAR-sized layer; commits y (32x32x64)")


@case("conv LeNet 5x5 6->16 on 14x14", quick=True)
def _c_conv_lenet(rng):
    return _conv(rng, (14, 14), (5, 5), 6, 16, (1, 1), (0, 0), "LeNet-5's second convolution")


@case("max_pool 2x2 on 28x28x6", quick=True)
def _c_max_pool(rng):
    spec = one_op(Op("max_pool", ("x",), "y", {"kernel": [2, 2], "stride": [2, 2]}), [_t("x", 0, I16), _t("y", 0, I16)])
    return traced(spec, {}, {"x": rng.integers(0, I16, size=(1, 28, 28, 6))}, commit=("*",),
                  note="LeNet-5's first pooling; commits y and the gap columns")


# --- measurement -------------------------------------------------------------------------------------

def measure(name: str, c: Case, reps: int) -> dict:
    """Prove/verify one case; returns a result row."""
    public = c.public or {n: c.values[n] for n in c.spec.inputs}

    def aux():
        return P.with_aux(c.spec, c.values, public, c.start)

    aw, ac, (full, shapes) = timed(aux, reps)
    cw, cc = 0.0, 0.0
    if c.commit == ("*",):  # every column the op introduces (nonlinear cases)
        c.commit = tuple(n for n in shapes if n not in c.spec.inputs)
    if c.commit:
        tabs = {n: LAY.canonical(full[n]) for n in c.commit}
        cw, cc, _ = timed(lambda: pcs.commit(tabs), reps)
    pw, pc, (proof, claims, out) = timed(lambda: P.prove_op(c.spec, c.op_index, full, shapes, public, c.start), reps)
    data = proof.to_bytes()
    vw, vc, got = timed(lambda: P.verify_op(c.spec, c.op_index, out.value, B.OpProof.from_bytes(data), shapes,
                                             public, c.start), reps)
    assert len(got) == len(claims) and all(a.same(b) for a, b in zip(claims, got))
    P.oracle_for(full).check(got)
    return {"case": name, "note": c.note, "out_shape": list(np.shape(c.values[c.spec.ops[c.op_index].output])),
            "committed": list(c.commit), "aux_wall_s": aw, "aux_cpu_s": ac, "commit_wall_s": cw,
            "commit_cpu_s": cc, "op_prove_wall_s": pw, "op_prove_cpu_s": pc,
            "prove_total_wall_s": aw + cw + pw, "prove_total_cpu_s": ac + cc + pc,
            "verify_wall_s": vw, "verify_cpu_s": vc, "proof_bytes": len(data), "claims_left": len(got)}


PROGRAMS = {"tiny-llama (batch 1, 16 tokens)": ("tiny-llama", 0), "mlp-784-56-10 (batch 1)": ("mlp-784-56-10", 0)}


def measure_program(label: str, workload: str, reps: int) -> dict:
    """A whole quantized workload proved by ``program.prove_trace`` with the oracle settler (op proofs
    and batched lookups; no PCS commitment or opening)."""
    from blindproof.models.workloads import get_workload
    from blindproof.quant import quantize
    wl = get_workload(workload)
    x = wl.example_input(0, 1)
    qm = quantize(wl.build(0), x)
    trace = qm.run(x)
    inputs = {n: trace.tensors[n] for n in qm.spec.inputs}
    outputs = {n: trace.tensors[n] for n in qm.spec.outputs}
    settler = CL.OracleSettler()
    pw, pc, proof = timed(lambda: P.prove_trace(qm.spec, qm.weights, trace, settler), reps)
    vw, vc, res = timed(lambda: P.verify_trace(qm.spec, inputs, outputs, proof, settler), reps)
    assert res.ok, res.reason
    return {"program": label, "ops": len(qm.spec.ops), "prove_wall_s": pw, "prove_cpu_s": pc,
            "verify_wall_s": vw, "verify_cpu_s": vc, "proof_bytes": len(proof)}


def write_markdown(result: dict, path: Path) -> None:
    m = result["machine"]
    lines = ["# Layer protocol benchmark (blindproof.zk.ops)", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, 1-minute load average {m['load_avg_1m']:.1f} at start; "
             f"threads {m['threads']} (numba {m['numba_threads']}); Python {m['python']}, numpy {m['numpy']}, "
             f"numba {m['numba']}.", "",
             "Medians of repeated runs. *wall* is elapsed time, *cpu* is this process's CPU time (on a "
             "shared machine wall times include waiting for a core; the load average at start is printed above). "
             "*prove total* = aux columns + PCS commit of the named tensors + op proof; *verify* is the op "
             "verifier without the (batched) PCS opening; *proof* is the op proof only.", "",
             "| case | output | committed | prove total ms (wall / cpu) | op proof ms (cpu) | commit ms (cpu) | "
             "verify ms (wall / cpu) | proof KB | claims left |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        names = r["committed"]
        committed = ", ".join(names) if len(names) <= 4 else f"{len(names)} columns (output, witnesses, aux)"
        lines.append(f"| {r['case']} | {tuple(r['out_shape'])} | {committed or '-'} | "
                     f"{r['prove_total_wall_s'] * 1e3:.1f} / {r['prove_total_cpu_s'] * 1e3:.1f} | "
                     f"{r['op_prove_cpu_s'] * 1e3:.1f} | {r['commit_cpu_s'] * 1e3:.1f} | "
                     f"{r['verify_wall_s'] * 1e3:.2f} / {r['verify_cpu_s'] * 1e3:.2f} | "
                     f"{r['proof_bytes'] / 1024:.1f} | {r['claims_left']} |")
    lines += ["", "Notes:", ""]
    lines += [f"- {r['case']}: {r['note']}" for r in result["rows"] if r["note"]]
    if result.get("programs"):
        lines += ["", "## Whole programs (op proofs + batched lookups, oracle settler: no PCS)", "",
                  "| program | ops | prove s (wall / cpu) | verify s (wall / cpu) | proof KB |",
                  "|---|---:|---:|---:|---:|"]
        for r in result["programs"]:
            lines.append(f"| {r['program']} | {r['ops']} | {r['prove_wall_s']:.2f} / {r['prove_cpu_s']:.2f} | "
                         f"{r['verify_wall_s']:.2f} / {r['verify_cpu_s']:.2f} | {r['proof_bytes'] / 1024:.0f} |")
    lines += ["", f"Command: `{result['command']}`", ""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="quick cases only")
    ap.add_argument("--case", action="append", help="run only this case (repeatable)")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 5, 2 with --quick)")
    ap.add_argument("--out", type=Path, default=DOCS, help="output folder (default docs/)")
    ap.add_argument("--no-programs", action="store_true", help="skip the whole-program rows")
    args = ap.parse_args(argv)
    names = args.case or [n for n, (_, quick) in CASES.items() if quick or not args.quick]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {unknown}; known: {list(CASES)}")
    reps = args.reps or (2 if args.quick else 5)
    result = {"machine": machine(), "command": " ".join(["python"] + sys.argv), "rows": []}
    print(json.dumps(result["machine"]))
    for n in names:
        row = measure(n, CASES[n][0](np.random.default_rng(0)), reps)
        result["rows"].append(row)
        print(f"{n}: prove total {row['prove_total_wall_s'] * 1e3:.1f} ms wall / {row['prove_total_cpu_s'] * 1e3:.1f} "
              f"ms cpu (op {row['op_prove_cpu_s'] * 1e3:.1f}, commit {row['commit_cpu_s'] * 1e3:.1f}), verify "
              f"{row['verify_cpu_s'] * 1e3:.2f} ms cpu, proof {row['proof_bytes']} B", flush=True)
    result["programs"] = []
    if not (args.no_programs or args.case):
        for label, (wl, _) in PROGRAMS.items():
            row = measure_program(label, wl, max(1, reps // 2))
            result["programs"].append(row)
            print(f"{label}: prove {row['prove_cpu_s']:.2f} s cpu, verify {row['verify_cpu_s']:.2f} s cpu, "
                  f"proof {row['proof_bytes'] / 1024:.0f} KB", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_zk_ops.json").write_text(json.dumps(result, indent=1))
    write_markdown(result, args.out / "bench_zk_ops.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
