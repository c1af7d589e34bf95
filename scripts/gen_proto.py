"""Regenerate the Python stubs in blindproof/proto from proto/blindproof/v1/*.proto.

Usage: python scripts/gen_proto.py [OUT_DIR]   (default: blindproof/proto)

The stubs are flattened into one package and their cross-imports made relative, so the generated
modules import as ``blindproof.proto.<name>_pb2`` wherever the package is installed.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PROTO_DIR = PROTO_ROOT / "blindproof" / "v1"
DEFAULT_OUT = ROOT / "blindproof" / "proto"

_IMPORT = re.compile(r"^from blindproof\.v1 import (\w+) as (\w+)$", re.MULTILINE)


def proto_files() -> list[Path]:
    """The wire contract's .proto files, sorted."""
    files = sorted(PROTO_DIR.glob("*.proto"))
    if not files:
        raise FileNotFoundError(f"no .proto files under {PROTO_DIR}")
    return files


def generate(out_dir: Path) -> list[Path]:
    """Compile every .proto into ``out_dir`` (flat, relative imports); returns the files written."""
    from grpc_tools import protoc

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        args = ["protoc", f"-I{PROTO_ROOT}", f"--python_out={tmp}", f"--pyi_out={tmp}",
                f"--grpc_python_out={tmp}", *(str(p.relative_to(PROTO_ROOT)) for p in proto_files())]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed: " + " ".join(args))
        written = []
        for src in sorted((Path(tmp) / "blindproof" / "v1").iterdir()):
            text = _IMPORT.sub(r"from . import \1 as \2", src.read_text())
            dst = out_dir / src.name
            dst.write_text(text)
            written.append(dst)
    return written


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUT
    if out == DEFAULT_OUT:  # drop stubs of protos that no longer exist
        for old in out.glob("*_pb2*.py*"):
            old.unlink()
    for path in generate(out):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    shutil.rmtree(out / "__pycache__", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
