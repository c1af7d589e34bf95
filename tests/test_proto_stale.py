"""The committed stubs in blindproof/proto must match a fresh compile of proto/blindproof/v1."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STUBS = ROOT / "blindproof" / "proto"

# Lines that carry the generator's version, which may differ by patch release between machines.
_VERSIONED = re.compile(r"^.*(Protobuf Python Version|GRPC_GENERATED_VERSION = |_runtime_version\.|^\s+\d+,$).*$",
                        re.MULTILINE)


def _gen_module():
    pytest.importorskip("grpc_tools")
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _normalized(path: Path) -> str:
    return _VERSIONED.sub("", path.read_text())


def test_stubs_are_fresh(tmp_path):
    written = _gen_module().generate(tmp_path)
    fresh = {p.name for p in written}
    committed = {p.name for p in STUBS.glob("*_pb2*.py*")}
    assert fresh == committed, f"stub set differs: run `python scripts/gen_proto.py` ({fresh ^ committed})"
    for name in sorted(fresh):
        assert _normalized(tmp_path / name) == _normalized(STUBS / name), \
            f"blindproof/proto/{name} is stale: run `python scripts/gen_proto.py`"


def test_stale_stub_is_detected(tmp_path):
    """The comparison notices a changed contract (guards the normalization above)."""
    gen = _gen_module()
    proto_dir = tmp_path / "proto" / "blindproof" / "v1"
    proto_dir.mkdir(parents=True)
    for p in gen.proto_files():
        text = p.read_text()
        if p.name == "tensor.proto":
            text = text.replace("bytes data = 3;", "bytes data = 3;\n  string note = 4;")
        (proto_dir / p.name).write_text(text)
    gen.PROTO_ROOT, gen.PROTO_DIR = tmp_path / "proto", proto_dir
    out = tmp_path / "out"
    gen.generate(out)
    assert _normalized(out / "tensor_pb2.py") != _normalized(STUBS / "tensor_pb2.py")


def test_stubs_import_and_describe_the_service():
    from blindproof.proto import inference_pb2, inference_pb2_grpc, tensor_pb2
    svc = inference_pb2.DESCRIPTOR.services_by_name["Inference"]
    assert {m.name for m in svc.methods} == {"Deploy", "ListDeployments", "DeleteDeployment", "Infer", "Generate"}
    assert hasattr(inference_pb2_grpc, "InferenceStub") and tensor_pb2.Tensor(dtype="float32").dtype == "float32"
