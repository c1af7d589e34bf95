"""Verifiable blind inference end to end, against a real `blindproof serve` process.

The client deploys an EE-transformed integer model, keeps its own model commitment, and verifies every
proof against it with the statement pinned to the exact encrypted request and response. A cheating
server is simulated by a man-in-the-middle proxy (``Tamper`` below) between the client and an honest
server: it rewrites answers the way a dishonest server would (wrong output, other weights, a proof of
another request, a commitment of another model, a damaged proof). Every such case must be caught.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent import futures
from pathlib import Path
from typing import Callable

import blake3
import grpc
import numpy as np
import pytest
import torch

from blindproof.client import BlindClient
from blindproof.client.verify import (CommitmentMismatchError, ProofVerificationError, check_commitment,
                                      verify_exchange)
from blindproof.ee import generate_key
from blindproof.models.mlp import MLP
from blindproof.proto import inference_pb2 as pb
from blindproof.proto import prover_pb2
from blindproof.proto.tensors import from_proto, to_proto
from blindproof.server.process import ServerProcess

pytestmark = pytest.mark.timeout(300)

_STREAM_UNARY = {"/blindproof.v1.Inference/Deploy"}
_UNARY_STREAM = {"/blindproof.v1.ProverService/WatchJob", "/blindproof.v1.ProverService/DownloadProof",
                 "/grpc.health.v1.Health/Watch"}
_FORWARDED_METADATA = ("authorization", "x-blindproof-client")
KEYS: dict = {}  # the module's deployments' EE keys (the client's secrets), by label


class Tamper(grpc.GenericRpcHandler):
    """A transparent gRPC proxy with hooks that rewrite messages (raw protobuf bytes) per method.

    ``request_hooks[method](bytes) -> bytes`` runs before forwarding; ``reply_hooks[method](request,
    reply) -> reply`` on each reply message. With no hooks it forwards unchanged.
    """

    def __init__(self, upstream: str) -> None:
        self.channel = grpc.insecure_channel(upstream, options=[("grpc.max_receive_message_length", 1 << 28),
                                                                ("grpc.max_send_message_length", 1 << 28)])
        self.request_hooks: dict[str, Callable[[bytes], bytes]] = {}
        self.reply_hooks: dict[str, Callable[[bytes, bytes], bytes]] = {}
        self.seen: dict[str, list[tuple[bytes, bytes]]] = {}
        self.server = grpc.server(futures.ThreadPoolExecutor(8), handlers=[self],
                                  options=[("grpc.max_receive_message_length", 1 << 28),
                                           ("grpc.max_send_message_length", 1 << 28)])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def clear(self) -> None:
        self.request_hooks.clear()
        self.reply_hooks.clear()
        self.seen.clear()

    def close(self) -> None:
        self.server.stop(0)
        self.channel.close()

    def _meta(self, context) -> tuple:
        return tuple((k, v) for k, v in context.invocation_metadata() if k in _FORWARDED_METADATA)

    def _req(self, method: str, data: bytes) -> bytes:
        hook = self.request_hooks.get(method)
        return hook(data) if hook else data

    def _rep(self, method: str, req: bytes, data: bytes) -> bytes:
        hook = self.reply_hooks.get(method)
        out = hook(req, data) if hook else data
        self.seen.setdefault(method, []).append((req, out))
        return out

    def service(self, details):
        m = details.method
        if m in _STREAM_UNARY:
            def su(it, context):
                return self._rep(m, b"", self.channel.stream_unary(m)((self._req(m, r) for r in it),
                                                                      metadata=self._meta(context)))
            return grpc.stream_unary_rpc_method_handler(su)
        if m in _UNARY_STREAM:
            def us(req, context):
                req = self._req(m, req)
                for rep in self.channel.unary_stream(m)(req, metadata=self._meta(context)):
                    yield self._rep(m, req, rep)
            return grpc.unary_stream_rpc_method_handler(us)

        def uu(req, context):
            req = self._req(m, req)
            try:
                return self._rep(m, req, self.channel.unary_unary(m)(req, metadata=self._meta(context)))
            except grpc.RpcError as err:
                context.abort(err.code(), err.details())
        return grpc.unary_unary_rpc_method_handler(uu)


def _mlp(seed: int) -> MLP:
    torch.manual_seed(seed)
    return MLP((16, 8, 4)).eval()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """One honest server, a proxy in front of it, and two integer deployments of one architecture."""
    store = tmp_path_factory.mktemp("verified") / "store"
    with ServerProcess(store=store) as srv:
        proxy = Tamper(srv.target)
        try:
            with BlindClient(proxy.target, timeout=120) as client:
                client.wait_ready(60)
                key = generate_key()
                a = client.deploy(_mlp(0), key, "rotate", mode="integer", label="A")
                b = client.deploy(_mlp(1), generate_key(), "rotate", mode="integer", label="B")
                KEYS["A"] = key
                yield proxy, client, a, b, srv
        finally:
            proxy.close()


def _x(seed: int) -> torch.Tensor:
    return torch.randn(1, 16, generator=torch.Generator().manual_seed(seed))


def _edit_reply(fn: Callable[[pb.InferReply], None]) -> Callable[[bytes, bytes], bytes]:
    def hook(_req: bytes, data: bytes) -> bytes:
        msg = pb.InferReply.FromString(data)
        fn(msg)
        return msg.SerializeToString()
    return hook


def test_honest_proof_verifies_and_speaks_about_the_wire_exchange(env, tmp_path):
    proxy, client, a, _, _ = env
    proxy.clear()
    res = client.infer(a, _x(1), prove=True, proof_timeout=240)
    assert torch.allclose(res.output, a.model(_x(1)).double(), atol=0.05)  # decoded blind answer
    assert res.proof.provable_bits >= 100 and res.proof.model_digest == a.commitment.digest()
    # the statement is exactly what crossed the wire: the proxy saw the same encrypted request/response
    (req_bytes, rep_bytes), = proxy.seen["/blindproof.v1.Inference/Infer"]
    wire_in = from_proto(pb.InferRequest.FromString(req_bytes).input).numpy()
    wire_out = from_proto(pb.InferReply.FromString(rep_bytes).output).numpy()
    (sent,), (received,) = res.sent.values(), res.received.values()
    assert np.array_equal(sent, wire_in) and np.array_equal(received, wire_out)
    assert not np.array_equal(wire_in, np.round(_x(1).numpy()))  # keyed features, not the plaintext
    # offline: anyone with the proof file and the commitment file, in another process
    res.proof.save(tmp_path / "proof.bin")
    a.commitment.save(tmp_path / "model.commit")
    out = subprocess.run([sys.executable, "-m", "blindproof.cli", "verify", str(tmp_path / "proof.bin"),
                          "--commitment", str(tmp_path / "model.commit"), "--json"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["valid"] is True
    # and the same proof is no proof for any other exchange
    with pytest.raises(ProofVerificationError, match="another input"):
        verify_exchange(a.commitment, res.proof.proof, {k: v + 1 for k, v in res.sent.items()}, res.received)


def test_wrong_output_is_caught(env):
    proxy, client, a, _, _ = env
    proxy.clear()

    def bump(msg: pb.InferReply) -> None:
        y = from_proto(msg.output).clone()
        y.view(-1)[0] += 1  # one unit of one logit
        msg.output.CopyFrom(to_proto(y))
    proxy.reply_hooks["/blindproof.v1.Inference/Infer"] = _edit_reply(bump)
    with pytest.raises(ProofVerificationError, match="another output"):
        client.infer(a, _x(2), prove=True, proof_timeout=240)


def test_swapped_weights_are_caught(env):
    """The server answers (and honestly proves) with other weights than the deployed ones."""
    proxy, client, a, b, _ = env
    proxy.clear()

    def to_b(data: bytes) -> bytes:
        msg = pb.InferRequest.FromString(data)
        msg.deployment_id = b.deployment_id
        return msg.SerializeToString()
    proxy.request_hooks["/blindproof.v1.Inference/Infer"] = to_b
    with pytest.raises(ProofVerificationError, match="another model commitment"):
        client.infer(a, _x(3), prove=True, proof_timeout=240)


def test_proof_of_another_request_is_caught(env):
    proxy, client, a, _, _ = env
    proxy.clear()
    first = client.infer(a, _x(4), prove=True, proof_timeout=240)
    assert first.job_id

    def no_new_job(data: bytes) -> bytes:  # the server proves nothing new and hands over the old proof
        msg = pb.InferRequest.FromString(data)
        msg.prove = False
        return msg.SerializeToString()

    def old_job(msg: pb.InferReply) -> None:
        msg.job_id = first.job_id
    proxy.request_hooks["/blindproof.v1.Inference/Infer"] = no_new_job
    proxy.reply_hooks["/blindproof.v1.Inference/Infer"] = _edit_reply(old_job)
    with pytest.raises(ProofVerificationError, match="another input"):
        client.infer(a, _x(5), prove=True, proof_timeout=240)


def test_tampered_proof_bytes_are_caught(env):
    """A proof altered in transit (with a matching digest, so the download itself looks fine)."""
    proxy, client, a, _, _ = env
    proxy.clear()

    def flip(_req: bytes, data: bytes) -> bytes:
        c = prover_pb2.ProofChunk.FromString(data)
        if c.offset == 0:
            body = bytearray(c.data)
            body[len(body) // 2] ^= 0x01
            c.data = bytes(body)
            c.digest = "blake3:" + blake3.blake3(bytes(body)).hexdigest()  # a one-chunk proof
        return c.SerializeToString()
    proxy.reply_hooks["/blindproof.v1.ProverService/DownloadProof"] = flip
    with pytest.raises(ProofVerificationError):
        client.infer(a, _x(6), prove=True, proof_timeout=240)


def test_a_server_committing_to_other_weights_fails_the_deployment(env):
    proxy, client, _, b, _ = env
    proxy.clear()

    def other_commitment(_req: bytes, data: bytes) -> bytes:
        msg = pb.DeployReply.FromString(data)
        msg.model_commitment = b.commitment.to_bytes()
        return msg.SerializeToString()
    proxy.reply_hooks["/blindproof.v1.Inference/Deploy"] = other_commitment
    with pytest.raises(CommitmentMismatchError, match="refusing the deployment"):
        client.deploy(_mlp(2), generate_key(), "rotate", mode="integer")
    with pytest.raises(CommitmentMismatchError, match="no model commitment"):
        check_commitment(b.commitment, b"")


def test_attach_integer_rebuilds_only_the_deployed_model(env):
    proxy, client, a, _, _ = env
    proxy.clear()
    again = client.attach_integer(a.deployment_id, _mlp(0), KEYS["A"], "rotate", a.codec.commitment_key, a.commitment)
    assert again.digest == a.digest and again.commitment.digest() == a.commitment.digest()
    res = client.infer(again, _x(7), prove=True, proof_timeout=240)
    assert res.proof.model_digest == a.commitment.digest()
    from blindproof.client import DeploymentDigestError
    with pytest.raises(DeploymentDigestError, match="not the model that was deployed"):
        client.attach_integer(a.deployment_id, _mlp(1), KEYS["A"], "rotate", a.codec.commitment_key)


def test_infer_prove_needs_an_integer_deployment(env):
    _, client, _, _, _ = env
    float_dep = client.deploy(_mlp(0), generate_key(), "rotate")
    with pytest.raises(ValueError, match="integer deployment"):
        client.infer(float_dep, _x(0), prove=True)
    client.delete(float_dep)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "blindproof.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=240)


@pytest.mark.slow  # tiny-llama: deploy, prove and several CLI start-ups (about a minute on a loaded machine)
def test_cli_deploy_integer_infer_prove_verify(tmp_path, run_cli):
    """keygen -> deploy --integer -> infer --prove -> verify proof.bin --commitment model.commit (deploy, infer
    and verify in real processes; keygen, export-commitment and the refused verify in this one)."""
    with ServerProcess(store=tmp_path / "store") as srv:
        assert run_cli("keygen", "--out", "k.key", cwd=tmp_path).returncode == 0
        dep = _cli("deploy", "--server", srv.target, "--model", "tiny-llama", "--key", "k.key", "--integer",
                   "--json", cwd=tmp_path)
        assert dep.returncode == 0, dep.stderr
        summary = json.loads(dep.stdout)
        assert summary["mode"] == "integer" and (tmp_path / "model.commit").exists()
        record = json.loads((tmp_path / "deployment.json").read_text())
        assert record["mode"] == "integer" and record["commitment"] and "ckey" in record["commitment_key_file"]
        inf = _cli("infer", "--tokens", "1,2,3,4", "--prove", "--json", cwd=tmp_path)
        assert inf.returncode == 0, inf.stderr
        proof = json.loads(inf.stdout)["proof"]
        assert proof["verified"] is True and proof["model_digest"] == summary["commitment_digest"]
        assert run_cli("export-commitment", "-o", "again.commit", cwd=tmp_path).returncode == 0
        assert (tmp_path / "again.commit").read_bytes() == (tmp_path / "model.commit").read_bytes()
    ver = _cli("verify", "proof.bin", "--commitment", "again.commit", "--json", cwd=tmp_path)  # server gone
    assert ver.returncode == 0 and json.loads(ver.stdout)["valid"] is True, ver.stdout + ver.stderr
    other = tmp_path / "other.commit"
    from blindproof.client.sdk import integer_commitment
    from blindproof.client.integer import default_calibration, quantize_for_server
    from blindproof.client.codecs import PlainCodec
    from blindproof.client.integer import integer_split
    from blindproof.models.workloads import get_workload
    m = get_workload("tiny-llama").build(0)
    qm = quantize_for_server(m, PlainCodec(m, integer_split(m)), default_calibration(m))
    integer_commitment(qm, b"\x07" * 32).save(other)
    bad = run_cli("verify", "proof.bin", "--commitment", str(other), cwd=tmp_path, check=False)
    assert bad.returncode == 1 and "another model commitment" in bad.stdout
