"""The prover's torch backend on ``cuda``: bit-identity with the CPU path, and a whole proof.

Runs only where torch sees a CUDA device (``pytest -m gpu``); skipped cleanly elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

from blindproof.zk import device
from blindproof.zk.commit import reed_solomon as _rs
from blindproof.zk.field import babybear as F
from blindproof.quant import reference

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture(autouse=True)
def _restore_backend():
    old = device.set_prover_device()
    yield
    device.set_prover_device(old.choice, min_rs_elements=old.min_rs_elements, min_matmul_macs=old.min_matmul_macs)


def test_auto_and_cuda_resolve_to_the_gpu():
    assert device.torch_device_for("auto") == "cuda"
    device.set_prover_device("cuda", check=True)
    assert device.device_for_encode(1 << 10, 1 << 10) == "cuda"
    with pytest.raises(device.DeviceError, match="CUDA device"):
        device.torch_device_for(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.parametrize("b, k, n", [(1, 1, 1), (1, 1, 2), (3, 2, 2), (5, 8, 8), (7, 37, 128), (9, 260, 1024),
                                     (33, 4096 + 150, 16384), (300, 16384 + 150, 65536),
                                     (64, 32923, 131072), (32, 65691, 262144)])
def test_cuda_encode_rows_is_bit_identical(b, k, n):
    rows = np.random.default_rng(b + k + n).integers(0, F.P, (b, k), dtype=np.uint32)
    rows[0, 0] = F.P - 1
    want = _rs.encode_rows(rows, n)
    device.set_prover_device("cuda", min_rs_elements=0)
    np.testing.assert_array_equal(_rs.encode_rows(rows, n), want)


def test_cuda_encode_rows_across_chunks(monkeypatch):
    monkeypatch.setattr(device, "CHUNK_ELEMENTS", 5 * 4096)
    rows = np.random.default_rng(4).integers(0, F.P, (23, 1100), dtype=np.uint32)
    np.testing.assert_array_equal(device.encode_rows(rows, 4096, "cuda"), _rs.encode_rows(rows, 4096))


@pytest.mark.parametrize("a_shape, b_shape, amax, bmax", [
    ((1, 128, 768), (768, 768), 127, 127),            # gpt2-block linear
    ((1, 128, 3072), (3072, 768), 127, 127),
    ((1, 12, 128, 64), (1, 12, 64, 128), 2**15, 2**15),  # qk
    ((1, 12, 128, 128), (1, 12, 128, 64), 2**16, 2**15),  # pv
    ((2, 3, 5), (5, 4), (1 << 26) - 1, (1 << 24) - 1),    # partial sums close to 2^53
])
def test_cuda_matmul_is_identical(a_shape, b_shape, amax, bmax):
    rng = np.random.default_rng(7)
    a = rng.integers(-amax, amax + 1, a_shape)
    b = rng.integers(-bmax, bmax + 1, b_shape)
    want = reference._exact_matmul(a, b)
    device.set_prover_device("cuda", min_matmul_macs=0)
    got = reference._exact_matmul(a, b)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


def test_tiny_llama_proof_on_cuda_is_byte_identical():
    from blindproof.zk.proof.keys import CommitmentKey
    from blindproof.zk.proof.prover import ModelProver, example_input, quantized_workload
    from blindproof.zk.proof.verifier import verify_model_proof

    key = CommitmentKey(b"\x0b" * 32)
    qm = quantized_workload("tiny-llama")
    inputs = qm.encode(example_input("tiny-llama"))
    device.set_prover_device("cpu")
    prover = ModelProver.create(qm, key)
    want = prover.prove(inputs, rng=np.random.default_rng(11)).to_bytes()
    device.set_prover_device("cuda", min_rs_elements=0, min_matmul_macs=0)
    gpu_prover = ModelProver.create(qm, key)
    assert gpu_prover.commitment.to_bytes() == prover.commitment.to_bytes()
    got = gpu_prover.prove(inputs, rng=np.random.default_rng(11)).to_bytes()
    assert got == want
    assert verify_model_proof(prover.commitment, got).ok
