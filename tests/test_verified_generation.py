"""Proved generation through the SDK, against a real `blindproof serve` process: the client generates
tokens blind (an EE-transformed integer tiny-llama), the server proves one forward over the prompt and
the new tokens, and the client checks the proof and that every token is the argmax of the proved
logits. A server that answers one generation step with other logits is caught."""

from __future__ import annotations

import pytest
import torch

from blindproof.client import BlindClient, ProofVerificationError, VerifiedGeneration
from blindproof.ee import generate_key
from blindproof.models.workloads import get_workload
from blindproof.proto import inference_pb2 as pb
from blindproof.proto.tensors import from_proto, to_proto
from blindproof.server.process import ServerProcess
from test_verified_blind import Tamper

pytestmark = pytest.mark.timeout(300)

PROMPT = torch.tensor([list(b"The tide ")], dtype=torch.int64)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    store = tmp_path_factory.mktemp("generation") / "store"
    with ServerProcess(store=store) as srv:
        proxy = Tamper(srv.target)
        try:
            with BlindClient(proxy.target, timeout=120) as client:
                client.wait_ready(60)
                dep = client.deploy(get_workload("tiny-llama").build(0).eval(), generate_key(), "rotate",
                                    mode="integer")
                yield proxy, client, dep
        finally:
            proxy.close()


def test_proved_generation_verifies(env):
    proxy, client, dep = env
    proxy.clear()
    seen = []
    res = client.generate(dep, PROMPT, 4, on_token=lambda i, t: seen.append(int(t)), prove=True)
    assert isinstance(res, VerifiedGeneration) and res.tokens.shape == (1, 4)
    assert seen == res.tokens[0].tolist()
    assert res.inference.output.shape[1] == PROMPT.shape[1] + 3  # one forward over prompt + n − 1 tokens
    assert torch.equal(res.inference.output[0, PROMPT.shape[1] - 1:].argmax(-1), res.tokens[0])
    assert res.inference.proof.provable_bits >= 100


def test_a_step_answered_with_other_logits_is_caught(env):
    """The server answers the second generation step with the output of another input: the client
    generates a wrong token, and the proved forward (honest) does not give it back."""
    proxy, client, dep = env
    proxy.clear()
    calls = []

    def swap(req: bytes, rep: bytes) -> bytes:
        calls.append(1)
        if len(calls) != 2:
            return rep
        msg = pb.InferReply.FromString(rep)
        out = from_proto(msg.output)
        msg.output.CopyFrom(to_proto(torch.flip(out, dims=[-1]).contiguous()))  # another token wins
        return msg.SerializeToString()

    proxy.reply_hooks["/blindproof.v1.Inference/Infer"] = swap
    with pytest.raises(ProofVerificationError, match="do not give the generated tokens"):
        client.generate(dep, PROMPT, 3, prove=True)
    proxy.clear()


def test_proved_generation_refuses_what_it_cannot_prove(env):
    _, client, dep = env
    with pytest.raises(ValueError, match="one prompt"):
        client.generate(dep, PROMPT.repeat(2, 1), 2, prove=True)
    with pytest.raises(ValueError, match="positive integer"):
        client.generate(dep, PROMPT, 0, prove=True)


def test_a_bidirectional_model_is_refused_before_any_step(env):
    """Without causality one forward proves no generation (a server could steer the tokens to a fixed
    point of the full forward): refused before anything is sent."""
    import dataclasses

    from blindproof.models.transformer import Transformer
    from blindproof.models.workloads import TINY_LLAMA, init_weights
    proxy, client, _ = env
    model = init_weights(Transformer(dataclasses.replace(TINY_LLAMA, causal=False)), 0).eval()
    dep = client.deploy(model, generate_key(), "rotate", mode="integer")
    proxy.clear()
    with pytest.raises(ValueError, match="causal"):
        client.generate(dep, PROMPT, 2, prove=True)
    assert "/blindproof.v1.Inference/Infer" not in proxy.seen
