"""Honest servers on reduced-precision hardware (fingerprint/precision.py): TF32 / fp16 / bf16 are
simulated on CPU; calibrated per device class they pass, and the request noise leaves their answers
as they are without it. The CUDA test runs the real path where a GPU is present."""

from __future__ import annotations

import hashlib

import pytest
import torch

from blindproof.ee import EEKey
from blindproof.fingerprint import blind as B
from blindproof.fingerprint import traffic as T
from blindproof.fingerprint.precision import DEVICE_CLASSES, DeviceServer, round_tf32
from blindproof.models import tokenizer
from blindproof.models.default import corpus_text, load_default_model

pytestmark = pytest.mark.timeout(300)
KEY = EEKey(hashlib.sha256(b"precision-test").digest()[:32])


def test_round_tf32_keeps_ten_mantissa_bits():
    x = torch.randn(10000)
    r = round_tf32(x)
    assert ((r - x).abs() <= x.abs() * 2.0**-11).all() and ((r - x).abs() > 0).any()
    assert (r.view(torch.int32) & 0x1FFF == 0).all()
    assert torch.equal(round_tf32(r), r)
    ties = torch.tensor([1 + 2.0**-11, 1 + 3 * 2.0**-11])  # halfway: to even
    assert torch.equal(round_tf32(ties), torch.tensor([1.0, 1 + 4 * 2.0**-11]))
    special = torch.tensor([float("inf"), float("-inf"), 0.0])
    assert torch.equal(round_tf32(special), special)


@pytest.fixture(scope="module")
def pool():
    model = load_default_model()
    g = torch.Generator().manual_seed(0)
    shapes = T.SessionShapes.synthetic(prompt=(8, 48), new=(2, 6))
    sessions = T.text_sessions(corpus_text("train"), shapes, tokenizer.encode, model.cfg.max_seq, g, count=80)
    return model, T.make_traffic_fingerprint(model, sessions, B.DEFAULT_ALPHA, B.DEFAULT_EXTRA)


def _agreement(fp, codec, server, idx) -> float:
    agree = total = 0
    for i in idx:
        out = T.run_session(codec, T.local_sessions(server), fp.prompts[i], fp.feeds[i])
        agree += int((out.argmax(1) == fp.expected[i].argmax(1)).sum())
        total += out.shape[0]
    return agree / total


