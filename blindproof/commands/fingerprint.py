"""`blindproof fingerprint`: deploy with a harmless input expansion, make a secret fingerprint, check a server.

    blindproof fingerprint make   --model NAME [--corpus requests.txt] -o fp.json   # probe pool + calibration
    blindproof fingerprint deploy --server ADDR --model NAME --key K                # EE deployment with the expansion
    blindproof fingerprint check  --record dep.json --fingerprint fp.json [--device-class C] [--json]

A fingerprint is a pool of probe sessions cut from text like the client's requests
(``fingerprint.traffic``): each probe is a prompt followed by token-by-token decoding in one
server-side session, shaped like the client's own sessions, and sent once. ``check`` runs Wald's
sequential test with such sessions over the deployment's gRPC connection and saves the record of
used probes back into the fingerprint file. ``--legacy-probes`` (on both ``make`` and ``check``)
selects the old fixed-batch random-byte probes, which a server can tell from traffic.

`check` exits 0 when the server runs the fingerprinted model, 1 on a mismatch (or an undecided test),
2 on bad input, 3 when the server cannot be reached or fails (docs/cli.md, "Exit status").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from blindproof.client.cli_args import add_connection_args, cli_errors

MISMATCH_STATUS = 1  # EXIT_INVALID: the check said no (docs/cli.md, "Exit status")
DEVICE_CLASSES = ("fp32", "tf32", "fp16", "bf16")  # fingerprint.precision.DEVICE_CLASSES (kept import-free)
LEGACY_WARNING = ("warning: --legacy-probes: fixed-batch random-byte probes, which a server can tell from "
                  "ordinary traffic; a server that answers them with the genuine model and everything else "
                  "with another one gets \"match\" (docs/fingerprint.md, section 7)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fingerprint", help="identity checks of a deployment by harmless perturbations",
                       description="Harmless-perturbation fingerprints through the blind channel, probed with "
                                   "sessions of ordinary text (docs/fingerprint.md).")
    fsub = p.add_subparsers(dest="fingerprint_command", metavar="ACTION")

    mk = fsub.add_parser(
        "make", help="make a secret pool of probe sessions and calibrate it (written with mode 0600)",
        description="Cut probe sessions from text like the client's requests (--corpus; default the bundled "
                    "English corpus), in the client's session shapes (--shapes, or --prompt-len/--new-tokens), "
                    "record the model's outputs on each, and calibrate honest deviations per device class on the "
                    "local serving stack (the expanded EE deployment run in-process; tf32/fp16/bf16 simulated on "
                    "CPU). Each probe is sent at most once by `fingerprint check`.")
    mk.add_argument("--model", default="default", help="'default', a workload name, a local Hugging Face folder or a "
                                                                ".safetensors model file")
    mk.add_argument("--seed", type=int, default=0, help="seed of a workload's weights")
    mk.add_argument("--key", type=Path, help="EE key file to calibrate with (default: a fresh key)")
    mk.add_argument("--tier", choices=["permute", "rotate"], default="rotate", help="EE tier (default rotate)")
    mk.add_argument("--corpus", type=Path, action="append",
                    help="UTF-8 text of the kind the client sends, held back from its traffic (repeatable; "
                         "default: the bundled English corpus of the default model)")
    mk.add_argument("--shapes", type=Path,
                    help="JSON list of the client's session shapes, [[prompt_len, n_new], ...] or "
                         "[{\"prompt_len\": .., \"n_new\": ..}, ...]")
    mk.add_argument("--prompt-len", type=int, nargs=2, metavar=("MIN", "MAX"), default=(8, 48),
                    help="without --shapes: log-uniform prompt lengths in tokens (default 8 48)")
    mk.add_argument("--new-tokens", type=int, nargs=2, metavar=("MIN", "MAX"), default=(2, 6),
                    help="without --shapes: uniform numbers of decoded tokens (default 2 6)")
    mk.add_argument("--sessions", type=int, default=256, help="most probe sessions in the pool (default 256)")
    mk.add_argument("--device-class", dest="device_classes", action="append", choices=DEVICE_CLASSES,
                    help="hardware class to calibrate for (repeatable; default fp32): fp32 (CPU), tf32, fp16, "
                         "bf16 (simulated on CPU)")
    mk.add_argument("--alpha", type=float, help="norm of the harmless noise (default: the library default)")
    mk.add_argument("--extra", type=int, help="width of the harmless input expansion (default 16)")
    mk.add_argument("--probes", type=int, default=1000,
                    help="calibration sessions per device class (legacy: calibration probes per mode)")
    mk.add_argument("--legacy-probes", action="store_true",
                    help="make the old fixed-batch random-byte fingerprint instead (distinguishable from traffic)")
    mk.add_argument("--references", type=int, help="--legacy-probes only: number of reference sequences (64)")
    mk.add_argument("--seq", type=int, help="--legacy-probes only: tokens per reference sequence (16)")
    mk.add_argument("-o", "--out", type=Path, required=True, help="fingerprint file to write")
    mk.add_argument("--force", action="store_true", help="overwrite an existing fingerprint file")
    mk.add_argument("--json", action="store_true", help="print a JSON summary")
    mk.set_defaults(func=run_make)

    dp = fsub.add_parser("deploy", help="deploy a model under a key with a harmless input expansion",
                         description="Like `blindproof deploy`, plus a keyed input expansion before the blocks: "
                                     "every request then carries harmless noise, so the server cannot tell a "
                                     "probe from an ordinary request by its norm.")
    add_connection_args(dp)
    dp.add_argument("--model", default="default", help="'default', a workload name, a local Hugging Face folder or a "
                                                                ".safetensors model file")
    dp.add_argument("--seed", type=int, default=0, help="seed of a workload's weights")
    dp.add_argument("--key", type=Path, required=True, help="key file from `blindproof keygen`")
    dp.add_argument("--tier", choices=["permute", "rotate"], default="rotate", help="EE tier (default rotate)")
    dp.add_argument("--alpha", type=float, help="norm of the harmless noise (default: the library default)")
    dp.add_argument("--extra", type=int, help="width of the harmless input expansion (default 16)")
    dp.add_argument("--label", default="", help="label shown in listings")
    dp.add_argument("--record", type=Path, default=Path("deployment.json"), help="deployment record to write")
    dp.add_argument("--json", action="store_true", help="print a JSON summary")
    dp.set_defaults(func=run_deploy)

    ck = fsub.add_parser(
        "check", help="check which model a server runs for a deployment",
        description="Run never-used probe sessions of the fingerprint (a text prompt, then token-by-token decoding "
                    "in one server-side session, like `generate`) over the deployment's gRPC connection, and "
                    "decide match / mismatch with Wald's sequential test; the error probabilities printed hold "
                    "under the stated conditions. The record of used probes is saved back into the fingerprint "
                    "file. Exit status 0 on match, 1 on mismatch or an undecided test (docs/cli.md).")
    add_connection_args(ck, server_required=False)
    ck.add_argument("--deployment", "--record", dest="deployment", default="deployment.json",
                    help="deployment record written by `fingerprint deploy` (default deployment.json, as for "
                         "infer and generate) or a deployment id (then give --key)")
    ck.add_argument("--fingerprint", type=Path, required=True, help="fingerprint file from `fingerprint make`")
    ck.add_argument("--key", type=Path, help="EE key file of the deployment (with a deployment id)")
    ck.add_argument("--tier", choices=["permute", "rotate"], default="rotate", help="EE tier (with a deployment id)")
    ck.add_argument("--device-class", choices=DEVICE_CLASSES, default="fp32",
                    help="hardware class the server declares; its calibration is used (default fp32)")
    ck.add_argument("--mode", choices=["logits", "labels"], default="logits",
                    help="compare full outputs (default) or top-1 labels only")
    ck.add_argument("--p1", type=float, default=0.5, help="least failure rate of a substitute the test must catch")
    ck.add_argument("--fixed-size", action="store_true",
                    help="a fixed number of probes instead of Wald's sequential test (uses more of the pool)")
    ck.add_argument("--legacy-probes", action="store_true",
                    help="allow a fingerprint made with --legacy-probes (fixed-batch random-byte probes)")
    ck.add_argument("--sequential", action="store_true", help="--legacy-probes only: Wald's sequential test")
    ck.add_argument("--json", action="store_true", help="print the verdict as JSON")
    ck.set_defaults(func=run_check)


def _defaults(args: argparse.Namespace) -> tuple[float, int]:
    from blindproof.fingerprint.blind import DEFAULT_ALPHA, DEFAULT_EXTRA
    return (DEFAULT_ALPHA if args.alpha is None else args.alpha), (DEFAULT_EXTRA if args.extra is None else args.extra)


def _source(model: str) -> str:
    """How records and fingerprints name the model: a folder by its absolute path (usable from anywhere)."""
    return str(Path(model).resolve()) if Path(model).is_dir() else model


def _transformer(source: str, seed: int):
    from blindproof.client.local import load_local_model
    from blindproof.models.transformer import Transformer
    model = load_local_model(source, seed)
    if not isinstance(model, Transformer):
        raise ValueError(f"{source} is not a transformer: the harmless input expansion is for transformers")
    return model


def _language_model(model, source: str) -> None:
    """Traffic probes are generation sessions of byte-tokenized text."""
    cfg = model.cfg
    if not cfg.causal or cfg.output != "logits":
        raise ValueError(f"{source} is not a causal language model: probe sessions decode text "
                         "(--legacy-probes makes fixed-batch probes for other transformers)")
    if cfg.vocab_size < 256:
        raise ValueError(f"{source} has a vocabulary of {cfg.vocab_size}; probe text is byte-tokenized (256 ids)")


def _corpus(paths: list[Path] | None) -> tuple[str, str]:
    """(text, where from)."""
    if not paths:
        from blindproof.models.default import corpus_text
        return corpus_text("train") + "\n\n" + corpus_text("heldout"), "the bundled English corpus"
    parts = []
    for p in paths:
        try:
            parts.append(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read corpus {p}: {exc}") from None
    text = "\n\n".join(parts)
    if not text.strip():
        raise ValueError(f"the corpus {', '.join(map(str, paths))} holds no text")
    return text, ", ".join(map(str, paths))


def _shapes(args: argparse.Namespace):
    from blindproof.fingerprint.traffic import SessionShape, SessionShapes
    if args.shapes is None:
        (p0, p1), (n0, n1) = args.prompt_len, args.new_tokens
        if not (1 <= p0 <= p1 and 1 <= n0 <= n1):
            raise ValueError(f"need 1 <= MIN <= MAX for --prompt-len ({p0} {p1}) and --new-tokens ({n0} {n1})")
        import secrets
        return SessionShapes.synthetic(prompt=(p0, p1), new=(n0, n1), seed=secrets.randbits(62))
    try:
        raw = json.loads(args.shapes.read_text())
        rows = [(r["prompt_len"], r["n_new"]) if isinstance(r, dict) else tuple(r) for r in raw]
        return SessionShapes(tuple(SessionShape(int(a), int(b)) for a, b in rows))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read session shapes {args.shapes}: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"session shapes {args.shapes} must be a JSON list of [prompt_len, n_new] pairs or "
                         f"objects with those keys ({exc})") from None


def _refuse_overwrite(args: argparse.Namespace) -> None:
    if args.out.exists() and not args.force:
        raise ValueError(f"{args.out} exists (a fingerprint keeps the record of probes already sent); "
                         "pass --force to overwrite it")


@cli_errors
def run_make(args: argparse.Namespace) -> int:
    _refuse_overwrite(args)
    if args.legacy_probes:
        return _make_legacy(args)
    if args.references is not None or args.seq is not None:
        raise ValueError("--references and --seq are for --legacy-probes; traffic probes take --sessions, "
                         "--shapes or --prompt-len/--new-tokens")
    if args.sessions < 1 or args.probes < 1:
        raise ValueError("--sessions and --probes must be positive")
    import secrets

    import torch

    from blindproof.ee import Split, generate_key, load_key
    from blindproof.fingerprint import traffic
    from blindproof.fingerprint.blind import expanded_deployment
    from blindproof.fingerprint.precision import DeviceServer
    from blindproof.models import tokenizer

    alpha, extra = _defaults(args)
    model = _transformer(args.model, args.seed)
    _language_model(model, args.model)
    key = load_key(args.key) if args.key else generate_key()
    text, source = _corpus(args.corpus)
    shapes = _shapes(args)
    classes = list(dict.fromkeys(args.device_classes or ["fp32"]))
    gen = torch.Generator().manual_seed(secrets.randbits(62))  # which text and shapes: the verifier's secret
    sessions = traffic.text_sessions(text, shapes, tokenizer.encode, model.cfg.max_seq, gen, count=args.sessions)
    if not sessions:
        raise ValueError(f"{source} yields no probe session (no sentence of text)")
    fp = traffic.make_traffic_fingerprint(model, sessions, alpha, extra, source=_source(args.model), seed=args.seed)
    server, codec = expanded_deployment(model, key, args.tier, Split(), extra, alpha, gen)
    for cls in classes:
        traffic.calibrate_traffic(fp, codec, traffic.local_sessions(DeviceServer(server, cls)), cls,
                                  sessions=args.probes, gen=gen)
    fp.save(args.out)
    cal = {k: {"threshold": c.threshold, "p0_upper": c.p0_upper, "honest_failures": c.failures,
               "sessions": c.probes, "check_budget": _budget(fp, k)} for k, c in fp.calibrations.items()}
    summary = {"fingerprint": str(args.out), "probes": "traffic", "model": args.model, "seed": args.seed,
               "corpus": source, "sessions": len(fp.prompts),
               "prompt_tokens": [min(p.numel() for p in fp.prompts), max(p.numel() for p in fp.prompts)],
               "decoded_tokens": [min(e.shape[0] for e in fp.expected), max(e.shape[0] for e in fp.expected)],
               "device_classes": classes, "alpha": fp.alpha, "extra": fp.extra, "calibration": cal}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"fingerprint of {args.model} written to {args.out} (secret, mode 0600): {len(fp.prompts)} probe "
              f"sessions cut from {source}, prompts of {summary['prompt_tokens'][0]}-{summary['prompt_tokens'][1]} "
              f"tokens then {summary['decoded_tokens'][0]}-{summary['decoded_tokens'][1]} decoded; calibrated for "
              f"{', '.join(classes)} ({args.probes} sessions each); alpha {fp.alpha:g}, expansion width {fp.extra}")
        for k, c in cal.items():
            print(f"  {k:<12} threshold {c['threshold']:.3g}, honest {c['honest_failures']}/{c['sessions']} "
                  f"(p0 <= {c['p0_upper']:.3g}); a check at p1 0.5 accepts after {c['check_budget']['match_after']} "
                  f"passing probes, rejects after {c['check_budget']['mismatch_after']} failing ones, sends at most "
                  f"{c['check_budget']['max']}" if c["check_budget"] else f"  {k:<12} p0 {c['p0_upper']:.3g} is too high for a check at p1 0.5")
    if args.corpus is None:
        print("note: probes are text of the bundled corpus; they look like the client's traffic only if its "
              "requests are text of that kind (give held-back requests of your own with --corpus)", file=sys.stderr)
    return 0


def _budget(fp, cal_key: str) -> dict | None:
    """What a default check (sequential, p1 0.5) sends with this calibration: at most ``max`` probes; an
    honest server with no failure is accepted after ``match_after``, one failing every probe rejected
    after ``mismatch_after``. None: p0 is too high for p1 0.5."""
    import math

    from blindproof.fingerprint.stats import SequentialTest
    from blindproof.fingerprint.traffic import probe_budget
    cls, mode = cal_key.split("/", 1)
    try:
        most = probe_budget(fp, mode, cls, 0.5, sequential=True)
    except ValueError:
        return None
    t = SequentialTest(max(fp.calibrations[cal_key].p0_upper, 1e-12), 0.5, 2.0 ** -40, 2.0 ** -40)
    return {"max": most, "match_after": math.ceil(t.lower / t._pass - 1e-9),
            "mismatch_after": math.ceil(t.upper / t._fail - 1e-9)}


def _make_legacy(args: argparse.Namespace) -> int:
    from blindproof.ee import generate_key, load_key
    from blindproof.fingerprint.blind import make_blind_fingerprint

    print(LEGACY_WARNING, file=sys.stderr)
    if args.corpus or args.shapes or args.device_classes and args.device_classes != ["fp32"]:
        raise ValueError("--corpus, --shapes and --device-class are for traffic probes, not --legacy-probes")
    alpha, extra = _defaults(args)
    model = _transformer(args.model, args.seed)
    key = load_key(args.key) if args.key else generate_key()
    fp = make_blind_fingerprint(model, key, args.tier, references=args.references or 64, seq=args.seq or 16,
                                alpha=alpha, extra=extra, probes=args.probes, source=_source(args.model),
                                seed=args.seed)
    fp.save(args.out)
    cal = {m: {"threshold": c.threshold, "p0_upper": c.p0_upper, "honest_failures": c.failures, "probes": c.probes}
           for m, c in fp.calibrations.items()}
    if args.json:
        print(json.dumps({"fingerprint": str(args.out), "probes": "legacy", "model": args.model,
                          "references": int(fp.tokens.shape[0]), "seq": int(fp.tokens.shape[1]), "alpha": fp.alpha,
                          "extra": fp.extra, "calibration": cal}))
    else:
        print(f"legacy fingerprint of {args.model} written to {args.out} (secret, mode 0600): {fp.tokens.shape[0]} "
              f"random references of {fp.tokens.shape[1]} tokens, alpha {fp.alpha:g}, expansion width {fp.extra}")
    return 0


@cli_errors
def run_deploy(args: argparse.Namespace) -> int:
    from blindproof.client.local import DeploymentRecord, connect
    from blindproof.ee import Split, load_key
    from blindproof.fingerprint import blind
    from blindproof.client import fingerprinted as FPD

    alpha, extra = _defaults(args)
    model = _transformer(args.model, args.seed)
    key = load_key(args.key)
    with connect(args) as client:
        dep = FPD.deploy(client, model, key, args.tier, Split(), extra, alpha, label=args.label or args.model)
    DeploymentRecord(dep.deployment_id, dep.digest, dep.key_id, dep.tier, True, True, _source(args.model), args.seed,
                     str(args.key.resolve()), args.server, expansion=extra, alpha=alpha).save(args.record)
    if args.json:
        print(json.dumps({"deployment_id": dep.deployment_id, "digest": dep.digest, "key_id": dep.key_id,
                          "tier": dep.tier, "expansion": extra, "alpha": alpha, "record": str(args.record)}))
    else:
        print(f"deployed {dep.deployment_id} ({dep.tier}, harmless expansion of width {extra}); "
              f"record written to {args.record}")
    return 0


def load_fingerprint(path: Path):
    """A ``traffic.TrafficFingerprint`` or a legacy ``blind.BlindFingerprint``, by the file's format."""
    from blindproof.fingerprint import blind, traffic
    from blindproof.client import fingerprinted as FPD
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"cannot read fingerprint {path}: {exc}") from None
    try:
        fmt = json.loads(text).get("format")
    except (json.JSONDecodeError, AttributeError):
        raise ValueError(f"{path} is not a fingerprint file (not a JSON object)") from None
    if fmt in traffic.FORMATS:
        return traffic.TrafficFingerprint.from_json(text)
    if fmt == blind.FORMAT:
        return blind.BlindFingerprint.from_json(text)
    raise ValueError(f"{path} is not a fingerprint file (format {fmt!r})")


