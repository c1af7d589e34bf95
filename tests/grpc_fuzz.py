"""Raw-message fuzzer of a real `blindproof serve` process (every method, through untyped gRPC stubs).

Each message is one of: a well-formed request with hostile field values (huge or odd ids, tensors
whose dtype, shape and data disagree, negative or huge offsets and chunk sizes), a valid request with
flipped, cut or appended bytes, or random bytes; streams get random sequences of such messages. The
server must answer every call with a deliberate status (never UNKNOWN), keep serving, and write no
traceback to its log.

    python tests/grpc_fuzz.py --messages 10000 --seed 1      # the full run (several minutes)

``tests/test_grpc_fuzz.py`` runs a short version in the default test suite.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import sys
import time
from pathlib import Path

import grpc
import torch

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from blindproof.client import BlindClient  # noqa: E402
from blindproof.proto import inference_pb2 as pb  # noqa: E402
from blindproof.proto import prover_pb2  # noqa: E402
from blindproof.proto.tensors import to_proto  # noqa: E402

INF = "/blindproof.v1.Inference/"
PRV = "/blindproof.v1.ProverService/"
HEALTH = "/grpc.health.v1.Health/"
DTYPES = ["float32", "float64", "int64", "int32", "int16", "int8", "uint8", "bool", "bfloat16", "float16",
          "", "complex64", "object", "x" * 300]


class Fuzzer:
    def __init__(self, rng: random.Random, ids: dict[str, list[str]]) -> None:
        self.rng = rng
        self.ids = ids  # deployment / request / job ids that exist, so fuzzing reaches the deep paths

    # --- values -------------------------------------------------------------------------------
    def text(self) -> str:
        r = self.rng
        return r.choice(["", "x" * r.choice([1, 64, 129, 5000, 20000]), "blake3:" + "ab" * 32, "\x00\u202e☃",
                         "a" * 64, "A" * 64, "../../etc/passwd", "%s%n", " " * 10, "0" * 32])

    def ref(self, kind: str) -> str:
        pool = self.ids.get(kind) or []
        if pool and self.rng.random() < 0.5:
            v = self.rng.choice(pool)
            return v if self.rng.random() < 0.8 else v[:-1] + "0"
        return self.text()

    def integer(self) -> int:
        return self.rng.choice([0, 1, 7, 4095, 4096, 1 << 20, (1 << 20) + 1, 16 << 20, (1 << 31) - 1, 1 << 32,
                                (1 << 63) - 1, (1 << 64) - 1])

    def tensor(self):
        r = self.rng
        if r.random() < 0.3:  # a real tensor that may fit a deployment
            shape = r.choice([(1, 16), (2, 16), (1, 4), (1, 3, 64), (1, 4, 64), (0, 16), (1, 0)])
            dtype = r.choice([torch.float32, torch.int64, torch.int32, torch.float64])
            t = (torch.randint(-300, 300, shape) if not dtype.is_floating_point else torch.randn(shape) * 1e3).to(dtype)
            if r.random() < 0.2 and t.numel():
                t.view(-1)[0] = float("nan") if dtype.is_floating_point else 1 << 30
            return to_proto(t)
        shape = [r.choice([0, 1, 2, 3, 16, 64, -1, 1 << 20, (1 << 62)]) for _ in range(r.choice([0, 1, 2, 3, 9]))]
        nbytes = r.choice([0, 1, 7, 64, 256, 4096])
        from blindproof.proto import tensor_pb2
        return tensor_pb2.Tensor(dtype=r.choice(DTYPES), shape=shape, data=os.urandom(nbytes))

    # --- messages -----------------------------------------------------------------------------
    def request(self, method: str):
        r = self.rng
        if method == "Infer":
            return pb.InferRequest(deployment_id=self.ref("deployment"), input=self.tensor(),
                                   start=r.choice([0, 0, 1, -1, 1 << 40]), prove=r.random() < 0.3)
        if method == "DeleteDeployment":
            return pb.DeleteDeploymentRequest(deployment_id=self.ref("deployment") if r.random() < 0.1 else self.text())
        if method == "ListDeployments":
            return pb.ListDeploymentsRequest()
        if method == "Prove":
            return prover_pb2.ProveRequest(request_id=self.ref("request"))
        if method in ("GetJob", "WatchJob", "CancelJob"):
            return prover_pb2.JobRef(job_id=self.ref("job") if method != "CancelJob" or r.random() < 0.1 else self.text())
        if method == "DownloadProof":
            return prover_pb2.DownloadProofRequest(job_id=self.ref("job"), chunk_bytes=r.choice(
                [0, 1, 4096, 65536, 1 << 20, 16 << 20, (1 << 32) - 1]), offset=self.integer())
        if method in ("Check", "Watch"):
            from grpc_health.v1 import health_pb2
            return health_pb2.HealthCheckRequest(service=r.choice(["", "blindproof.v1.Inference", self.text()]))
        if method == "Deploy":
            if r.random() < 0.5:
                return pb.DeployRequest(header=pb.DeployHeader(
                    digest=r.choice(["blake3:" + os.urandom(32).hex(), self.text()]), total_bytes=self.integer(),
                    key_id=self.text(), label=self.text(), mode=r.choice(["", "integer", "float", self.text()])))
            return pb.DeployRequest(chunk=os.urandom(r.choice([0, 1, 100, 5000])))
        if method == "Generate":
            if r.random() < 0.4:
                return pb.GenerateRequest(open=pb.GenerateOpen(deployment_id=self.ref("deployment")))
            return pb.GenerateRequest(step=pb.GenerateStep(input=self.tensor()))
        raise AssertionError(method)

    def raw(self, method: str) -> bytes:
        r = self.rng
        kind = r.random()
        if kind < 0.15:
            return os.urandom(r.choice([0, 1, 5, 17, 200, 3000]))
        data = bytearray(self.request(method).SerializeToString())
        if kind < 0.55 or not data:
            return bytes(data)
        if kind < 0.75:  # flip bytes
            for _ in range(r.randint(1, 4)):
                i = r.randrange(len(data))
                data[i] ^= 1 << r.randrange(8)
            return bytes(data)
        if kind < 0.9:  # cut
            return bytes(data[:r.randrange(len(data))])
        return bytes(data) + os.urandom(r.randint(1, 20))  # trailing garbage

    def metadata(self, good: tuple) -> tuple:
        r = self.rng.random()
        if r < 0.9:
            return good
        if r < 0.95:
            return (("authorization", "Bearer " + self.ascii()),)
        return good + (("x-blindproof-client", self.ascii() or "c"),)

    def ascii(self) -> str:  # metadata values must be printable ASCII (else the client library refuses them)
        return "".join(c for c in self.text() if 32 <= ord(c) < 127)[:4000]


METHODS = [  # (path, request streaming, reply streaming, weight)
    (INF + "Infer", False, False, 6), (INF + "Deploy", True, False, 3), (INF + "ListDeployments", False, False, 1),
    (INF + "DeleteDeployment", False, False, 1), (INF + "Generate", True, True, 3),
    (PRV + "Prove", False, False, 2), (PRV + "GetJob", False, False, 2), (PRV + "WatchJob", False, True, 2),
    (PRV + "CancelJob", False, False, 1), (PRV + "DownloadProof", False, True, 2),
    (HEALTH + "Check", False, False, 1), (HEALTH + "Watch", False, True, 1),
]


def _seed_ids(target: str, token: str | None) -> dict[str, list[str]]:
    """Deploy a float transformer and an integer MLP and serve a few inferences, so fuzzed ids hit real state."""
    from blindproof.models.mlp import MLP
    from blindproof.models.workloads import get_workload
    ids: dict[str, list[str]] = {"deployment": [], "request": [], "job": []}
    with BlindClient(target, token=token, timeout=60) as c:
        c.wait_ready()
        torch.manual_seed(0)
        dep = c.deploy(MLP((16, 8, 4)).eval(), None, mode="integer")
        tiny = c.deploy(get_workload("tiny-llama").build(0), None)
        ids["deployment"] += [dep.deployment_id, tiny.deployment_id]
        for _ in range(3):
            res = c.infer_verifiable(dep, torch.randn(1, 16), prove=True)
            ids["request"].append(res.request_id)
            ids["job"].append(res.job_id)
    return ids


def fuzz(target: str, messages: int, seed: int = 0, token: str | None = None, deadline_s: float = 3.0,
         ids: dict[str, list[str]] | None = None) -> dict:
    """Send ``messages`` fuzzed messages (stream messages counted one by one); returns the tally."""
    rng = random.Random(seed)
    ids = ids if ids is not None else _seed_ids(target, token)
    fz = Fuzzer(rng, ids)
    good = (("authorization", f"Bearer {token}"),) if token else ()
    ident = lambda b: b  # noqa: E731
    codes: collections.Counter = collections.Counter()
    unknown: list[str] = []
    sent = calls = 0
    weights = [m[3] for m in METHODS]
    t0 = time.perf_counter()
    with grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 64 << 20)]) as ch:
        while sent < messages:
            path, sreq, srep, _ = rng.choices(METHODS, weights)[0]
            name = path.rsplit("/", 1)[1]
            make = {(False, False): ch.unary_unary, (False, True): ch.unary_stream, (True, False): ch.stream_unary,
                    (True, True): ch.stream_stream}[(sreq, srep)]
            call = make(path, request_serializer=ident, response_deserializer=ident)
            if sreq:
                msgs = [fz.raw(name) for _ in range(rng.choice([0, 1, 2, 3, 5, 8]))]
                if name == "Deploy" and msgs and rng.random() < 0.5:  # a valid header first, to reach the chunks
                    msgs[0] = fz.request("Deploy").SerializeToString() if rng.random() < 0.5 else pb.DeployRequest(
                        header=pb.DeployHeader(digest="blake3:" + os.urandom(32).hex(), total_bytes=100)
                    ).SerializeToString()
                if name == "Generate" and msgs and ids["deployment"] and rng.random() < 0.5:
                    msgs[0] = pb.GenerateRequest(open=pb.GenerateOpen(
                        deployment_id=ids["deployment"][1])).SerializeToString()
                arg = iter(msgs)
                sent += max(1, len(msgs))
            else:
                arg = fz.raw(name)
                sent += 1
            calls += 1
            md = fz.metadata(good)
            try:
                if srep:  # watch streams run until their job ends: take the first reply and hang up
                    stream = call(arg, timeout=deadline_s, metadata=md)
                    for n, _ in enumerate(stream):
                        if n >= (0 if name in ("Watch", "WatchJob") else 50):
                            stream.cancel()
                            break
                else:
                    call(arg, timeout=deadline_s, metadata=md)
                codes["OK"] += 1
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.CANCELLED and srep:  # our own hang-up after a reply
                    codes["OK"] += 1
                    continue
                codes[e.code().name] += 1
                if e.code() == grpc.StatusCode.UNKNOWN:
                    unknown.append(f"{path}: {(e.details() or '')[:300]}")
    return {"messages": sent, "calls": calls, "seconds": round(time.perf_counter() - t0, 1),
            "codes": dict(sorted(codes.items())), "unknown": unknown[:20], "unknown_count": len(unknown)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-message-mb", default="1")
    args = ap.parse_args(argv)
    import tempfile

    from test_prover_daemon import _serve
    with tempfile.TemporaryDirectory() as tmp:
        srv = _serve(Path(tmp), "--max-message-mb", args.max_message_mb, "--upload-idle-s", "2", steps=2,
                     step_s=0.01, proof_bytes=200_000)
        with srv:
            report = fuzz(srv.target, args.messages, args.seed)
            with BlindClient(srv.target, timeout=10) as c:
                report["healthy_after"] = c.health() == "SERVING"
            log = srv.log()
            report["server_alive"] = srv.alive()
            report["tracebacks_in_log"] = log.count("Traceback")
            report["internal_errors_logged"] = log.count('"event":"internal_error"')
            report["internal_error_samples"] = sorted({ln[ln.find('"method"'):][:300] for ln in log.splitlines()
                                                       if '"event":"internal_error"' in ln})[:10]
    print(json.dumps(report, indent=2))
    ok = (report["unknown_count"] == 0 and report["tracebacks_in_log"] == 0 and report["healthy_after"]
          and report["server_alive"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
