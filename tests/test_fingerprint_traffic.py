"""Probes that are traffic (fingerprint/traffic.py): what the server can tell apart, routing and
projecting servers, the one-use pool. Everything is seeded, so the measured accuracies are fixed."""

from __future__ import annotations

import hashlib
import os
import stat
from contextlib import contextmanager

import pytest
import torch

from blindproof.ee import EEKey
from blindproof.fingerprint import adversaries as A
from blindproof.fingerprint import blind as B
from blindproof.client import fingerprinted as FPD
from blindproof.fingerprint import distinguish as D
from blindproof.fingerprint import traffic as T
from blindproof.fingerprint.protocol import check
from blindproof.fingerprint.substitutes import int8_weights
from blindproof.models import tokenizer
from blindproof.models.default import corpus_text, load_default_model

pytestmark = pytest.mark.timeout(300)
ALPHA = B.DEFAULT_ALPHA
KEEP = [i for i, f in enumerate(D.FEATURES) if f not in ("n_requests", "output_norm")]  # unknown at the prompt; not run


@pytest.fixture(scope="module")
def world():
    """The default model's deployment, its traffic, a probe pool and labelled probes for the server to
    learn from: three disjoint sentence sets of one corpus."""
    model = load_default_model()
    key = EEKey(hashlib.sha256(b"traffic-test").digest()[:32])
    g = torch.Generator().manual_seed(0)
    text = corpus_text("train") + "\n\n" + corpus_text("heldout")
    traffic_text, rest = T.split_text(text, 0.5, g)
    pool_text, learn_text = T.split_text(rest, 0.5, g)
    shapes = T.SessionShapes.synthetic(prompt=(8, 48), new=(2, 6))
    cut = lambda t: T.text_sessions(t, shapes, tokenizer.encode, model.cfg.max_seq, g)  # noqa: E731
    server, codec = B.expanded_deployment(model, key, "rotate", alpha=ALPHA, generator=torch.Generator().manual_seed(1))
    fp = T.make_traffic_fingerprint(model, cut(pool_text), ALPHA, B.DEFAULT_EXTRA)
    T.calibrate_traffic(fp, codec, T.local_sessions(server), "fp32", sessions=400, gen=g)
    feed = lambda s: model.generate(s.prompt.reshape(1, -1), s.n_new)[0][:-1]  # noqa: E731
    traffic = [(s, feed(s)) for s in cut(traffic_text)]
    learn = [(s, feed(s)) for s in cut(learn_text)]
    out = dict(model=model, server=server, codec=codec, fp=fp, traffic=traffic, learn=learn, g=g)
    out["batched"] = _batched_probe_inputs(out, 256)
    return out


def _mixed(views, g):
    perm = torch.randperm(len(views), generator=g).tolist()
    return [views[i] for i in perm]


def _batched_probe_inputs(world, count):
    """The fixed-batch probes of blind.make_blind_fingerprint: random byte references, noise of norm alpha."""
    bfp = B.make_blind_fingerprint(world["model"], EEKey(hashlib.sha256(b"traffic-test").digest()[:32]), "rotate",
                                   references=64, probes=1000, alpha=ALPHA, modes=("logits",),
                                   generator=torch.Generator().manual_seed(3))
    return bfp, bfp.library(world["codec"]).probes(count, torch.Generator().manual_seed(4))


def test_traffic_probes_are_at_chance_while_batched_random_probes_are_not(world):
    codec, g = world["codec"], torch.Generator().manual_seed(5)
    w = world["server"].expand.weight
    traffic = [D.session_view(codec, s.prompt, f, 0) for s, f in world["traffic"]]
    probes = [D.session_view(codec, s.prompt, f, 1) for s, f in world["learn"]]
    views = _mixed(traffic + probes, g)
    acc = D.evaluate(D.session_features(views, w, world["server"]), D.labels_of(views), g)
    # ~150 sessions per class in the held-out half: one distinguisher at chance has a standard error of
    # ~3 points, so the bound for the largest of 14 is 60 % here (the benchmark, with more sessions, 55 %)
    assert max(acc.values()) <= 0.60, acc

    _, batched = world["batched"]
    views = _mixed(traffic + D.batch_probe_views(codec, batched.inputs, 64), g)
    legacy = D.evaluate(D.session_features(views, w, world["server"]), D.labels_of(views), g, nonlinear=False)
    assert legacy["logistic (all features)"] >= 0.95 and legacy["batch"] >= 0.95, legacy
    assert legacy["repeats_within"] >= 0.9 and legacy["n_requests"] >= 0.95, legacy


