"""The prover's torch backend (zk/device.py): choice and thresholds, and bit-identity with the CPU path.

The torch kernels run here on the CPU (``torch-cpu``); tests/test_zk_device_gpu.py repeats the
identity checks on ``cuda`` where a GPU is present."""

from __future__ import annotations

import numpy as np
import pytest

from blindproof.zk import device
from blindproof.zk.commit import reed_solomon as _rs
from blindproof.zk.field import ntt
from blindproof.zk.field import babybear as F
from blindproof.quant import reference

pytest.importorskip("torch")

ENCODE_SHAPES = [(1, 1, 1), (1, 1, 2), (2, 2, 2), (1, 2, 4), (3, 1, 8), (2, 5, 8), (5, 8, 8), (7, 3, 16),
                 (3, 17, 64), (1, 64, 64), (9, 37, 128), (4, 100, 256), (11, 260, 1024), (3, 4096 + 10, 16384),
                 (2, 32923, 131072), (1, 65691, 262144)]  # gpt2-block's trace and model commitment rows


@pytest.fixture(autouse=True)
def _restore_backend():
    old = device.set_prover_device()
    yield
    device.set_prover_device(old.choice, min_rs_elements=old.min_rs_elements, min_matmul_macs=old.min_matmul_macs)


def _random_rows(rng, b, k):
    rows = rng.integers(0, F.P, (b, k), dtype=np.uint32)
    rows[0, 0] = F.P - 1  # the largest residue, where a missed reduction would show
    return rows


# --- choice and thresholds ------------------------------------------------------------------------

@pytest.mark.parametrize("raw, want", [("auto", "auto"), ("CPU", "cpu"), (" cuda ", "cuda"), ("cuda:1", "cuda:1"),
                                       ("torch-cpu", "torch-cpu")])
def test_parse_choice(raw, want):
    assert device.parse_choice(raw) == want


@pytest.mark.parametrize("bad", ["gpu", "", "cuda:", "cuda:x", "mps"])
def test_parse_choice_rejects_unknown(bad):
    with pytest.raises(ValueError, match="prover device must be one of"):
        device.parse_choice(bad)
    with pytest.raises(ValueError):
        device.set_prover_device(bad)


def test_env_variable_is_read_and_checked(monkeypatch):
    monkeypatch.setenv(device.ENV, "torch-cpu")
    device.set_prover_device()
    assert device.current().choice == "torch-cpu"
    monkeypatch.setenv(device.ENV, "tpu")
    with pytest.raises(ValueError, match=device.ENV):
        device.set_prover_device()
    device.set_prover_device("cpu")  # an explicit choice does not read the variable
    assert device.current().choice == "cpu"


def test_thresholds_must_be_non_negative_ints():
    for bad in (-1, 1.5, True, "8"):
        with pytest.raises(ValueError, match="non-negative int"):
            device.set_prover_device("cpu", min_rs_elements=bad)


def test_context_manager_restores_the_previous_backend():
    device.set_prover_device("cpu")
    with device.prover_device("torch-cpu", min_matmul_macs=0) as b:
        assert b.choice == "torch-cpu" and device.current().min_matmul_macs == 0
    assert device.current().choice == "cpu"


def test_cuda_without_a_gpu_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(device.DeviceError, match="no CUDA device"):
        device.set_prover_device("cuda", check=True)
    with pytest.raises(device.DeviceError):
        device.torch_device_for("cuda:0")
    # auto falls back to the CPU path
    assert device.torch_device_for("auto") is None
    device.set_prover_device("auto", min_rs_elements=0)
    assert device.device_for_encode(4, 8) is None


