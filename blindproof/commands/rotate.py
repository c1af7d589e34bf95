"""`blindproof rotate`: commit the same model under a fresh key, with a certificate of equal content."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from blindproof.commands.commit import add_model_args, load_model

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rotate", help="rotate a spent commitment key: the same weights under a fresh key, certified",
                       description="Commit the model again under a fresh key (same spec, parameters and budget) and "
                                   "write a rotation certificate proving, in zero knowledge, that both commitments "
                                   "hold the same weights. Writes <out> (the new commitment), <out>.key (its key, "
                                   "mode 0600) and <out>.rotation (the certificate); a verifier pinning the old "
                                   "commitment accepts proofs against the new one with `verify --rotation <out> "
                                   "<out>.rotation`. The certificate opens each commitment once: it is charged to "
                                   "both keys' ledgers (the old key's last, reserved opening). Exit 1 when a "
                                   "budget cannot take it.")
    add_model_args(p, key=False, security=False)
    p.add_argument("--commitment", type=Path, required=True, help="the old (current) model commitment")
    p.add_argument("--key", type=Path, default=None,
                   help="the old commitment's secret key (default: <commitment>.key); its ledger "
                        "<key>.ledger is charged")
    p.add_argument("-o", "--out", type=Path, required=True, help="the new commitment file")
    p.add_argument("--new-key", type=Path, default=None, help="the new secret key (default: <out>.key)")
    p.add_argument("--certificate", type=Path, default=None, help="the certificate (default: <out>.rotation)")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=run)


def _fail(msg: str, code: int = EXIT_USAGE) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    from blindproof.zk.proof.commitment import ModelCommitment
    from blindproof.zk.proof.keys import CommitmentKey, LedgerError, OpeningBudgetExceeded
    from blindproof.zk.proof.rotation import RotationError, rotate

    key_path = args.key or Path(str(args.commitment) + ".key")
    new_key_path = args.new_key or Path(str(args.out) + ".key")
    cert_path = args.certificate or Path(str(args.out) + ".rotation")
    outputs = (args.out, new_key_path, cert_path, Path(str(new_key_path) + ".ledger"))
    if len({p.resolve() for p in outputs} | {args.commitment.resolve(), key_path.resolve()}) != 6:
        return _fail("the new commitment, key and certificate must be files distinct from each other and "
                     "from the old commitment and key")
    if not args.force:
        existing = [str(p) for p in outputs if p.exists()]
        if existing:
            return _fail(f"{', '.join(existing)} exists; use --force to overwrite")
    if not key_path.exists():
        return _fail(f"no commitment key at {key_path}")
    ledger_path = Path(str(key_path) + ".ledger")
    if not ledger_path.exists():  # `commit` creates it: without it the positions the key opened are unknown
        return _fail(f"no opening ledger at {ledger_path}: the positions this key opened are unknown, so a "
                     "certificate could take them past its hiding symbols; restore the ledger from a backup, or "
                     "commit the model again under a fresh key (without a certificate)")
    try:
        old_key = CommitmentKey.load(key_path)
        old = ModelCommitment.load(args.commitment)
    except (ValueError, OSError) as exc:
        return _fail(str(exc))
    t0 = time.perf_counter()
    qm = load_model(args).quantized
    if args.force:  # a new key starts a new ledger: an old one beside it would belong to another commitment
        Path(str(new_key_path) + ".ledger").unlink(missing_ok=True)
    new_key = CommitmentKey.generate()
    t1 = time.perf_counter()
    try:
        # the key is saved first so that its ledger lives beside it from the first charge
        new_key.save(new_key_path)
        new, cert = rotate(qm.spec, qm.weights, old_key, old, new_key)
    except OpeningBudgetExceeded as exc:
        new_key_path.unlink(missing_ok=True)
        Path(str(new_key_path) + ".ledger").unlink(missing_ok=True)
        return _fail(str(exc), EXIT_REFUSED)
    except (RotationError, LedgerError, ValueError) as exc:
        new_key_path.unlink(missing_ok=True)
        Path(str(new_key_path) + ".ledger").unlink(missing_ok=True)
        return _fail(str(exc))
    t2 = time.perf_counter()
    new.save(args.out)
    cert.save(cert_path)
    summary = {"model": args.model, "old_commitment": str(args.commitment), "old_digest": old.digest().hex(),
               "commitment": str(args.out), "digest": new.digest().hex(), "key": str(new_key_path),
               "certificate": str(cert_path), "certificate_bytes": cert_path.stat().st_size,
               "provable_bits": round(cert.provable_bits, 1), "budget": new.budget,
               "quantize_s": round(t1 - t0, 3), "rotate_s": round(t2 - t1, 3)}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"rotated {args.model} in {summary['rotate_s']:.2f} s: {args.out} (digest {summary['digest']})")
        print(f"certificate {cert_path} ({summary['certificate_bytes']} bytes, {cert.provable_bits:.1f} provable bits) "
              f"links it to {args.commitment} (digest {summary['old_digest']})")
        print(f"secret key: {new_key_path} (keep it with its ledger {new_key_path}.ledger; prove with "
              f"`blindproof prove --commitment {args.out}`)")
    return EXIT_OK
