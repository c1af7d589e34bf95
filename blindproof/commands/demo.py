"""`blindproof demo`: blind generation over real gRPC equals plaintext generation, end to end.

Starts `blindproof serve` as a subprocess on a free localhost port, deploys the embedded default model
under a fresh key (and, as a baseline, untransformed), generates text blind and in plaintext, and checks
that the texts are identical. Then it deploys the same model in integer mode, asks for a proof of one
blind inference on a short prompt prefix, verifies it against the commitment computed locally, and
reports the proof size and the prove and verify times.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from blindproof.client.cli_args import cli_errors, one_line
from blindproof.commands.progress import Reporter


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="blind vs plaintext generation through a local server",
                       description="Start a local server, deploy the embedded model under a fresh key, generate "
                                   "blind and in plaintext, show both texts and timings, shut down.")
    p.add_argument("--tier", choices=["permute", "rotate"], default="rotate", help="EE tier (default rotate)")
    p.add_argument("--tokens", type=int, default=80, help="number of tokens to generate (default 80)")
    p.add_argument("--prompt", help="prompt text (default: the embedded model's prompt)")
    p.add_argument("--model", default="default",
                   help="'default' (the embedded model) or a causal workload such as tiny-llama")
    p.add_argument("--server", help="use this running server (host:port) instead of starting one")
    p.add_argument("--proof-tokens", type=int, default=8,
                   help="length of the prompt prefix whose blind inference is proved (default 8)")
    p.add_argument("--no-proof", action="store_true", help="skip the verified (proved) blind inference")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    p.set_defaults(func=run)


def build_summary(*, model_name: str, tier: str, key_id: str, deployment_id: str, plain_deployment_id: str,
                  prompt: str, blind_text: str, plain_server_text: str, plain_local_text: str,
                  seconds: dict[str, float], n_tokens: int, server: str, wire: dict[str, int],
                  identity_check: str | None = None, proof: dict | None = None,
                  identity_probes: int | None = None) -> dict:
    """The demo's result as one dict (printed by --json); later checks add their own keys here."""
    return {
        "model": model_name,
        "tier": tier,
        "key_id": key_id,
        "server": server,
        "deployment_id": deployment_id,
        "plaintext_deployment_id": plain_deployment_id,
        "prompt": prompt,
        "tokens": n_tokens,
        "blind_text": blind_text,
        "plaintext_text": plain_local_text,
        "plaintext_server_text": plain_server_text,
        "blind_equals_plaintext": blind_text == plain_local_text == plain_server_text,
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
        "ms_per_token": {k: round(1e3 * v / n_tokens, 3) for k, v in seconds.items()},
        "wire_bytes": wire,
        # fingerprint verdict with traffic-shaped probe sessions through the blind channel: match | mismatch
        "identity_check": identity_check,
        "identity_probes": identity_probes,  # probe sessions the sequential test sent before deciding
        # a proved blind inference on an integer deployment, verified by the client (None: not requested)
        "proof_verified": None if proof is None else bool(proof.get("verified")),
        "proof": proof,
    }


LABELS = {"blind_server": "blind, through the server", "plaintext_server": "plaintext, through the server",
          "plaintext_local": "plaintext, locally"}
FALLBACK_PROMPT = "The tide comes in twice a day, "


def _load_model(source: str, progress: Reporter):
    """(name, model, prompt): the embedded default model, or a named workload with seeded weights."""
    if source == "default":
        try:
            from blindproof.models.default import default_prompt, load_default_model
            progress("loading the embedded default model")
            return "default (embedded tiny-llama byte model)", load_default_model(), default_prompt()
        except (ImportError, FileNotFoundError) as exc:
            progress(f"embedded default model unavailable ({exc}); using tiny-llama with seeded random weights")
            source = "tiny-llama"
    from blindproof.client.local import load_local_model
    progress(f"building {source} (seeded random weights: the text will be gibberish, but must match)")
    return f"{source} (seed 0)", load_local_model(source, 0), FALLBACK_PROMPT