def _deployment(args: argparse.Namespace, client, fp, record):
    """Attach to the deployment named by the record or by id (the fingerprint's model codes the probes)."""
    from blindproof.ee import Split, load_key
    from blindproof.fingerprint import blind
    from blindproof.client import fingerprinted as FPD
    if record is not None:
        return record.attach(client)
    model = _transformer(fp.model or "default", fp.seed)
    return FPD.attach(client, args.deployment, model, load_key(args.key), args.tier, Split(), fp.alpha)


def _record(args: argparse.Namespace, fp):
    """The deployment record (or None for a deployment id), checked against the fingerprint."""
    from blindproof.client.local import DeploymentRecord
    record_path = Path(args.deployment)
    if record_path.suffix == ".json" or record_path.exists():
        record = DeploymentRecord.load(record_path)
        if not record.expansion:
            raise ValueError(f"deployment {record.deployment_id} has no harmless input expansion: deploy it with "
                             "`blindproof fingerprint deploy`")
        if record.alpha and record.alpha != fp.alpha:
            raise ValueError(f"the deployment's noise norm {record.alpha:g} differs from the fingerprint's {fp.alpha:g}")
        if fp.model and (record.model, record.seed) != (fp.model, fp.seed):
            raise ValueError(f"the fingerprint is of model {fp.model!r} (seed {fp.seed}), the deployment record's "
                             f"client model is {record.model!r} (seed {record.seed}): make a fingerprint of that model")
        return DeploymentRecord(**{**record.__dict__, "alpha": fp.alpha})
    if args.server is None or args.key is None:
        raise ValueError("with a deployment id, give --server and --key (or pass a deployment record)")
    return None


