"""`blindproof fingerprint`: deploy with a harmless input expansion, make a secret fingerprint, check a server.

    blindproof fingerprint make   --model NAME -o fp.json            # secret references + calibration
    blindproof fingerprint deploy --server ADDR --model NAME --key K   # EE deployment with the expansion
    blindproof fingerprint check  --server ADDR --deployment ID --fingerprint fp.json [--key K] [--json]

`check` exits 0 when the server runs the fingerprinted model, 3 on a mismatch (or an undecided
sequential test), 1 on errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from blindproof.client.cli_args import add_connection_args, cli_errors

MISMATCH_STATUS = 1  # EXIT_INVALID: the check said no (docs/cli.md, "Exit status")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fingerprint", help="identity checks of a deployment by harmless perturbations",
                       description="Harmless-perturbation fingerprints through the blind channel "
                                   "(docs/fingerprint.md).")
    fsub = p.add_subparsers(dest="fingerprint_command", metavar="ACTION")

    mk = fsub.add_parser("make", help="make a secret fingerprint of a model (written with mode 0600)",
                         description="Draw secret reference token sequences, record the model's outputs on them, "
                                     "and calibrate honest deviations on the local serving stack (the expanded "
                                     "EE deployment run in-process).")
    mk.add_argument("--model", default="default", help="'default', a workload name or a .safetensors model file")
    mk.add_argument("--seed", type=int, default=0, help="seed of a workload's weights")
    mk.add_argument("--key", type=Path, help="EE key file to calibrate with (default: a fresh key)")
    mk.add_argument("--tier", choices=["permute", "rotate"], default="rotate", help="EE tier (default rotate)")
    mk.add_argument("--references", type=int, default=64, help="number of secret reference sequences")
    mk.add_argument("--seq", type=int, default=16, help="tokens per reference sequence")
    mk.add_argument("--alpha", type=float, help="norm of the harmless noise (default: the library default)")
    mk.add_argument("--extra", type=int, help="width of the harmless input expansion (default 16)")
    mk.add_argument("--probes", type=int, default=1000, help="calibration probes per mode")
    mk.add_argument("-o", "--out", type=Path, required=True, help="fingerprint file to write")
    mk.add_argument("--json", action="store_true", help="print a JSON summary")
    mk.set_defaults(func=run_make)

    dp = fsub.add_parser("deploy", help="deploy a model under a key with a harmless input expansion",
                         description="Like `blindproof deploy`, plus a keyed input expansion before the blocks: "
                                     "every request then carries harmless noise, so identity probes look like "
                                     "ordinary traffic.")
    add_connection_args(dp)
    dp.add_argument("--model", default="default", help="'default', a workload name or a .safetensors model file")
    dp.add_argument("--seed", type=int, default=0, help="seed of a workload's weights")
    dp.add_argument("--key", type=Path, required=True, help="key file from `blindproof keygen`")
    dp.add_argument("--tier", choices=["permute", "rotate"], default="rotate", help="EE tier (default rotate)")
    dp.add_argument("--alpha", type=float, help="norm of the harmless noise (default: the library default)")
    dp.add_argument("--extra", type=int, help="width of the harmless input expansion (default 16)")
    dp.add_argument("--label", default="", help="label shown in listings")
    dp.add_argument("--record", type=Path, default=Path("deployment.json"), help="deployment record to write")
    dp.add_argument("--json", action="store_true", help="print a JSON summary")
    dp.set_defaults(func=run_deploy)

    ck = fsub.add_parser("check", help="check which model a server runs for a deployment",
                         description="Send fresh probes (secret references plus harmless noise) through the EE "
                                     "codec like ordinary requests and decide match / mismatch with stated error "
                                     "probabilities. Exit status 0 on match, 1 on mismatch (docs/cli.md).")
    add_connection_args(ck, server_required=False)
    ck.add_argument("--deployment", "--record", dest="deployment", default="deployment.json",
                    help="deployment record written by `fingerprint deploy` (default deployment.json, as for "
                         "infer and generate) or a deployment id (then give --key)")
    ck.add_argument("--fingerprint", type=Path, required=True, help="fingerprint file from `fingerprint make`")
    ck.add_argument("--key", type=Path, help="EE key file of the deployment (with a deployment id)")
    ck.add_argument("--tier", choices=["permute", "rotate"], default="rotate", help="EE tier (with a deployment id)")
    ck.add_argument("--mode", choices=["logits", "labels"], default="logits",
                    help="compare full outputs (default) or top-1 labels only")
    ck.add_argument("--p1", type=float, default=0.5, help="least failure rate of a substitute the test must catch")
    ck.add_argument("--sequential", action="store_true", help="Wald's sequential test instead of a fixed size")
    ck.add_argument("--json", action="store_true", help="print the verdict as JSON")
    ck.set_defaults(func=run_check)


def _defaults(args: argparse.Namespace) -> tuple[float, int]:
    from blindproof.fingerprint.blind import DEFAULT_ALPHA, DEFAULT_EXTRA
    return (DEFAULT_ALPHA if args.alpha is None else args.alpha), (DEFAULT_EXTRA if args.extra is None else args.extra)


def _transformer(source: str, seed: int):
    from blindproof.client.local import load_local_model
    from blindproof.models.transformer import Transformer
    model = load_local_model(source, seed)
    if not isinstance(model, Transformer):
        raise ValueError(f"{source} is not a transformer: the harmless input expansion is for transformers")
    return model


@cli_errors
def run_make(args: argparse.Namespace) -> int:
    from blindproof.ee import generate_key, load_key
    from blindproof.fingerprint.blind import make_blind_fingerprint

    alpha, extra = _defaults(args)
    model = _transformer(args.model, args.seed)
    key = load_key(args.key) if args.key else generate_key()
    fp = make_blind_fingerprint(model, key, args.tier, references=args.references, seq=args.seq, alpha=alpha,
                                extra=extra, probes=args.probes, source=args.model, seed=args.seed)
    fp.save(args.out)
    cal = {m: {"threshold": c.threshold, "p0_upper": c.p0_upper, "honest_failures": c.failures, "probes": c.probes}
           for m, c in fp.calibrations.items()}
    if args.json:
        print(json.dumps({"fingerprint": str(args.out), "model": args.model, "references": int(fp.tokens.shape[0]),
                          "seq": int(fp.tokens.shape[1]), "alpha": fp.alpha, "extra": fp.extra, "calibration": cal}))
    else:
        print(f"fingerprint of {args.model} written to {args.out} (secret, mode 0600): {fp.tokens.shape[0]} references "
              f"of {fp.tokens.shape[1]} tokens, alpha {fp.alpha:g}, expansion width {fp.extra}")
    return 0


@cli_errors
def run_deploy(args: argparse.Namespace) -> int:
    from blindproof.client.local import DeploymentRecord, connect
    from blindproof.ee import Split, load_key
    from blindproof.fingerprint import blind

    alpha, extra = _defaults(args)
    model = _transformer(args.model, args.seed)
    key = load_key(args.key)
    with connect(args) as client:
        dep = blind.deploy(client, model, key, args.tier, Split(), extra, alpha, label=args.label or args.model)
    DeploymentRecord(dep.deployment_id, dep.digest, dep.key_id, dep.tier, True, True, args.model, args.seed,
                     str(args.key.resolve()), args.server, expansion=extra, alpha=alpha).save(args.record)
    if args.json:
        print(json.dumps({"deployment_id": dep.deployment_id, "digest": dep.digest, "key_id": dep.key_id,
                          "tier": dep.tier, "expansion": extra, "alpha": alpha, "record": str(args.record)}))
    else:
        print(f"deployed {dep.deployment_id} ({dep.tier}, harmless expansion of width {extra}); "
              f"record written to {args.record}")
    return 0


@cli_errors
def run_check(args: argparse.Namespace) -> int:
    from blindproof.client.local import DeploymentRecord, connect
    from blindproof.ee import Split, load_key
    from blindproof.fingerprint import blind

    fp = blind.BlindFingerprint.load(args.fingerprint)
    record_path = Path(args.deployment)
    if record_path.suffix == ".json" or record_path.exists():
        record = DeploymentRecord.load(record_path)
        if record.alpha and record.alpha != fp.alpha:
            raise ValueError(f"the deployment's noise norm {record.alpha:g} differs from the fingerprint's {fp.alpha:g}")
        record = DeploymentRecord(**{**record.__dict__, "alpha": fp.alpha})
        server = args.server or record.server
        with connect(args, server) as client:
            dep = record.attach(client)
            verdict = client.check_identity(dep, fp, mode=args.mode, p1=args.p1, sequential=args.sequential)
    else:
        if args.server is None or args.key is None:
            raise ValueError("with a deployment id, give --server and --key (or pass a deployment record)")
        model = _transformer(fp.model or "default", fp.seed)
        with connect(args) as client:
            dep = blind.attach(client, args.deployment, model, load_key(args.key), args.tier, Split(), fp.alpha)
            verdict = client.check_identity(dep, fp, mode=args.mode, p1=args.p1, sequential=args.sequential)
        server = args.server
    summary = {"decision": verdict.decision, "deployment_id": dep.deployment_id, "server": server,
               "mode": verdict.mode, "probes": verdict.probes, "failures": verdict.failures,
               "mismatch_at_failures": verdict.threshold_failures, "false_positive": verdict.false_positive,
               "false_positive_unconditional": verdict.false_positive_unconditional,
               "miss": verdict.miss, "p0": verdict.p0, "p1": verdict.p1, "max_deviation": verdict.max_deviation}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{verdict.decision.upper()}: {verdict.failures} of {verdict.probes} probes failed "
              f"({verdict.mode}; {verdict.conditions()})")
    if verdict.decision != "match":
        print(f"identity check: {verdict.decision}", file=sys.stderr)
        return MISMATCH_STATUS
    return 0