def _verified_inference(client, model, key, tier: str, tokens, progress: Reporter) -> dict:
    """Deploy the integer model under the same key, run one blind inference with a proof, verify it."""
    from blindproof.client.sdk import ProofJobError
    from blindproof.client.verify import ProofVerificationError

    progress(f"integer deployment (quantized after the EE transform; commitment computed here) and a proved "
             f"blind inference of {tokens.shape[1]} tokens ... ", end="")
    t0 = time.perf_counter()
    dep = client.deploy(model, key, tier, label="demo-integer", mode="integer")
    deploy_s = time.perf_counter() - t0
    out: dict = {"tokens": int(tokens.shape[1]), "deployment_id": dep.deployment_id,
                 "model_digest": dep.commitment.digest().hex()}
    try:
        res = client.infer(dep, tokens, prove=True)
    except (ProofVerificationError, ProofJobError) as exc:
        print("FAILED", file=sys.stderr, flush=True)
        out.update(verified=False, reason=str(exc))
    else:
        print("verified", file=sys.stderr, flush=True)
        out.update(verified=True, bytes=len(res.proof.proof), provable_bits=round(res.proof.provable_bits, 1),
                   conjectured_bits=round(res.proof.conjectured_bits, 1),
                   seconds={"deploy": round(deploy_s, 4), **{k: round(v, 4) for k, v in res.seconds.items()}})
    finally:
        client.delete(dep)
    return out


def _identity_check(client, dep, model, key, tier: str, prompt_text: str, sessions: int = 96, calibration: int = 300):
    """A traffic fingerprint (``fingerprint.traffic``) from the bundled corpus minus the demo's prompt, cut
    into sessions of the shapes the distinguisher suite measured, calibrated on the local fp32 stack,
    and checked with Wald's test over the deployment's gRPC connection (``blindproof fingerprint check``
    does the same from a file)."""
    import secrets

    import torch

    from blindproof.ee import Split
    from blindproof.fingerprint import blind, traffic
    from blindproof.models import tokenizer
    from blindproof.models.default import corpus_text

    gen = torch.Generator().manual_seed(secrets.randbits(62))
    text = (corpus_text("train") + "\n\n" + corpus_text("heldout")).replace(prompt_text.strip(), " ")
    shapes = traffic.SessionShapes.synthetic(prompt=(8, 48), new=(2, 6), seed=secrets.randbits(62))
    pool = traffic.text_sessions(text, shapes, tokenizer.encode, model.cfg.max_seq, gen, count=sessions)
    fp = traffic.make_traffic_fingerprint(model, pool, dep.codec.alpha, dep.codec.extra)
    server, codec = blind.expanded_deployment(model, key, tier, Split(), dep.codec.extra, dep.codec.alpha, gen)
    traffic.calibrate_traffic(fp, codec, traffic.local_sessions(server), "fp32", ("logits",), sessions=calibration,
                              gen=gen)
    return client.check_identity(dep, fp, sequential=True, device_class="fp32", gen=gen)