def test_small_inputs_stay_on_the_cpu_path(monkeypatch):
    calls = []
    monkeypatch.setattr(device, "encode_rows", lambda *a: calls.append("enc") or 1 / 0)
    monkeypatch.setattr(device, "matmul_f64", lambda *a: calls.append("mm") or 1 / 0)
    device.set_prover_device("torch-cpu")  # default thresholds
    rows = _random_rows(np.random.default_rng(1), 4, 32)
    _rs.encode_rows(rows, 128)
    a = np.ones((8, 16), dtype=np.int64)
    reference._exact_matmul(a, a.T)
    assert calls == []
    device.set_prover_device("cpu", min_rs_elements=0, min_matmul_macs=0)  # cpu never uses torch
    _rs.encode_rows(rows, 128)
    reference._exact_matmul(a, a.T)
    assert calls == []
    assert device.device_for_encode(1 << 10, 1 << 10) is None
    device.set_prover_device("torch-cpu", min_rs_elements=4 * 128, min_matmul_macs=8 * 16 * 8)
    assert device.device_for_encode(4, 128) == "cpu" and device.device_for_encode(3, 128) is None
    assert device.device_for_matmul(8 * 16 * 8) == "cpu" and device.device_for_matmul(8 * 16 * 8 - 1) is None


def test_matmul_macs_broadcasts_the_batch():
    assert device.matmul_macs((4, 128, 768), (768, 3072)) == 4 * 128 * 768 * 3072
    assert device.matmul_macs((1, 12, 128, 64), (3, 1, 64, 128)) == 3 * 12 * 128 * 64 * 128


# --- bit-identity of the kernels ------------------------------------------------------------------

@pytest.mark.parametrize("b, k, n", ENCODE_SHAPES)
def test_torch_encode_rows_is_bit_identical(b, k, n):
    rows = _random_rows(np.random.default_rng(b * 1000 + k + n), b, k)
    want = _rs.encode_rows(rows, n)
    device.set_prover_device("torch-cpu", min_rs_elements=0)
    got = _rs.encode_rows(rows, n)
    assert got.dtype == np.uint32 and got.shape == (b, n)
    np.testing.assert_array_equal(got, want)


def test_torch_encode_rows_in_chunks_and_from_views(monkeypatch):
    monkeypatch.setattr(device, "CHUNK_ELEMENTS", 3 * 64)  # 3 rows per chunk, 7 rows: a short last chunk
    rng = np.random.default_rng(5)
    big = _random_rows(rng, 7, 40)
    view = big[:, 3:33]  # strided, and read-only below
    view.flags.writeable = False
    want = _rs.encode_rows(np.ascontiguousarray(view), 64)
    got = device.encode_rows(view, 64, "cpu")
    np.testing.assert_array_equal(got, want)
    assert device.encode_rows(np.zeros((0, 4), dtype=np.uint32), 8, "cpu").shape == (0, 8)


def test_torch_encode_rows_rejects_like_the_cpu_path():
    device.set_prover_device("torch-cpu", min_rs_elements=0)
    with pytest.raises(ValueError, match="power of two"):
        _rs.encode_rows(np.zeros((2, 4), dtype=np.uint32), 6)
    with pytest.raises(F.FieldError):
        _rs.encode_rows(np.full((2, 4), F.P, dtype=np.uint32), 8)


def test_a_wrong_twiddle_is_caught(monkeypatch):
    """The identity tests can fail: one corrupted twiddle changes the torch encoding."""
    device._stage_twiddles.cache_clear()
    bad = np.array(ntt.plain_twiddles(6))
    bad[5] = (int(bad[5]) + 1) % F.P
    monkeypatch.setattr(ntt, "plain_twiddles", lambda log_n: bad)
    rows = _random_rows(np.random.default_rng(2), 3, 20)
    try:
        assert not np.array_equal(device.encode_rows(rows, 64, "cpu"), _rs.encode_rows(rows, 64))
    finally:
        device._stage_twiddles.cache_clear()


def _matmul_cases(rng):
    yield rng.integers(-127, 128, (1, 1)), rng.integers(-127, 128, (1, 1))
    yield rng.integers(-127, 128, (3, 5)), rng.integers(-127, 128, (5, 2))
    yield rng.integers(-127, 128, (2, 7, 33)), rng.integers(-127, 128, (9, 33)).T  # linear: x @ W.T
    yield rng.integers(-2**15, 2**15, (1, 3, 9, 16)), np.swapaxes(rng.integers(-2**15, 2**15, (1, 3, 9, 16)), -1, -2)
    yield rng.integers(0, 2**16, (2, 4, 5, 5)), rng.integers(-2**15, 2**15, (2, 1, 5, 8))  # broadcast batch
    # partial sums right under 2^53: |a|, |b| = 2^26 - 1 over k = 2 (float64 still exact)
    m = (1 << 26) - 1
    yield np.array([[m, m], [-m, m]]), np.array([[m, -m], [m, m]])


