"""Traffic probes section of bench_fingerprint_blind.py, run from there (kept apart so each file has one job).

Default model (trained tiny-llama, byte vocabulary), rotate tier, expansion width 16. Text: the
model's training and held-out corpora, split by sentence into disjoint parts (traffic, the verifier's
probe pool, labelled probes for the server to learn from). Session shapes: prompts of 8-48 bytes
(log-uniform), 2-6 decoded tokens, batch 1, start 0.
"""

from __future__ import annotations

import hashlib
import json
import time
from contextlib import contextmanager

import torch

from blindproof.ee import EEKey
from blindproof.fingerprint import adversaries as A
from blindproof.fingerprint import blind as B
from blindproof.fingerprint import distinguish as D
from blindproof.fingerprint import traffic as T
from blindproof.fingerprint.precision import DEVICE_CLASSES, DeviceServer
from blindproof.fingerprint.stats import design_test, lower_bound
from blindproof.fingerprint.substitutes import int8_weights
from blindproof.models import tokenizer
from blindproof.models.default import corpus_text, load_default_model

TARGET = 2.0 ** -40
KEEP = [i for i, f in enumerate(D.FEATURES) if f not in ("n_requests", "output_norm")]  # unknown at the prompt; not run


def _key(seed: int) -> EEKey:
    return EEKey(hashlib.sha256(f"bench-traffic-{seed}".encode()).digest()[:32])


def _world(seed: int, alpha: float):
    model = load_default_model()
    g = torch.Generator().manual_seed(seed)
    text = corpus_text("train") + "\n\n" + corpus_text("heldout")
    traffic_text, rest = T.split_text(text, 0.5, g)
    pool_text, learn_text = T.split_text(rest, 0.5, g)
    shapes = T.SessionShapes.synthetic(prompt=(8, 48), new=(2, 6), seed=seed)
    cut = lambda t: T.text_sessions(t, shapes, tokenizer.encode, model.cfg.max_seq, g)  # noqa: E731
    server, codec = B.expanded_deployment(model, _key(seed), "rotate", alpha=alpha,
                                          generator=torch.Generator().manual_seed(seed + 1))
    feed = lambda s: model.generate(s.prompt.reshape(1, -1), s.n_new)[0][:-1]  # noqa: E731
    return dict(model=model, server=server, codec=codec, g=g, pool=cut(pool_text),
                traffic=[(s, feed(s)) for s in cut(traffic_text)], learn=[(s, feed(s)) for s in cut(learn_text)])


def _mixed(views, g):
    return [views[i] for i in torch.randperm(len(views), generator=g).tolist()]


def _batched(w, count: int = 512):
    bfp = B.make_blind_fingerprint(w["model"], _key(-1), "rotate", references=64, probes=1000, alpha=w["codec"].alpha,
                                   modes=("logits",), generator=torch.Generator().manual_seed(3))
    return bfp, bfp.library(w["codec"]).probes(count, torch.Generator().manual_seed(4))


def distinguishers(splits: int, alpha: float) -> dict:
    """Held-out accuracy of each distinguisher, traffic probes vs traffic and fixed-batch random probes
    vs traffic, over ``splits`` independent text splits / keys / noise seeds."""
    acc = {"traffic probes": [], "fixed-batch random probes": []}
    sizes = []
    for seed in range(splits):
        w = _world(seed, alpha)
        codec, exp_w, g = w["codec"], w["server"].expand.weight, w["g"]
        traffic = [D.session_view(codec, s.prompt, f, 0) for s, f in w["traffic"]]
        probes = [D.session_view(codec, s.prompt, f, 1) for s, f in w["learn"]]
        probes += [D.session_view(codec, s.prompt, f, 1) for s, f in
                   [(s, w["model"].generate(s.prompt.reshape(1, -1), s.n_new)[0][:-1]) for s in w["pool"]]]
        views = _mixed(traffic + probes, g)
        acc["traffic probes"].append(D.evaluate(D.session_features(views, exp_w, w["server"]), D.labels_of(views), g))
        _, batched = _batched(w, len(probes))
        views = _mixed(traffic + D.batch_probe_views(codec, batched.inputs, 64), g)
        acc["fixed-batch random probes"].append(D.evaluate(D.session_features(views, exp_w, w["server"]), D.labels_of(views), g))
        sizes.append({"traffic": len(traffic), "probes": len(probes)})
        print(json.dumps({"split": seed, "traffic_probes": acc["traffic probes"][-1],
                          "batched": acc["fixed-batch random probes"][-1]}), flush=True)
    out = {}
    for kind, runs in acc.items():
        out[kind] = {}
        for name in runs[0]:
            vals = torch.tensor([r[name] for r in runs], dtype=torch.float64)
            half = 2.262 * float(vals.std()) / len(runs) ** 0.5 if len(runs) > 1 else float("nan")  # t(0.975, 9)
            out[kind][name] = {"mean": float(vals.mean()), "max": float(vals.max()), "ci95": half}
    return {"splits": splits, "alpha": alpha, "sessions_per_split": sizes, "accuracy": out}