@cli_errors
def run(args: argparse.Namespace) -> int:
    import torch

    from blindproof.client import BlindClient
    from blindproof.ee import generate_key
    from blindproof.client import fingerprinted as FPD
    from blindproof.models import tokenizer
    from blindproof.server.process import ServerProcess

    if args.tokens < 1:
        raise SystemExit("error: --tokens must be positive")
    if args.proof_tokens < 1:
        raise SystemExit("error: --proof-tokens must be positive")
    progress = Reporter()
    model_name, model, prompt_text = _load_model(args.model, progress)
    cfg = getattr(model, "cfg", None)
    if cfg is None or not getattr(cfg, "causal", False) or getattr(cfg, "output", None) != "logits":
        raise ValueError(f"--model {args.model}: the demo generates text and needs a causal language model "
                         f"such as tiny-llama")
    prompt_text = args.prompt if args.prompt is not None else prompt_text
    prompt = tokenizer.encode(prompt_text)
    if prompt.shape[1] + args.tokens > model.cfg.max_seq + 1:
        raise SystemExit(f"error: prompt plus {args.tokens} tokens exceeds the model's {model.cfg.max_seq} positions")
    server = None
    if args.server is None:
        progress("starting `blindproof serve` on a free localhost port ...")
        try:
            server = ServerProcess().start()
        except (RuntimeError, TimeoutError) as exc:
            raise ConnectionError(f"the local server did not start: {one_line(exc)[-500:]}") from None
    target = args.server or server.target
    try:
        with BlindClient(target) as client:
            client.wait_ready(timeout=30.0 if server is not None else 5.0)
            progress(f"server ready at {target}")
            key = generate_key()
            progress(f"fresh key {key.key_id}; transforming the model locally ({args.tier} tier) and uploading")
            dep = FPD.deploy(client, model, key, args.tier, label="demo")  # harmless noise on every request
            plain = client.deploy(model, None, label="demo-plaintext")
            progress(f"deployed {dep.deployment_id[:16]}… (server digest matches); plaintext baseline "
                     f"{plain.deployment_id[:16]}…")
            seconds: dict[str, float] = {}

            def timed(name: str, fn):
                progress(f"generating {args.tokens} tokens, {LABELS[name]}: ", end="")
                t0 = time.perf_counter()
                out = fn()
                seconds[name] = time.perf_counter() - t0
                print(f"{seconds[name]:.2f} s", file=sys.stderr, flush=True)
                return out

            dots = lambda i, t: print("." if i % 10 == 0 else "", end="", file=sys.stderr, flush=True)  # noqa: E731
            client.stats.reset()
            blind = timed("blind_server", lambda: client.generate(dep, prompt, args.tokens, on_token=dots))
            wire = {"sent": client.stats.bytes_sent, "received": client.stats.bytes_received}
            plain_srv = timed("plaintext_server", lambda: client.generate(plain, prompt, args.tokens, on_token=dots))
            with torch.no_grad():
                plain_loc = timed("plaintext_local", lambda: model.generate(prompt, args.tokens))
            progress("identity check: probe sessions of the bundled corpus's text (calibrated locally), sent "
                     "through the blind channel like generate sessions ... ", end="")
            id_verdict = _identity_check(client, dep, model, key, args.tier, prompt_text)
            identity = id_verdict.decision
            print(f"{identity} ({id_verdict.failures} of {id_verdict.probes} failed)", file=sys.stderr, flush=True)
            client.delete(dep)
            client.delete(plain)
            if not args.no_proof:
                from blindproof.commands.warmup import first_run_notice
                notice = first_run_notice()
                if notice:
                    progress(notice)
            proof = None if args.no_proof else _verified_inference(client, model, key, args.tier,
                                                                   prompt[:, :args.proof_tokens], progress)
    finally:
        if server is not None:
            status = server.stop()
            progress(f"server stopped (exit status {status})")
            server.close()
    summary = build_summary(model_name=model_name, tier=args.tier, key_id=key.key_id, deployment_id=dep.deployment_id,
                            plain_deployment_id=plain.deployment_id, prompt=prompt_text,
                            blind_text=tokenizer.decode(blind[0]), plain_server_text=tokenizer.decode(plain_srv[0]),
                            plain_local_text=tokenizer.decode(plain_loc[0]), seconds=seconds, n_tokens=args.tokens,
                            server=target, wire=wire, identity_check=identity, proof=proof,
                            identity_probes=id_verdict.probes)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"prompt:    {prompt_text!r}")
        print(f"blind:     {summary['blind_text']!r}")
        print(f"plaintext: {summary['plaintext_text']!r}")
        verdict = "IDENTICAL" if summary["blind_equals_plaintext"] else "DIFFERENT"
        print(f"blind and plaintext text are {verdict} ({args.tier} tier, key {key.key_id[:12]}…)")
        for name, ms in summary["ms_per_token"].items():
            print(f"  {LABELS[name]:<30} {seconds[name]:7.3f} s  ({ms:.2f} ms/token)")
        print(f"identity check (harmless-perturbation fingerprint, {id_verdict.probes} probe sessions shaped like "
              f"traffic): {identity}")
        if proof is not None:
            if proof["verified"]:
                print(f"proved blind inference ({proof['tokens']} tokens, integer model): VERIFIED, "
                      f"{proof['bytes'] / 1e6:.2f} MB proof, prove {proof['seconds']['prove']:.2f} s, "
                      f"verify {proof['seconds']['verify']:.2f} s, {proof['provable_bits']:.1f} provable bits")
            else:
                print(f"proved blind inference: NOT VERIFIED ({proof['reason']})")
    proof_ok = proof is None or proof["verified"]
    return 0 if summary["blind_equals_plaintext"] and identity == "match" and proof_ok else 1
