"""Model support table: every architecture from_hf maps, on its small random-init config.

Per architecture (blindproof.models.hf_examples): loads; float64 output vs transformers (HF's float32
RMSNorm/RoPE made float64, as in tests/test_hf_architectures.py); blind == plaintext in both EE tiers
(client embeds and decodes); the integer model's top-1 agreement (logits, label logits) or minimum cosine
(hidden states, pooled); a proof of the integer model that verifies (and rejects a changed output); the
fingerprint port's harmless vs random output change. Writes docs/bench_models.json and
docs/bench_models.md (the table docs/models.md shows).

    python benchmarks/bench_models.py [--names qwen2 gemma ...]

Rows of hf_examples.UNSUPPORTED are listed with the loader's error. A failing stage is reported in its
cell ("no: <error>"), never dropped.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import blindproof  # noqa: F401  (pins thread pools first)
import numpy as np
import torch

from blindproof.ee import ClientCodec, EEKey, encrypt_model, local_server_step
from blindproof.fingerprint.transformer import port_change
from blindproof.models import hf_examples as ex
from blindproof.models.loaders import from_hf
from blindproof.zk.proof.keys import CommitmentKey
from blindproof.zk.proof.prover import ModelProver
from blindproof.quant import quantize
from blindproof.zk.proof.verifier import verify_model_proof

ROOT = Path(__file__).resolve().parents[1]
KEY = EEKey(bytes(range(1, 33)))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _stage(r: dict, key: str, fn) -> bool:
    """Run one column's measurement; a failure is recorded in the cell (the table reports it), not raised."""
    try:
        r[key] = fn()
        return True
    except Exception as exc:  # noqa: BLE001 - the table reports it
        r[key] = {"error": f"{type(exc).__name__}: {exc}"}
        return False


def _vs_transformers(name: str, hf, ours, ids) -> float:
    patches = ex.float64_internals()
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr, _ in patches]
    try:
        for obj, attr, fn in patches:
            setattr(obj, attr, fn)
        ref_hf = ex.hf_reference(hf, ids, pooled=ours.cfg.output == "mean_pool")
    finally:
        for obj, attr, fn in saved:
            setattr(obj, attr, fn)
    with torch.no_grad():
        ref = ours(ids)
    if name == "llama3-rope":  # the float64 patch computes plain RoPE: compare with stock HF instead
        return _rel(ref, ex.hf_reference(hf, ids, False))
    return _rel(ref, ref_hf)


def _blind(ours, ids) -> dict:
    with torch.no_grad():
        ref = ours(ids)
    out = {}
    for tier in ("permute", "rotate"):
        codec = ClientCodec(ours, KEY, tier)
        y = codec.client_output(local_server_step(encrypt_model(ours, KEY, tier))(codec.client_input(ids), 0))
        out[tier] = _rel(y, ref)
    return out


def _integer(ours, qm) -> dict:
    test_ids = ex.example_ids(8, 12, seed=2)
    with torch.no_grad():
        fref = ours(test_ids).numpy()
    yi = qm.forward(test_ids.numpy())
    if ours.cfg.output in ("logits", "last", "first"):
        return {"top1": float((yi.argmax(-1) == fref.argmax(-1)).mean()), "n": int(fref[..., 0].size)}
    cos = (yi * fref).sum(-1) / np.linalg.norm(yi, axis=-1) / np.linalg.norm(fref, axis=-1)
    return {"min_cos": float(cos.min()), "n": int(cos.size)}


def _proof(qm) -> dict:
    t0 = time.perf_counter()
    prover = ModelProver.create(qm, CommitmentKey(b"\x07" * 32))
    proof = prover.prove(prover.model.encode(ex.example_ids(1, 8, seed=3).numpy()), rng=np.random.default_rng(0))
    data = proof.to_bytes()
    res = verify_model_proof(prover.commitment, data)
    bad = {k: v.copy() for k, v in proof.outputs.items()}
    next(iter(bad.values())).flat[0] += 1
    return {"verifies": bool(res.ok), "rejects_changed_output": not verify_model_proof(
        prover.commitment, data, outputs=bad).ok, "seconds": round(time.perf_counter() - t0, 2),
        "bytes": len(data), "provable_bits": round(float(res.provable_bits), 1) if res.ok else None}