@cli_errors
def run_check(args: argparse.Namespace) -> int:
    from blindproof.fingerprint import traffic

    fp = load_fingerprint(args.fingerprint)
    if not isinstance(fp, traffic.TrafficFingerprint):
        if not args.legacy_probes:
            raise ValueError(f"{args.fingerprint} is a legacy fixed-batch fingerprint, whose probes a server can "
                             "tell from traffic; make a new one with `blindproof fingerprint make`, or pass "
                             "--legacy-probes to use it anyway")
        return _check_legacy(args, fp)
    if args.legacy_probes or args.sequential:
        raise ValueError(f"{args.fingerprint} is a traffic fingerprint: --legacy-probes and --sequential are for "
                         "legacy ones (traffic checks are sequential unless --fixed-size)")
    cal_key = f"{args.device_class}/{args.mode}"
    if cal_key not in fp.calibrations:
        have = sorted({k.split("/")[0] for k in fp.calibrations})
        raise ValueError(f"the fingerprint has no {args.mode} calibration for device class {args.device_class} "
                         f"(it has {', '.join(have)}): make one with `fingerprint make --device-class "
                         f"{args.device_class}`")
    if not 0.0 < args.p1 < 1.0 or args.p1 <= fp.calibrations[cal_key].p0_upper:
        raise ValueError(f"--p1 must be in (p0, 1) with p0 = {fp.calibrations[cal_key].p0_upper:.3g}, got {args.p1}")
    sequential = not args.fixed_size
    budget = traffic.probe_budget(fp, args.mode, args.device_class, args.p1, sequential)
    if not sequential and budget > fp.remaining:
        raise ValueError(f"a fixed-size check needs {budget} unused probe sessions, the pool has {fp.remaining}: "
                         "make a new fingerprint from fresh text")
    if fp.remaining == 0:
        raise ValueError(f"every probe session of {args.fingerprint} has been sent: make a new fingerprint from "
                         "fresh text")
    record = _record(args, fp)
    server = args.server or (record.server if record is not None else None)
    from blindproof.client.local import connect
    before = len(fp.used)
    try:
        with connect(args, server) as client:
            dep = _deployment(args, client, fp, record)
            verdict = client.check_identity(dep, fp, mode=args.mode, p1=args.p1, sequential=sequential,
                                            device_class=args.device_class)
    finally:
        if len(fp.used) != before:  # probes went out: never send them again, whatever happened next
            fp.save(args.fingerprint)
    summary = {"decision": verdict.decision, "probes_kind": "traffic", "deployment_id": dep.deployment_id,
               "server": server, "mode": verdict.mode, "device_class": args.device_class,
               "test": "sequential" if sequential else "fixed-size", "probes": verdict.probes,
               "failures": verdict.failures, "probe_budget": budget, "pool_remaining": fp.remaining,
               "false_positive": verdict.false_positive,
               "false_positive_unconditional": verdict.false_positive_unconditional, "miss": verdict.miss,
               "p0": verdict.p0, "p1": verdict.p1, "max_deviation": verdict.max_deviation,
               "conditions": verdict.conditions()}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{verdict.decision.upper()}: {verdict.failures} of {verdict.probes} probe sessions failed "
              f"({verdict.mode}, device class {args.device_class}, {summary['test']} test of at most {budget}; "
              f"{verdict.conditions()}); {fp.remaining} unused sessions left in {args.fingerprint}")
    if verdict.decision != "match":
        why = " (the probe pool ran out: make a new fingerprint)" if verdict.decision == "undecided" and \
            fp.remaining == 0 else ""
        print(f"identity check: {verdict.decision}{why}", file=sys.stderr)
        return MISMATCH_STATUS
    return 0


