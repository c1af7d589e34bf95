"""`blindproof quantize`: the integer model of a model, calibrated on the user's data, as one file
(``model.qspec``) that `commit` and `prove` take as ``--model``, with an accuracy report."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from blindproof.commands.calibration import TEXT_ROW as CALIBRATION_SEQ


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quantize", help="quantize a model on calibration data into model.qspec",
                       description="Quantize a model (a workload, a Hugging Face folder, an ONNX file, or a torch "
                                   "module named file.py:name / module:name) with scales from your calibration data, write the "
                                   "integer model (what proofs attest) as one file, and report how closely it "
                                   "tracks the float model on that data (a warning under 95 %). `commit` and "
                                   "`prove` take the file as --model.")
    p.add_argument("model", help="workload name, Hugging Face folder, ONNX file (.onnx), or file.py:name / "
                                 "module:name (a torch module, or a function returning one)")
    p.add_argument("--calibration", type=Path, default=None,
                   help=".npy of typical inputs (token ids (n, seq) or float features (n, ...)) or a .txt file "
                        "(text models: tokenized and cut into rows of --seq tokens); default: the model's own "
                        "fixed calibration data (a workload's, or random token ids for a folder)")
    p.add_argument("-o", "--out", type=Path, default=Path("model.qspec"), help="output file (default model.qspec)")
    p.add_argument("--tokenizer", type=Path, default=None,
                   help="tokenizer.json for a .txt calibration file (default: the folder's own)")
    p.add_argument("--max-seq", type=int, default=None, help="positions a folder's model covers (default: its own, "
                                                              "at most 1024)")
    p.add_argument("--seq", type=int, default=CALIBRATION_SEQ,
                   help=f"tokens per row cut from a .txt calibration file (default {CALIBRATION_SEQ})")
    p.add_argument("--weights", type=Path, default=None, help="a workload's weights (safetensors state dict)")
    p.add_argument("--seed", type=int, default=0, help="seed of a workload's random weights (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from blindproof.quant.files import save_qspec
    from blindproof.quant.report import accuracy_report
    from blindproof.sources import resolve

    if args.out.exists() and not args.force:
        print(f"error: {args.out} exists; pass --force to overwrite it", file=sys.stderr)
        return 2
    if args.seq < 2 or (args.max_seq is not None and args.max_seq < 1):
        print("error: --seq must be at least 2 and --max-seq positive", file=sys.stderr)
        return 2
    from blindproof.commands.calibration import calibration_data
    calib = calibration_data(args.calibration, args.model, args.tokenizer, args.seq, args.max_seq)
    t0 = time.perf_counter()
    try:
        src = resolve(args.model, calib, scope="model", seed=args.seed, weights=args.weights,
                      tokenizer=args.tokenizer, max_seq=args.max_seq)
    except ValueError as exc:  # ModelSourceError, HfFolderError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    quantize_s = time.perf_counter() - t0
    if src.float_model is None:
        print(f"error: {args.model} is already an integer model", file=sys.stderr)
        return 2
    data = calib
    if data is None:  # the model's own calibration data: workloads and folders know theirs
        from blindproof.models.workloads import WORKLOADS
        from blindproof.sources import folder_calibration
        from blindproof.zk.proof.prover import calibration_input
        if args.model in WORKLOADS:
            data = calibration_input(args.model)
        else:
            data = folder_calibration(src.float_model.cfg.vocab_size, src.float_model.cfg.max_seq)
    try:
        report = accuracy_report(src.float_model, src.quantized, data)
    except ValueError as exc:
        print(f"error: cannot compare the integer and float models: {exc}", file=sys.stderr)
        return 2
    tok = None
    if args.tokenizer is not None:
        tok = str(args.tokenizer.resolve())
    elif Path(args.model).is_dir() and (Path(args.model) / "tokenizer.json").is_file():
        tok = str((Path(args.model) / "tokenizer.json").resolve())
    info = {"source": args.model, "tokenizer": tok, "report": report.to_dict(),
            "calibration": str(args.calibration) if args.calibration else "default",
            "calibration_shape": list(np.asarray(data).shape)}
    save_qspec(src.quantized, args.out, info)
    summary = {"model": args.model, "qspec": str(args.out), "spec_digest": src.quantized.spec.digest(),
               "ops": len(src.quantized.spec.ops), "weights": len(src.quantized.weights),
               "file_bytes": args.out.stat().st_size, "quantize_s": round(quantize_s, 3), **report.to_dict()}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"quantized {args.model} in {quantize_s:.2f} s: {summary['ops']} ops, {summary['weights']} weight "
              f"tensors; wrote {args.out} ({summary['file_bytes']} bytes), spec digest {summary['spec_digest'][:16]}…")
        for line in report.lines():
            print(line)
    if report.warning:
        print(report.warning, file=sys.stderr)
    return 0