def _fingerprint(ours, ids) -> dict:
    with torch.no_grad():
        pc = port_change(ours, ours.embed_tokens(ids), 0, 100.0)
    return {"harmless_change": pc.harmless_change, "random_change": pc.random_change}


def row(name: str) -> dict:
    hf = ex.build(name)
    r: dict = {"name": name, "hf_class": type(hf).__name__}
    try:
        ours = from_hf(hf)
    except Exception as exc:  # noqa: BLE001 - the table reports it
        r["loads"] = f"no: {exc}"
        return r
    r["loads"], r["output"] = "yes", ours.cfg.output
    ids = ex.example_ids()
    _stage(r, "vs_transformers", lambda: _vs_transformers(name, hf, ours, ids))
    if name == "llama3-rope":
        r["vs_transformers_note"] = "stock HF (float32 RMSNorm/RoPE)"
    _stage(r, "blind", lambda: _blind(ours, ids))
    qm = {}
    if _stage(r, "quantize", lambda: qm.setdefault("m", quantize(ours, ex.example_ids(4, 16, seed=1))) and "ok"):
        _stage(r, "integer", lambda: _integer(ours, qm["m"]))
        _stage(r, "proof", lambda: _proof(qm["m"]))
    else:
        r["integer"] = r["proof"] = r["quantize"]
    _stage(r, "fingerprint", lambda: _fingerprint(ours, ids))
    return r


def _err(cell) -> str | None:
    return f"no: {cell['error']}" if isinstance(cell, dict) and "error" in cell else None


def _fmt(r: dict) -> str:
    if r["loads"] != "yes":
        why = r["loads"].removeprefix("no: ").replace("|", "\\|")
        return f"| {r['name']} | `{r['hf_class']}` | no: {why} | | | | | | |"
    vs = r["vs_transformers"]
    vs = _err(vs) or f"{vs:.1e}{'¹' if 'vs_transformers_note' in r else ''}"
    b = r["blind"]
    blind = _err(b) or f"{b['permute']:.1e} / {b['rotate']:.1e}"
    integ = r["integer"]
    agree = _err(integ) or (f"top-1 {integ['top1']:.3f}" if "top1" in integ else f"min cos {integ['min_cos']:.6f}")
    p = r["proof"]
    proof = _err(p) or f"{'yes' if p['verifies'] and p['rejects_changed_output'] else 'NO'} ({p['seconds']:.1f} s)"
    fp = r["fingerprint"]
    fpc = _err(fp) or f"{fp['harmless_change']:.1e} vs {fp['random_change']:.1e}"
    return (f"| {r['name']} | `{r['hf_class']}` | yes | {r['output']} | {vs} | {blind} | {agree} | {proof} | {fpc} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--names", nargs="*", default=None,
                    help="rows to (re)measure; the others are kept from docs/bench_models.json")
    args = ap.parse_args()
    order = [*ex.ARCHITECTURES, *ex.UNSUPPORTED]
    out_json = ROOT / "docs" / "bench_models.json"
    old = {}
    if args.names is not None and out_json.exists():
        old = {r["name"]: r for r in json.loads(out_json.read_text())["rows"]
               if r["loads"] != "yes" or "blind" in r}  # rows of this format only
    names = args.names if args.names is not None else order
    for name in names:
        old[name] = row(name)
        print(_fmt(old[name]), flush=True)
    rows = [old[n] for n in order if n in old]
    import transformers
    meta = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__}
    out_json.write_text(json.dumps({"machine": meta, "rows": rows}, indent=1) + "\n")
    head = ("| architecture | HF class | loads | output | max rel. diff vs transformers (float64) | blind == "
            "plaintext (permute / rotate) | integer vs float | proof verifies (prove + verify time) | fingerprint "
            "port (harmless vs random change) |\n|---|---|---|---|---|---|---|---|---|")
    lines = [head, *(_fmt(r) for r in rows), "",
             "¹ against stock transformers, which computes RMSNorm and the RoPE tables in float32 (the float64 "
             "patch computes plain RoPE, not Llama 3's scaling).", "",
             f"`python benchmarks/bench_models.py` — python {meta['python']}, torch {meta['torch']}, "
             f"transformers {meta['transformers']}."]
    (ROOT / "docs" / "bench_models.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