def test_torch_matmul_is_identical_to_the_cpu_path():
    cases = list(_matmul_cases(np.random.default_rng(3)))
    want = [reference._exact_matmul(a, b) for a, b in cases]
    device.set_prover_device("torch-cpu", min_matmul_macs=0)
    for (a, b), w in zip(cases, want):
        got = reference._exact_matmul(a, b)
        assert got.dtype == np.int64 and got.shape == w.shape
        np.testing.assert_array_equal(got, w)
        np.testing.assert_array_equal(got, np.matmul(a.astype(object), b.astype(object)).astype(np.int64))


def test_device_out_of_memory_falls_back_to_the_cpu_path(monkeypatch, caplog):
    import torch

    def full(*args):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def broken(*args):
        raise RuntimeError("a kernel bug must not be hidden")

    rows = _random_rows(np.random.default_rng(6), 3, 20)
    a = np.arange(12).reshape(3, 4)
    want_enc, want_mm = _rs.encode_rows(rows, 64), reference._exact_matmul(a, a.T)
    device.set_prover_device("torch-cpu", min_rs_elements=0, min_matmul_macs=0)
    monkeypatch.setattr(device, "encode_rows", full)
    monkeypatch.setattr(device, "matmul_f64", full)
    with caplog.at_level("WARNING", logger="blindproof.zk.device"):
        np.testing.assert_array_equal(_rs.encode_rows(rows, 64), want_enc)
        np.testing.assert_array_equal(reference._exact_matmul(a, a.T), want_mm)
    assert sum("out of memory" in r.getMessage() for r in caplog.records) == 2
    monkeypatch.setattr(device, "encode_rows", broken)
    with pytest.raises(RuntimeError, match="kernel bug"):
        _rs.encode_rows(rows, 64)


def test_matmul_beyond_the_float64_bound_stays_exact_on_the_cpu(monkeypatch):
    monkeypatch.setattr(device, "matmul_f64", lambda *a: 1 / 0)  # must not be asked
    device.set_prover_device("torch-cpu", min_matmul_macs=0)
    a = np.array([[(1 << 29) + 1] * 4], dtype=np.int64)
    b = np.array([[(1 << 29) + 3]] * 4, dtype=np.int64)
    assert int(reference._exact_matmul(a, b)[0, 0]) == 4 * ((1 << 29) + 1) * ((1 << 29) + 3)


# --- a whole proof --------------------------------------------------------------------------------

def test_tiny_llama_proof_with_the_torch_backend_is_byte_identical(monkeypatch):
    from blindproof.zk.proof.keys import CommitmentKey
    from blindproof.zk.proof.prover import ModelProver, example_input, quantized_workload
    from blindproof.zk.proof.verifier import verify_model_proof

    key = CommitmentKey(b"\x0b" * 32)
    qm = quantized_workload("tiny-llama")
    inputs = qm.encode(example_input("tiny-llama"))
    device.set_prover_device("cpu")
    prover = ModelProver.create(qm, key)
    want = prover.prove(inputs, rng=np.random.default_rng(11)).to_bytes()

    used = {"enc": 0, "mm": 0}
    enc, mm = device.encode_rows, device.matmul_f64
    monkeypatch.setattr(device, "encode_rows", lambda *a: used.__setitem__("enc", used["enc"] + 1) or enc(*a))
    monkeypatch.setattr(device, "matmul_f64", lambda *a: used.__setitem__("mm", used["mm"] + 1) or mm(*a))
    device.set_prover_device("torch-cpu", min_rs_elements=0, min_matmul_macs=0)
    torch_prover = ModelProver.create(qm, key)
    assert torch_prover.commitment.to_bytes() == prover.commitment.to_bytes()
    got = torch_prover.prove(inputs, rng=np.random.default_rng(11)).to_bytes()
    assert used["enc"] >= 2 and used["mm"] >= 1, used  # the torch kernels did the work
    assert got == want
    res = verify_model_proof(prover.commitment, got)
    assert res.ok, res.reason