def test_honest_reduced_precision_servers_pass_their_class_calibration(pool):
    model, fp = pool
    server, codec = B.expanded_deployment(model, KEY, "rotate", alpha=fp.alpha,
                                          generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    for cls in DEVICE_CLASSES:
        T.calibrate_traffic(fp, codec, T.local_sessions(DeviceServer(server, cls)), cls, ("logits",), 160, gen=g)
    for cls in DEVICE_CLASSES:
        honest = T.local_sessions(DeviceServer(server, cls))
        cal = fp.calibrations[f"{cls}/logits"]
        fails = [fp.outcome(i, T.run_session(codec, honest, fp.prompts[i], fp.feeds[i]), "logits", cal.threshold)[0]
                 for i in range(len(fp.prompts))]
        assert sum(fails) == 0, cls
        if cls != "fp32":  # the CPU float32 calibration would call this honest server a substitute
            strict = fp.calibrations["fp32/logits"].threshold
            wrong = [fp.outcome(i, T.run_session(codec, honest, fp.prompts[i], fp.feeds[i]), "logits", strict)[0]
                     for i in range(20)]
            assert sum(wrong) >= 10, cls


def test_noise_leaves_reduced_precision_answers_unchanged_at_the_default_and_not_at_100(pool):
    model, fp = pool
    idx = range(60)
    rates = {}
    for alpha in (0.0, fp.alpha, 100.0):
        server, codec = B.expanded_deployment(model, KEY, "rotate", alpha=alpha,
                                              generator=torch.Generator().manual_seed(3))
        rates[alpha] = {c: _agreement(fp, codec, DeviceServer(server, c), idx) for c in ("tf32", "bf16")}
    for c in ("tf32", "bf16"):  # 230 positions: a few flips either way are rounding luck (benchmark: more)
        assert rates[fp.alpha][c] >= rates[0.0][c] - 0.03, rates
    assert rates[100.0]["bf16"] <= rates[0.0]["bf16"] - 0.1, rates  # why the default is small


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_reduced_precision_passes_the_simulated_calibration(pool):
    """Real TF32 / fp16 / bf16 kernels against the CPU-simulated calibrations of their class."""
    model, fp = pool
    server, codec = B.expanded_deployment(model, KEY, "rotate", alpha=fp.alpha,
                                          generator=torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(5)
    for cls in ("tf32", "fp16", "bf16"):
        T.calibrate_traffic(fp, codec, T.local_sessions(DeviceServer(server, cls)), cls, ("logits",), 240, gen=g)

    class Cuda:
        def __init__(self, cls):
            self.dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(cls, torch.float32)
            self.model = __import__("copy").deepcopy(server).to("cuda", self.dtype)
            self.cfg, self.cls = server.cfg, cls

        @torch.no_grad()
        def run_blocks(self, x, start=0, cache=None):
            torch.backends.cuda.matmul.allow_tf32 = self.cls == "tf32"
            try:
                return self.model.run_blocks(x.to("cuda", self.dtype), start, cache).float().cpu()
            finally:
                torch.backends.cuda.matmul.allow_tf32 = False

    for cls in ("tf32", "fp16", "bf16"):
        cal = fp.calibrations[f"{cls}/logits"]
        fails = [fp.outcome(i, T.run_session(codec, T.local_sessions(Cuda(cls)), fp.prompts[i], fp.feeds[i]),
                            "logits", cal.threshold)[0] for i in range(len(fp.prompts))]
        assert sum(fails) == 0, cls


def test_batched_fingerprint_calibrated_for_a_device_class(pool):
    """make_blind_fingerprint(device_class=...): a bf16 server passes its own class's calibration and is
    called a substitute by the CPU float32 one."""
    from blindproof.fingerprint.protocol import check

    model, _ = pool
    server, codec = B.expanded_deployment(model, KEY, "rotate", generator=torch.Generator().manual_seed(6))
    query = B.probe_query(codec, B.local_run(DeviceServer(server, "bf16")))
    verdicts = {}
    for cls in ("fp32", "bf16"):
        fp = B.make_blind_fingerprint(model, KEY, "rotate", references=16, probes=300, modes=("logits",),
                                      generator=torch.Generator().manual_seed(7), device_class=cls)
        verdicts[cls] = check(query, fp.library(codec), fp.calibrations["logits"], p1=0.5, sequential=True,
                              generator=torch.Generator().manual_seed(8))
    assert verdicts["bf16"].decision == "match" and verdicts["fp32"].decision == "mismatch", verdicts


def test_tight_threshold_with_held_out_p0_catches_int8_under_fp16(pool):
    """The default margin (8x the largest honest error) lets an int8 copy pass as an fp16 server; a
    threshold at the largest honest error, with p0 counted on held-out sessions, does not."""
    from blindproof.fingerprint.substitutes import int8_weights

    model, fp = pool
    server, codec = B.expanded_deployment(model, KEY, "rotate", alpha=fp.alpha,
                                          generator=torch.Generator().manual_seed(9))
    g = torch.Generator().manual_seed(10)
    honest = T.local_sessions(DeviceServer(server, "fp16"))
    T.calibrate_traffic(fp, codec, honest, "fp16", ("logits",), 160, gen=g)
    T.calibrate_traffic(fp, codec, honest, "fp16", ("logits",), 320, margin=1.0, holdout=0.5, gen=g, variant="@1")
    loose, tight = fp.calibrations["fp16/logits"], fp.calibrations["fp16/logits@1"]
    assert tight.probes == 160 and tight.threshold < loose.threshold / 4
    sub = T.local_sessions(int8_weights(server))
    outs = [T.run_session(codec, sub, fp.prompts[i], fp.feeds[i]) for i in range(40)]
    rate = {name: sum(fp.outcome(i, o, "logits", cal.threshold)[0] for i, o in zip(range(40), outs)) / 40
            for name, cal in (("loose", loose), ("tight", tight))}
    assert rate["loose"] <= 0.1 and rate["tight"] >= 0.9, rate
    assert tight.p0_upper < 0.1
