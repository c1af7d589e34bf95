"""Verified generation: one proof that N tokens are the greedy continuation of a prompt under the
committed model (tiny-llama, a causal byte-level language model), through the API and the CLI; and
the proofs it must refuse: an honest model proof of a continuation that is not greedy, another prompt,
a program that is not a causal language model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from blindproof.cli import main
from blindproof.zk.proof.generation import (GenerationError, check_causal_lm, forward_tokens, greedy_generate,
                                            prove_generation, read_generation, verify_generation)
from blindproof.zk.proof.keys import CommitmentKey, OpeningLedger
from blindproof.zk.proof.prover import ModelProver, quantized_workload
from blindproof.zk.proof.verifier import verify_model_proof

PROMPT = np.frombuffer(b"The tide comes in ", dtype=np.uint8).astype(np.int64)
N = 6


@pytest.fixture(scope="module")
def llama():
    prover = ModelProver.create(quantized_workload("tiny-llama"), CommitmentKey(b"\x3c" * 32), budget=16,
                                ledger=OpeningLedger(None))
    proof, gen = prove_generation(prover, PROMPT, N)
    return prover, proof, gen


def test_logits_at_a_position_do_not_depend_on_later_tokens(llama):
    prover, _, _ = llama
    seq = np.concatenate([PROMPT, np.arange(40, 52)])[None, :]
    full = np.asarray(prover.model.run(seq, record=False).tensors["logits"])
    for cut in (1, 7, PROMPT.size):
        part = np.asarray(prover.model.run(seq[:, :cut], record=False).tensors["logits"])
        assert np.array_equal(full[:, :cut], part)


def test_generation_proof_verifies_and_shows_the_greedy_tokens(llama):
    prover, proof, gen = llama
    assert np.array_equal(gen.tokens, greedy_generate(prover.model, PROMPT, N).tokens)
    assert np.array_equal(proof.inputs["tokens"], forward_tokens(gen))
    res = verify_generation(prover.commitment, proof.to_bytes(), N)
    assert res.ok, res.reason
    assert np.array_equal(res.generation.prompt, PROMPT) and np.array_equal(res.generation.tokens, gen.tokens)
    assert res.generation.text()[0] == "The tide comes in "
    pinned = verify_generation(prover.commitment, proof.to_bytes(), N, prompt=PROMPT, tokens=gen.tokens)
    assert pinned.ok, pinned.reason


def test_a_continuation_that_is_not_greedy_is_refused(llama):
    """An honest proof of the forward over prompt + other tokens: the model proof is valid, the
    generation claim is not."""
    prover, _, gen = llama
    other = gen.tokens.copy()
    other[1] = (other[1] + 1) % 256
    seq = np.concatenate([PROMPT, other[:-1]])[None, :]
    proof = prover.prove({"tokens": seq})
    assert verify_model_proof(prover.commitment, proof.to_bytes()).ok
    res = verify_generation(prover.commitment, proof.to_bytes(), N)
    assert not res.ok and "is not the argmax" in res.reason


def test_other_prompt_or_tokens_pinned_are_refused(llama):
    prover, proof, gen = llama
    data = proof.to_bytes()
    res = verify_generation(prover.commitment, data, N, prompt=PROMPT[:-1])
    assert not res.ok and "another prompt" in res.reason
    res = verify_generation(prover.commitment, data, N, tokens=gen.tokens[::-1])
    assert not res.ok and "other tokens" in res.reason
    assert not verify_generation(prover.commitment, data, N, prompt=np.array([0.5])).ok  # a verdict, no crash


def test_a_tampered_generation_proof_is_refused(llama):
    prover, proof, _ = llama
    data = bytearray(proof.to_bytes())
    data[len(data) // 2] ^= 1
    res = verify_generation(prover.commitment, bytes(data), N)
    assert not res.ok


def test_bad_requests_get_clear_errors(llama):
    prover, proof, _ = llama
    with pytest.raises(GenerationError, match="new tokens"):
        greedy_generate(prover.model, PROMPT, 0)
    with pytest.raises(GenerationError, match="positions"):
        greedy_generate(prover.model, PROMPT, 300)
    with pytest.raises(GenerationError, match="token ids"):
        greedy_generate(prover.model, PROMPT.astype(np.float32), 2)
    with pytest.raises(GenerationError, match="in \\[0, 255\\]"):
        greedy_generate(prover.model, np.array([1, 999]), 2)
    with pytest.raises(GenerationError, match="cannot come from"):
        read_generation(prover.model.spec, proof, PROMPT.size + N + 5)


def test_an_encoder_is_not_a_language_model():
    spec = quantized_workload("minilm-l6").spec
    with pytest.raises(GenerationError):
        check_causal_lm(spec)


def test_cli_prove_and_verify_generate(tmp_path, capsys):
    (tmp_path / "prompt.txt").write_bytes(b"The tide comes in ")
    com, proof = str(tmp_path / "m.commit"), str(tmp_path / "g.bin")
    assert main(["commit", "--model", "tiny-llama", "-o", com]) == 0
    capsys.readouterr()
    assert main(["prove", "--model", "tiny-llama", "--commitment", com, "--input", str(tmp_path / "prompt.txt"),
                 "--generate", "4", "-o", proof, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["generation"]["prompt_text"] == "The tide comes in " and len(summary["generation"]["tokens"]) == 4
    assert main(["verify", proof, "--commitment", com, "--generate", "4", "--input", str(tmp_path / "prompt.txt")]) == 0
    out = capsys.readouterr().out
    assert "VALID proof" in out and f"continuation: {summary['generation']['text']!r}" in out
    (tmp_path / "other.txt").write_bytes(b"The tide goes out ")
    assert main(["verify", proof, "--commitment", com, "--generate", "4", "--input", str(tmp_path / "other.txt")]) == 1
    assert "another prompt" in capsys.readouterr().out
    # an ordinary proof of random bytes is no generation: its tokens are not the logits' argmax
    plain = str(tmp_path / "p.bin")
    assert main(["prove", "--model", "tiny-llama", "--commitment", com, "-o", plain]) == 0
    capsys.readouterr()
    assert main(["verify", plain, "--commitment", com, "--generate", "3", "--json"]) == 1
    verdict = json.loads(capsys.readouterr().out)
    assert not verdict["valid"] and "not a generation" in verdict["reason"]


# --- hostile specs: the program, not the config, must be causal ------------------------------------

def _respec(spec, change):
    from blindproof.quant.spec import QuantSpec
    ops = tuple(change(op) for op in spec.ops)
    return QuantSpec(spec.arch, spec.inputs, spec.outputs, ops, dict(spec.tensors), spec.weights, spec.tables)


def test_softmax_replaced_by_a_rescale_is_refused(llama):
    """A model owner's spec whose last attention reads its probabilities from a plain rescale of the
    scores (pv sums over later tokens): with such a spec a fixed point of the full forward was proved
    as a 'greedy continuation'. The graph check refuses it, whatever the config says."""
    from blindproof.quant.spec import Op
    prover, _, _ = llama
    spec = _respec(prover.model.spec, lambda op: Op("rescale", op.inputs, op.output, {"shift": 1})
                   if op.output == "b1.attn.probs" else op)
    assert spec.arch["config"]["causal"]
    with pytest.raises(GenerationError, match="pv .* not a causal softmax"):
        check_causal_lm(spec)


def test_other_position_mixing_graphs_are_refused(llama):
    from blindproof.quant.spec import Op
    prover, _, _ = llama
    spec = prover.model.spec
    # the scores read by something other than their softmax path
    with pytest.raises(GenerationError, match="reads attention scores"):
        check_causal_lm(_respec(spec, lambda op: Op("add", ("b0.attn.scores", "b0.attn.scores"), op.output, {})
                                if op.output == "b0.res1" else op))
    # a softmax that is not causal
    with pytest.raises(GenerationError, match="not causal"):
        check_causal_lm(_respec(spec, lambda op: Op("softmax", op.inputs, op.output, {**op.params, "causal": False})
                                if op.kind == "softmax" and op.output.startswith("b1.") else op))
    # the token ids read as a vector (its last axis is the position)
    with pytest.raises(GenerationError, match="token ids"):
        check_causal_lm(_respec(spec, lambda op: Op("rescale", ("tokens",), op.output, {"shift": 0})
                                if op.output == "b0.attn_norm.in" else op))


def test_a_convolution_over_positions_is_refused(llama):
    """A Conv1d over the sequence (channel-last: its spatial axis is the position) reads later tokens."""
    from blindproof.quant.spec import Op
    prover, _, _ = llama
    first = next(op for op in prover.model.spec.ops if op.kind == "linear")
    conv = Op("conv", first.inputs, first.output, {"weight": first.params["weight"], "bias": None,
                                                   "stride": [1], "padding": [1], "dilation": [1]})
    with pytest.raises(GenerationError, match="convolves over positions"):
        check_causal_lm(_respec(prover.model.spec, lambda op: conv if op is first else op))


def test_a_linear_that_sums_over_positions_is_refused():
    """A feature-map weight ``(V, T, 2)`` over a ``split_heads`` output contracts the position axis: every
    logits row read the last token, and one prompt had two accepted 'greedy continuations'."""
    from blindproof.quant.spec import Op, QuantSpec, TensorSpec, WeightSpec
    acc, T, V, H = (1 << 29) - 1, 4, 4, 4
    t = lambda n, lo, hi, role: TensorSpec(n, 0, lo, hi, role)  # noqa: E731
    ops = (Op("embed", ("ids",), "e", {"weight": "E", "index": "tokens"}),
           Op("split_heads", ("e",), "s", {"heads": H}),
           Op("linear", ("s",), "logits", {"weight": "W", "bias": None}))
    spec = QuantSpec(arch={"family": "transformer", "scope": "model",
                           "config": {"causal": True, "output": "logits", "max_seq": T}},
                     inputs=("ids",), outputs=("logits",), ops=ops,
                     tensors={x.name: x for x in (t("ids", 0, V - 1, "index"), t("e", -127, 127, "activation"),
                                                  t("s", -127, 127, "activation"),
                                                  t("logits", -acc, acc, "accumulator"))},
                     weights={"E": WeightSpec("E", (V, 2 * H), "int8", 0), "W": WeightSpec("W", (V, T, 2), "int8", 0)},
                     tables={})
    with pytest.raises(GenerationError, match="contracts more than the last axis"):
        check_causal_lm(spec)


def test_cli_refuses_a_batch_prompt_pin(llama, tmp_path, capsys):
    prover, proof, _ = llama
    prover.commitment.save(tmp_path / "m.commit")
    (tmp_path / "g.bin").write_bytes(proof.to_bytes())
    two = np.concatenate([PROMPT, PROMPT])[: 2 * (PROMPT.size // 2)].reshape(2, -1)  # two prompts, one file
    np.save(tmp_path / "batch.npy", two)
    rc = main(["verify", str(tmp_path / "g.bin"), "--commitment", str(tmp_path / "m.commit"), "--generate", str(N),
               "--input", str(tmp_path / "batch.npy")])
    out = capsys.readouterr()
    assert rc != 0 and "VALID proof" not in out.out.replace("INVALID proof", "")
