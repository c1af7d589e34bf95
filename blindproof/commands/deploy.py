"""`blindproof deploy`: transform a model under a key locally and upload the server's part."""

from __future__ import annotations

import argparse
import base64
import json
import time
from pathlib import Path

from blindproof.client.cli_args import add_connection_args, cli_errors


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deploy", help="deploy an EE-transformed model to a server",
                       description="Transform the model under the key (on this machine), upload only the parts "
                                   "the server runs, check the server's content digest, and write a "
                                   "deployment record for `infer` and `generate`.")
    add_connection_args(p)
    p.add_argument("--model", default="default",
                   help="'default', a workload name (tiny-llama, ...), a local Hugging Face folder (config.json + "
                        "safetensors) or a .safetensors model file")
    p.add_argument("--seed", type=int, default=0, help="seed of a workload's weights")
    p.add_argument("--key", type=Path, help="key file from `blindproof keygen` (omit with --plaintext)")
    p.add_argument("--plaintext", action="store_true", help="deploy untransformed (a baseline; no privacy)")
    p.add_argument("--tier", choices=["permute", "rotate"], default="rotate", help="EE tier (default rotate)")
    p.add_argument("--server-embeds", action="store_true", help="server runs the embedding (client sends ids)")
    p.add_argument("--server-decodes", action="store_true", help="server runs the final norm and head")
    p.add_argument("--label", default="", help="label shown in listings")
    p.add_argument("--record", type=Path, default=Path("deployment.json"),
                   help="where to write the deployment record (default deployment.json)")
    p.add_argument("--integer", action="store_true",
                   help="deploy the integer model (quantized here after the EE transform): the server runs "
                        "it and can prove its answers; the model commitment is computed here and checked "
                        "against the server's")
    p.add_argument("--commitment-out", type=Path, default=Path("model.commit"),
                   help="with --integer: where to write the model commitment (default model.commit)")
    p.add_argument("--calibration", type=Path, default=None,
                   help="with --integer: typical inputs to quantize on (.npy token ids or features, or a .txt file "
                        "tokenized by --tokenizer / the folder's tokenizer.json into rows of 32 tokens); kept beside "
                        "the record as <record>.calib.npy, which rebuilds the same integer model later (default: "
                        "fixed seeded data)")
    p.add_argument("--tokenizer", type=Path, default=None, help="tokenizer.json for a .txt --calibration")
    p.add_argument("--force", action="store_true",
                   help="overwrite an existing record (and, with --integer, its .ckey, .calib.npy and commitment "
                        "files)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=run)

    ex = sub.add_parser("export-commitment", help="write an integer deployment's model commitment file",
                        description="Write the model commitment kept in a deployment record (the client's own "
                                    "copy, computed at deployment) as a model.commit file for `blindproof verify`.")
    ex.add_argument("--record", type=Path, default=Path("deployment.json"), help="deployment record from `deploy`")
    ex.add_argument("-o", "--output", type=Path, default=Path("model.commit"), help="commitment file to write")
    ex.add_argument("--json", action="store_true", help="print a JSON summary")
    ex.set_defaults(func=run_export)

    ls = sub.add_parser("deployments", help="list or delete deployments on a server")
    add_connection_args(ls)
    ls.add_argument("--delete", metavar="ID", help="delete this deployment instead of listing")
    ls.add_argument("--json", action="store_true", help="print one JSON object per deployment (or deletion)")
    ls.set_defaults(func=run_list)


def _calibration(args: argparse.Namespace, model):
    """The --calibration data as a tensor (None without it); SystemExit(2) when unusable."""
    if args.calibration is None:
        return None
    import torch

    from blindproof.commands.calibration import TEXT_ROW, read_calibration_file, text_encoder, text_rows
    data = read_calibration_file(args.calibration)
    if isinstance(data, str):
        cfg = getattr(model, "cfg", None)
        if cfg is None:
            raise SystemExit("error: a text calibration file needs a text model")
        data = text_rows(data, text_encoder(args.model, args.tokenizer, cfg.vocab_size), min(TEXT_ROW, cfg.max_seq))
    return torch.from_numpy(data)


@cli_errors
def run(args: argparse.Namespace) -> int:
    from blindproof.client.local import DeploymentRecord, connect, load_local_model
    from blindproof.ee import Split, load_key

    if args.plaintext == (args.key is not None):
        raise SystemExit("error: pass exactly one of --key FILE or --plaintext")
    if Path(args.model).is_dir():  # the record names the folder wherever `generate` runs from
        args.model = str(Path(args.model).resolve())
    model = load_local_model(args.model, args.seed)
    key = load_key(args.key) if args.key else None
    if args.calibration is not None and not args.integer:
        raise SystemExit("error: --calibration applies to --integer deployments (the float model needs none)")
    calib_file = args.record.with_suffix(".calib.npy")
    outputs = [args.record] + ([args.record.with_suffix(".ckey"), args.commitment_out] if args.integer else []) + \
        ([calib_file] if args.calibration is not None else [])
    existing = [str(p) for p in outputs if p.exists()]
    if existing and not args.force:  # like keygen: the old record (and commitment key) would be lost
        raise SystemExit(f"error: {', '.join(existing)} exist(s); pass --force to overwrite, or --record FILE")
    split = Split(client_embeds=not args.server_embeds, client_decodes=not args.server_decodes)
    extra: dict = {}
    if args.integer:
        if args.server_embeds or args.server_decodes:
            raise SystemExit("error: an integer deployment runs the whole model on the server; "
                             "drop --server-embeds/--server-decodes")
        from blindproof.client.integer import integer_split
        from blindproof.zk.proof.keys import CommitmentKey
        from blindproof.commands.progress import Reporter
        say = Reporter(json_events=args.json)
        split = integer_split(model)
        calibration = _calibration(args, model)
        ckey = CommitmentKey.generate()
        say("quantizing the transformed model, committing to it and uploading it (the server commits too, "
            "and the two commitments must match) ...")
        t0 = time.perf_counter()
        with connect(args) as client:  # CommitmentMismatchError unless the server commits to the same model
            dep = client.deploy(model, key, args.tier, label=args.label or args.model, mode="integer",
                                commitment_key=ckey.secret, calibration=calibration)
        say(f"deployed ({time.perf_counter() - t0:.2f} s)")
        key_file = args.record.with_suffix(".ckey")
        ckey.save(key_file)  # 0600: it rebuilds the integer model file; verifiers never need it
        dep.commitment.save(args.commitment_out)
        extra = {"mode": "integer", "commitment": base64.b64encode(dep.commitment.to_bytes()).decode("ascii"),
                 "commitment_key_file": str(key_file.resolve())}
        if calibration is not None:  # attaching later must quantize on the very same data
            import numpy as np
            np.save(calib_file, calibration.numpy())
            extra["calibration_file"] = str(calib_file.resolve())
    else:
        with connect(args) as client:
            dep = client.deploy(model, key, args.tier, split, label=args.label or args.model)
    record = DeploymentRecord(dep.deployment_id, dep.digest, dep.key_id, dep.tier, split.client_embeds,
                              split.client_decodes, args.model, args.seed,
                              str(args.key.resolve()) if args.key else None, args.server, **extra)
    record.save(args.record)
    if args.integer and not args.json:
        print(f"model commitment {dep.commitment.digest().hex()[:16]}… (server's equals the local one) "
              f"written to {args.commitment_out}")
    if args.json:
        print(json.dumps({"deployment_id": dep.deployment_id, "digest": dep.digest, "key_id": dep.key_id,
                          "tier": dep.tier, "existed": dep.existed, "record": str(args.record),
                          **({"mode": "integer", "commitment_digest": dep.commitment.digest().hex(),
                              "commitment_file": str(args.commitment_out)} if args.integer else {})}))
    else:
        print(f"deployed {dep.deployment_id} ({'plaintext' if key is None else dep.tier}, digest verified); "
              f"record written to {args.record}")
    return 0


@cli_errors
def run_export(args: argparse.Namespace) -> int:
    from blindproof.client.local import DeploymentRecord

    com = DeploymentRecord.load(args.record).model_commitment()
    com.save(args.output)
    if args.json:
        print(json.dumps({"commitment_file": str(args.output), "model_digest": com.digest().hex()}))
    else:
        print(f"model commitment {com.digest().hex()[:16]}… of deployment written to {args.output}")
    return 0


@cli_errors
def run_list(args: argparse.Namespace) -> int:
    from blindproof.client.local import connect

    with connect(args) as client:
        if args.delete:
            client.delete(args.delete)
            print(json.dumps({"deleted": args.delete}) if args.json else f"deleted {args.delete}")
            return 0
        deployments = client.list_deployments()
    for d in deployments:
        model = json.loads(d.model_json)
        if args.json:
            print(json.dumps({"deployment_id": d.deployment_id, "key_id": d.key_id, "label": d.label,
                              "size_bytes": d.size_bytes, "model": model}))
        else:
            kind = model.get("kind", "?") + (f" {model['family']}" if "family" in model else "")
            print(f"{d.deployment_id}  {kind:<20} {d.size_bytes / 1e6:9.2f} MB  "
                  f"{'key ' + d.key_id[:12] if d.key_id else 'plaintext':<16}  {d.label}")
    if not deployments and not args.json:
        print("no deployments")
    return 0