def precision(alphas, sessions: int) -> list[dict]:
    """Top-1 agreement of honest servers of each device class with the reference, per noise norm."""
    w = _world(100, 0.0)
    fp = T.make_traffic_fingerprint(w["model"], w["pool"][:sessions], 0.0, B.DEFAULT_EXTRA)
    rows = []
    for alpha in alphas:
        server, codec = B.expanded_deployment(w["model"], _key(100), "rotate", alpha=alpha,
                                              generator=torch.Generator().manual_seed(7))
        row = {"alpha": alpha, "positions": sum(e.shape[0] for e in fp.expected)}
        for cls in DEVICE_CLASSES:
            op = T.local_sessions(DeviceServer(server, cls))
            agree = dev = 0.0
            for i in range(len(fp.prompts)):
                out = T.run_session(codec, op, fp.prompts[i], fp.feeds[i])
                agree += int((out.argmax(1) == fp.expected[i].argmax(1)).sum())
                dev = max(dev, float((out - fp.expected[i]).abs().max()))
            row[cls] = {"top1_agreement": agree / row["positions"], "max_logit_error": dev}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def _needed(p0: float, fails: int, n: int) -> int | None:
    p1 = lower_bound(fails, n, 0.95)
    if p1 <= p0:
        return None
    try:
        return design_test(p0, p1, TARGET, TARGET).n
    except ValueError:
        return None


def servers(alpha: float, calib: int, probes: int) -> dict:
    """Per device class: calibration, honest failures (own class and CPU-fp32 calibration), and the
    per-probe failure rates of dishonest servers under that class's calibration."""
    w = _world(200, alpha)
    model, server, codec, g = w["model"], w["server"], w["codec"], w["g"]
    fp = T.make_traffic_fingerprint(model, w["pool"], alpha, B.DEFAULT_EXTRA)
    for cls in DEVICE_CLASSES:
        opener = T.local_sessions(DeviceServer(server, cls))
        T.calibrate_traffic(fp, codec, opener, cls, sessions=calib, gen=g)
        # tight: threshold at the largest honest error of `calib` sessions, p0 counted on `calib` others
        T.calibrate_traffic(fp, codec, opener, cls, ("logits",), sessions=2 * calib, margin=1.0, holdout=0.5,
                            gen=g, variant=" (margin 1, held-out p0)")
    idx = [int(i) for _ in range(-(-probes // len(fp.prompts)))
           for i in torch.randperm(len(fp.prompts), generator=g)][:probes]

    def outputs(opener):
        return [T.run_session(codec, opener, fp.prompts[i], fp.feeds[i]) for i in idx]

    # a routing server with the best detector it can fit from labelled probes, copy = int8
    traffic = [D.session_view(codec, s.prompt, f, 0) for s, f in w["traffic"][: len(w["traffic"]) // 2]]
    learn = [D.session_view(codec, s.prompt, f, 1) for s, f in w["learn"]]
    views = _mixed(traffic + learn, g)
    feats, y = D.session_features(views, server.expand.weight), D.labels_of(views)
    det = D.router(feats[:, KEEP], y)
    copy = int8_weights(server)
    router = A.RoutingServer(server, copy, det, 0.5, server.expand.weight)
    live = iter(w["traffic"][len(w["traffic"]) // 2:] * 10)

    @contextmanager
    def routed():
        s = next(live)[0]
        router.label = 0
        with T.local_sessions(router)() as step:
            step(codec.client_input(s.prompt.reshape(1, -1), 0))
        router.label = 1
        with T.local_sessions(router)() as step:
            yield step

    subs = {"int8 (all weights)": T.local_sessions(int8_weights(server)),
            "first layer exact, int8 blocks": T.local_sessions(A.first_layer_exact(server)),
            "projecting (noise stripped), int8 blocks": T.local_sessions(A.ProjectingServer(server, copy)),
            "routing (learned detector), int8 copy": routed}
    got = {name: outputs(op) for name, op in subs.items()}
    # what the routing server's users get: the copy's first next token vs the genuine one, on traffic
    users = [(s, f) for s, f in w["traffic"][:200]]
    diff = 0
    for s, f in users:
        a = T.run_session(codec, T.local_sessions(copy), s.prompt, f[:0])
        b = T.run_session(codec, T.local_sessions(server), s.prompt, f[:0])
        diff += int(a[0].argmax() != b[0].argmax())
    honest = {cls: outputs(T.local_sessions(DeviceServer(server, cls))) for cls in DEVICE_CLASSES}
    table = []
    for cls in DEVICE_CLASSES:
        for mode, variant in (("logits", ""), ("logits", " (margin 1, held-out p0)"), ("labels", "")):
            cal = fp.calibrations[f"{cls}/{mode}{variant}"]
            row = {"class": cls, "mode": mode + variant, "threshold": cal.threshold, "p0": cal.p0_upper,
                   "calibration_sessions": cal.probes}
            for name, outs in {"honest (own class)": honest[cls], **got}.items():
                f = sum(fp.outcome(i, o, mode, cal.threshold)[0] for i, o in zip(idx, outs))
                row[name] = {"failures": f, "probes": len(idx), "needed": _needed(cal.p0_upper, f, len(idx))}
            if cls != "fp32":
                strict = fp.calibrations[f"fp32/{mode}{variant}"].threshold
                row["honest vs fp32 calibration"] = {
                    "failures": sum(fp.outcome(i, o, mode, strict)[0] for i, o in zip(idx, honest[cls])),
                    "probes": len(idx)}
            table.append(row)
            print(json.dumps(row), flush=True)
    return {"alpha": alpha, "pool": len(fp.prompts), "rows": table,
            "routing_share_traffic_to_copy": router.share_to_copy(0), "routing_share_probes_to_copy": router.share_to_copy(1),
            "routing_users_with_other_next_token": diff / len(users), "users_measured": len(users)}


def run(args) -> dict:
    t0 = time.perf_counter()
    out = {"distinguishers": distinguishers(args.splits, B.DEFAULT_ALPHA),
           "precision": precision(args.precision_alphas, args.precision_sessions),
           "servers": servers(B.DEFAULT_ALPHA, args.calibration, args.probes)}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out