def _detector(world, probe_views, g):
    codec, w = world["codec"], world["server"].expand.weight
    traffic = [D.session_view(codec, s.prompt, f, 0) for s, f in world["traffic"][: len(world["traffic"]) // 2]]
    views = _mixed(traffic + probe_views, g)
    feats, y = D.session_features(views, w), D.labels_of(views)
    return D.router(feats[:, KEEP], y)


def _interleaved(router, codec, traffic, per_probe=2):
    """Sessions on the routing server, each probe preceded by ordinary sessions (prompts only)."""
    live = iter(traffic)
    opener = T.local_sessions(router)

    @contextmanager
    def open_session():
        for _ in range(per_probe):
            nxt = next(live, None)
            if nxt is not None:
                router.label = 0
                with opener() as step:
                    step(codec.client_input(nxt[0].prompt.reshape(1, -1), 0))
        router.label = 1
        with opener() as step:
            yield step

    return open_session


def test_routing_server_passes_batched_probes_and_is_caught_by_traffic_probes(world):
    codec, server, g = world["codec"], world["server"], torch.Generator().manual_seed(6)
    copy = int8_weights(server)
    later = world["traffic"][len(world["traffic"]) // 2:]

    # routing around fixed-batch random probes: every probe reaches the genuine model, the copy serves
    # most users, and the check says "match"
    bfp, batched = world["batched"]
    det = _detector(world, D.batch_probe_views(codec, batched.inputs, 64), g)
    router = A.RoutingServer(server, copy, det, 0.5, server.expand.weight)
    for s, _ in later[:60]:
        with T.local_sessions(router)() as step:
            step(codec.client_input(s.prompt.reshape(1, -1), 0))
    router.label = 1
    verdict = check(B.probe_query(codec, lambda x: router.run_blocks(x)), bfp.library(codec),
                    bfp.calibrations["logits"], p1=0.3, generator=g)
    assert verdict.decision == "match" and verdict.failures == 0
    assert router.share_to_copy(1) == 0.0 and router.share_to_copy(0) >= 0.3  # half, after 20 warm-up sessions

    # the same strategy against traffic probes: the best detector it can fit routes probes like traffic
    probes = [D.session_view(codec, s.prompt, f, 1) for s, f in world["learn"]]
    det = _detector(world, probes, g)
    router = A.RoutingServer(server, copy, det, 0.5, server.expand.weight)
    fp = world["fp"]
    verdict = T.check_traffic(fp, codec, _interleaved(router, codec, later), "logits", p1=0.3, sequential=True, gen=g)
    assert verdict.decision == "mismatch", (verdict, router.routed)
    assert router.share_to_copy(0) >= 0.3 and router.share_to_copy(1) >= 0.3  # it cheats about half


def test_projecting_and_first_layer_exact_servers(world):
    """Logits catch both; with labels only they fail no more often than their plain disagreement."""
    codec, server, fp, g = world["codec"], world["server"], world["fp"], torch.Generator().manual_seed(7)
    subs = {"projecting": A.ProjectingServer(server, int8_weights(server)), "first layer exact": A.first_layer_exact(server)}
    for name, sub in subs.items():
        verdict = T.check_traffic(fp, codec, T.local_sessions(sub), "logits", p1=0.5, sequential=True, gen=g)
        assert verdict.decision == "mismatch", (name, verdict)
        assert verdict.max_deviation > 10 * fp.calibrations["fp32/logits"].threshold
    idx = list(range(40))
    flips = [fp.outcome(i, T.run_session(codec, T.local_sessions(subs["projecting"]), fp.prompts[i], fp.feeds[i]),
                        "labels", 0.5)[0] for i in idx]
    assert sum(flips) <= 8  # label-only clients cannot catch it quickly (rate measured in the benchmark)


def test_honest_server_matches(world):
    codec, server, fp = world["codec"], world["server"], world["fp"]
    verdict = T.check_traffic(fp, codec, T.local_sessions(server), "logits", p1=0.5, sequential=True,
                              gen=torch.Generator().manual_seed(8))
    assert verdict.decision == "match" and verdict.failures == 0
    assert "given an honest failure rate <= p0" in verdict.conditions()
    assert verdict.false_positive_unconditional >= 1e-3


def test_pool_is_used_once_and_the_record_persists(world, tmp_path):
    fp = T.TrafficFingerprint.from_json(world["fp"].to_json())
    fp.used.clear()
    first = set(fp.take(10, torch.Generator().manual_seed(9)))
    second = set(fp.take(10, torch.Generator().manual_seed(9)))
    assert not first & second and fp.remaining == len(fp.prompts) - 20
    path = tmp_path / "pool.json"
    fp.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    back = T.TrafficFingerprint.load(path)
    assert back.used == first | second and back.calibrations == fp.calibrations
    with pytest.raises(ValueError, match="unused references"):
        back.take(back.remaining + 1)
    with pytest.raises(ValueError, match="no calibration"):
        T.check_traffic(back, world["codec"], T.local_sessions(world["server"]), device_class="bf16")


def test_sessions_are_text_shaped_and_disjoint():
    g = torch.Generator().manual_seed(10)
    text = corpus_text("heldout")
    shapes = T.SessionShapes.synthetic(prompt=(8, 40), new=(2, 6))
    sess = T.text_sessions(text, shapes, tokenizer.encode, 256, g)
    assert len(sess) > 20 and all(1 <= s.prompt.numel() <= 40 and 2 <= s.n_new <= 6 for s in sess)
    decoded = [tokenizer.decode(s.prompt) for s in sess]
    assert all(d[0].isupper() or not d[0].isalpha() for d in decoded)  # sentence starts
    assert len(set(decoded)) == len(decoded)
    a, b = T.split_text(text, 0.5, g)
    assert not set(T.sentences(a)) & set(T.sentences(b))


def test_probe_schedule_spreads_probes_over_real_sessions(world):
    fp = T.TrafficFingerprint.from_json(world["fp"].to_json())
    fp.used.clear()
    codec, server = world["codec"], world["server"]
    sched = T.ProbeSchedule(fp, codec, T.local_sessions(server), rate=0.25, gen=torch.Generator().manual_seed(11))
    ran = [sched.tick() for _ in range(120)]
    assert 10 <= sum(ran) <= 60 and sched.verdict.probes == sum(ran) == len(fp.used)
    sub = T.ProbeSchedule(fp, codec, T.local_sessions(int8_weights(server)), rate=0.25,
                          gen=torch.Generator().manual_seed(12))
    for _ in range(200):
        sub.tick()
    assert sub.verdict.decision == "mismatch" and sub.verdict.failures == sub.verdict.probes


def test_traffic_check_over_grpc(world):
    """Probe sessions through the real client and server: generation sessions, one per probe."""
    import dataclasses

    from blindproof.client import BlindClient
    from blindproof.models.serialize import to_bytes
    from blindproof.server.process import ServerProcess

    model, fp = world["model"], T.TrafficFingerprint.from_json(world["fp"].to_json())
    fp.used.clear()
    key = EEKey(hashlib.sha256(b"traffic-test").digest()[:32])
    with ServerProcess() as srv, BlindClient(srv.target) as client:
        client.wait_ready()
        dep = FPD.deploy(client, model, key, "rotate", alpha=ALPHA)
        honest = client.check_identity(dep, fp, p1=0.5, sequential=True, gen=torch.Generator().manual_seed(13))
        assert honest.decision == "match" and honest.failures == 0
        blob, digest = to_bytes(int8_weights(world["server"]), ["blocks"])
        sub_id = client.upload(blob, digest, key_id=key.key_id).deployment.deployment_id
        swapped = dataclasses.replace(dep, deployment_id=sub_id)
        sub = client.check_identity(swapped, fp, p1=0.5, sequential=True, gen=torch.Generator().manual_seed(14))
        assert sub.decision == "mismatch"
        assert len(fp.used) == honest.probes + sub.probes

        # probes mixed into the client's own generation sessions on the swapped deployment
        sched = client.schedule_probes(swapped, fp, rate=0.5, gen=torch.Generator().manual_seed(15))
        for s, _ in world["traffic"][:40]:
            client.generate(swapped, s.prompt.reshape(1, -1), s.n_new)
            if sched.verdict.decision != "undecided":
                break
        assert sched.verdict.decision == "mismatch" and sched.verdict.failures == sched.verdict.probes


@pytest.fixture(scope="module")
def small_pool():
    """Twelve tiny-llama probe sessions with their honest fp32 calibration (50 local sessions)."""
    from blindproof.models.workloads import get_workload
    model = get_workload("tiny-llama").build(0)
    g = torch.Generator().manual_seed(16)
    shapes = T.SessionShapes.synthetic(prompt=(8, 24), new=(2, 4), seed=16)
    sess = T.text_sessions(corpus_text("heldout"), shapes, tokenizer.encode, model.cfg.max_seq, g, count=12)
    fp = T.make_traffic_fingerprint(model, sess, ALPHA, B.DEFAULT_EXTRA, source="tiny-llama", seed=0)
    server, codec = B.expanded_deployment(model, EEKey(hashlib.sha256(b"small-pool").digest()[:32]), "rotate",
                                          alpha=ALPHA, generator=torch.Generator().manual_seed(17))
    T.calibrate_traffic(fp, codec, T.local_sessions(server), "fp32", sessions=50, gen=g)
    return fp, server, codec


def test_pool_file_stores_outputs_as_float32_and_reads_format_1(small_pool):
    import json
    fp = small_pool[0]
    text = fp.to_json()
    back = T.TrafficFingerprint.from_json(text)
    assert back.model == "tiny-llama" and back.seed == 0 and back.calibrations == fp.calibrations
    assert all(torch.equal(a.to(torch.float32), b.to(torch.float32)) for a, b in zip(fp.expected, back.expected))
    old = json.loads(text)
    old.update(format="blindproof-traffic-fingerprint/1", expected=[e.to(torch.float32).tolist() for e in fp.expected])
    del old["classes"], old["seed"]
    legacy_text = json.dumps(old)
    assert len(text) * 3 < len(legacy_text)  # base64 float32 instead of decimal numbers
    old_back = T.TrafficFingerprint.from_json(legacy_text)
    assert all(torch.equal(a, b) for a, b in zip(back.expected, old_back.expected)) and old_back.seed == 0
    broken = json.loads(text)
    broken["expected"][0] = broken["expected"][0][:-8] + "!!!!!!!!"
    with pytest.raises(ValueError, match="malformed traffic fingerprint"):
        T.TrafficFingerprint.from_json(json.dumps(broken))
    broken = json.loads(text)
    broken["classes"] = 7
    with pytest.raises(ValueError, match="do not fill rows"):
        T.TrafficFingerprint.from_json(json.dumps(broken))


def test_sequential_check_ends_undecided_when_the_pool_runs_out(small_pool):
    fp, server, codec = small_pool
    fp = T.TrafficFingerprint.from_json(fp.to_json())
    # an honest server passes every probe, but Wald's test needs more passes than 12 to accept
    assert T.probe_budget(fp, sequential=True) == 2 * T.probe_budget(fp) > len(fp.prompts)
    verdict = T.check_traffic(fp, codec, T.local_sessions(server), sequential=True,
                              gen=torch.Generator().manual_seed(18))
    assert verdict.decision == "undecided" and verdict.probes == 12 and verdict.failures == 0 and fp.remaining == 0
    with pytest.raises(ValueError, match="unused references"):
        T.check_traffic(fp, codec, T.local_sessions(server))  # the fixed-size test refuses before sending


def test_sessions_never_repeat_a_prompt_when_sentences_share_a_start():
    """Short prompts cut from sentences that begin alike ("It was the …") once repeated a prompt."""
    g = torch.Generator().manual_seed(0)
    text = " ".join(f"It was the {w} day of the year." for w in ("first", "second", "third", "last", "best"))
    shapes = T.SessionShapes((T.SessionShape(6, 2),))
    sess = T.text_sessions(text, shapes, tokenizer.encode, 256, g)
    prompts = [tuple(s.prompt.tolist()) for s in sess]
    assert len(prompts) == 1 and len(set(prompts)) == len(prompts)