def _check_legacy(args: argparse.Namespace, fp) -> int:
    from blindproof.client.local import connect

    print(LEGACY_WARNING, file=sys.stderr)
    if args.device_class != "fp32" or args.fixed_size:
        raise ValueError("--device-class and --fixed-size are for traffic fingerprints")
    record = _record(args, fp)
    server = args.server or (record.server if record is not None else None)
    with connect(args, server) as client:
        dep = _deployment(args, client, fp, record)
        verdict = client.check_identity(dep, fp, mode=args.mode, p1=args.p1, sequential=args.sequential)
    summary = {"decision": verdict.decision, "probes_kind": "legacy", "deployment_id": dep.deployment_id,
               "server": server, "mode": verdict.mode, "probes": verdict.probes, "failures": verdict.failures,
               "mismatch_at_failures": verdict.threshold_failures, "false_positive": verdict.false_positive,
               "false_positive_unconditional": verdict.false_positive_unconditional,
               "miss": verdict.miss, "p0": verdict.p0, "p1": verdict.p1, "max_deviation": verdict.max_deviation}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{verdict.decision.upper()}: {verdict.failures} of {verdict.probes} legacy probes failed "
              f"({verdict.mode}; {verdict.conditions()})")
    if verdict.decision != "match":
        print(f"identity check: {verdict.decision}", file=sys.stderr)
        return MISMATCH_STATUS
    return 0
