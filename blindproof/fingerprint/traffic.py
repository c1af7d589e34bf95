"""Probes that are traffic: identity checks made of ordinary text sessions, each used once.

The server of an expanded deployment (``blind.py``) holds the expansion ``E'``, so it strips the
per-request noise itself and sees every request's first-layer states ``h Q``: one fixed vector per
token, i.e. the token sequence under a substitution it can learn. Probes of uniformly random bytes,
sent 64 at a time with no decoding, are then easy to tell from text sessions (measured in
``distinguish.py``), and a server that can tell them apart answers probes with the genuine model and
everything else with a cheaper one.

Here a probe is a *session* like the client's own: a text prompt drawn from text of the same kind as
the client's requests (the client's own held-back requests, or a corpus matched to them), a prompt
length and a number of decoding steps drawn from the client's observed session shapes, batch 1,
start 0, then greedy decoding step by step in one server-side session, exactly as
``BlindClient.generate`` does. The verifier knows the genuine model's output at the last prompt
position and at every decoding step (it feeds the genuine model's own greedy continuation), and a
probe fails when any checked position deviates. Every reference is sent at most once: the pool
records which were used and refuses to reuse them.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
import secrets
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Iterator, Protocol, Sequence

import torch

from blindproof.fingerprint.protocol import Calibration, Verdict
from blindproof.fingerprint.stats import SequentialTest, design_test, upper_bound
from blindproof.models.transformer import KVCache, Transformer

FORMAT = "blindproof-traffic-fingerprint/2"  # /2: expected outputs as base64 float32 (/1, JSON numbers, still reads)
FORMATS = ("blindproof-traffic-fingerprint/1", FORMAT)
F64 = torch.float64
MODES = ("logits", "labels")


class Step(Protocol):
    """One server-side session: send the next positions' encoded inputs, get the last position's output."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


SessionOpener = Callable[[], ContextManager[Step]]


# --- session shapes and text ------------------------------------------------------------------------

@dataclass(frozen=True)
class SessionShape:
    """What a session looks like on the wire: a prompt of ``prompt_len`` tokens, then ``n_new`` tokens
    decoded one at a time (``n_new - 1`` single-token requests after the prompt), batch 1, start 0."""

    prompt_len: int
    n_new: int


@dataclass(frozen=True)
class SessionShapes:
    """The empirical distribution of the client's session shapes (record them from real traffic)."""

    shapes: tuple[SessionShape, ...]

    def __post_init__(self) -> None:
        if not self.shapes or any(s.prompt_len < 1 or s.n_new < 1 for s in self.shapes):
            raise ValueError("need at least one session shape with prompt_len >= 1 and n_new >= 1")

    def sample(self, gen: torch.Generator) -> SessionShape:
        return self.shapes[int(torch.randint(0, len(self.shapes), (1,), generator=gen))]

    @staticmethod
    def synthetic(count: int = 512, prompt: tuple[int, int] = (12, 96), new: tuple[int, int] = (4, 48),
                  seed: int = 0) -> "SessionShapes":
        """Log-uniform prompt lengths and uniform decoding lengths: a stand-in where no traffic log exists."""
        g = torch.Generator().manual_seed(seed)
        lo, hi = math.log(prompt[0]), math.log(prompt[1])
        lens = torch.exp(lo + (hi - lo) * torch.rand(count, generator=g)).round().long()
        news = torch.randint(new[0], new[1] + 1, (count,), generator=g)
        return SessionShapes(tuple(SessionShape(int(a), int(b)) for a, b in zip(lens, news)))


def sentences(text: str) -> list[str]:
    """Split text at sentence ends (``. ! ?`` followed by whitespace) and blank lines."""
    parts = re.split(r"(?<=[.!?])\s+|\n\s*\n", text)
    return [p.strip() for p in parts if p and p.strip()]


def split_text(text: str, fraction: float, gen: torch.Generator) -> tuple[str, str]:
    """Assign each sentence at random to one of two texts (``fraction`` to the second): two samples of
    one distribution, e.g. simulated traffic and a probe pool that shares no sentence with it."""
    sents = sentences(text)
    pick = torch.rand(len(sents), generator=gen) < fraction
    first = " ".join(s for s, p in zip(sents, pick) if not p)
    second = " ".join(s for s, p in zip(sents, pick) if p)
    return first, second


@dataclass(frozen=True)
class Session:
    """A prompt (token ids, 1-D) and the number of tokens to decode after it."""

    prompt: torch.Tensor
    n_new: int


def text_sessions(text: str, shapes: SessionShapes, encode: Callable[[str], torch.Tensor], max_seq: int,
                  gen: torch.Generator, count: int | None = None) -> list[Session]:
    """Cut ``text`` into non-overlapping sessions, each starting at a sentence start, with prompt length
    and decoding length drawn from ``shapes`` (clipped to ``max_seq``). No two sessions share a token of
    text, and a prompt equal to an earlier one (a sentence the text repeats) is skipped: no prompt repeats
    another."""
    sents = sentences(text)
    order = torch.randperm(len(sents), generator=gen).tolist()
    ids = [encode(s).flatten() for s in sents]
    used = [False] * len(sents)
    out: list[Session] = []
    seen: set[tuple[int, ...]] = set()
    for i in order:
        if used[i]:
            continue
        shape = shapes.sample(gen)
        n_new = min(shape.n_new, max_seq // 2)
        want = min(shape.prompt_len, max_seq - n_new)
        # a prompt of this length: the sentence, continued by the next unused ones if it is short
        toks, j = [], i
        while sum(t.numel() for t in toks) < want and j < len(sents) and not used[j]:
            toks.append(ids[j] if not toks else torch.cat([encode(" ").flatten(), ids[j]]))
            used[j] = True
            j += 1
        prompt = torch.cat(toks)[:want] if toks else torch.zeros(0, dtype=torch.long)
        key = tuple(prompt.tolist())
        if prompt.numel() >= 1 and key not in seen:
            seen.add(key)
            out.append(Session(prompt.to(torch.int64), int(n_new)))
        if count is not None and len(out) >= count:
            break
    return out


# --- running a session ----------------------------------------------------------------------------

def local_sessions(server) -> SessionOpener:
    """Sessions on an in-process server model (anything with ``run_blocks(x, start, cache)``)."""
    @contextmanager
    def opener() -> Iterator[Step]:
        cache = KVCache(server.cfg.n_layers)
        pos = [0]

        @torch.no_grad()
        def step(x: torch.Tensor) -> torch.Tensor:
            out = server.run_blocks(x, pos[0], cache)
            pos[0] += x.shape[1]
            return out[:, -1:]

        yield step

    return opener


def grpc_sessions(client, deployment) -> SessionOpener:
    """Sessions over gRPC: one server-side KV-cache stream per probe, as ``BlindClient.generate`` uses."""
    @contextmanager
    def opener() -> Iterator[Step]:
        with client.session(deployment) as sess:
            yield sess.step

    return opener


@torch.no_grad()
def run_session(codec, opener: SessionOpener, prompt: torch.Tensor, feed: torch.Tensor) -> torch.Tensor:
    """Send ``prompt`` then each token of ``feed`` in one session; returns the decoded outputs at the
    last prompt position and after every fed token: (1 + len(feed), classes), float64."""
    rows = []
    with opener() as step:
        x, start = prompt.reshape(1, -1), 0
        for i in range(feed.numel() + 1):
            out = codec.client_output(step(codec.client_input(x, start)))
            rows.append(out[0, -1].to(F64))
            start += x.shape[1]
            if i < feed.numel():
                x = feed[i].reshape(1, 1)
    return torch.stack(rows)


# --- the verifier's pool ----------------------------------------------------------------------------

@dataclass(eq=False)
class TrafficFingerprint:
    """Reference sessions, the genuine model's outputs on them, calibrations per device class and mode.

    ``feeds[i]`` is the genuine model's greedy continuation (minus its last token) that the probe
    feeds, ``expected[i]`` the genuine outputs at the checked positions, ``margins[i]`` their top-two
    gaps (labels mode counts only positions whose gap is at least ``min_margin``; the selection is the
    verifier's, invisible to the server, so no probe is filtered out of the traffic distribution).
    """

    prompts: list[torch.Tensor]
    feeds: list[torch.Tensor]
    expected: list[torch.Tensor]
    alpha: float
    extra: int
    calibrations: dict[str, Calibration] = field(default_factory=dict)  # key "<device class>/<mode>"
    used: set[int] = field(default_factory=set)
    min_margin: float = 0.1
    model: str = ""
    seed: int = 0  # seed of a workload's weights (``model`` names a workload)

    def __post_init__(self) -> None:
        if not self.prompts or not (len(self.prompts) == len(self.feeds) == len(self.expected)):
            raise ValueError("prompts, feeds and expected outputs must be non-empty lists of equal length")

    @property
    def remaining(self) -> int:
        return len(self.prompts) - len(self.used)

    def take(self, count: int, gen: torch.Generator | None = None) -> list[int]:
        """``count`` never-used references in random order, marked used (each probe is sent once)."""
        free = [i for i in range(len(self.prompts)) if i not in self.used]
        if count > len(free):
            raise ValueError(f"the probe pool has {len(free)} unused references, {count} needed: "
                             "make a new fingerprint from fresh text")
        g = gen or torch.Generator().manual_seed(secrets.randbits(62))
        pick = [free[int(j)] for j in torch.randperm(len(free), generator=g)[:count]]
        self.used.update(pick)
        return pick

    def margins(self, i: int) -> torch.Tensor:
        e = self.expected[i]
        top = e.topk(2, dim=1).values
        return top[:, 0] - top[:, 1]

    def outcome(self, i: int, out: torch.Tensor, mode: str, threshold: float) -> tuple[bool, float]:
        """(failed, deviation) of one probe session's outputs against the reference."""
        exp = self.expected[i]
        if out.shape != exp.shape:
            raise ValueError(f"session returned outputs of shape {tuple(out.shape)}, expected {tuple(exp.shape)}")
        if mode == "logits":
            dev = float((out - exp).abs().amax())
            dev = dev if math.isfinite(dev) else math.inf
            return dev > threshold, dev
        ok = self.margins(i) >= self.min_margin
        flips = int(((out.argmax(1) != exp.argmax(1)) & ok).sum())
        return flips > 0, float(flips)

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT, "model": self.model, "seed": self.seed, "alpha": self.alpha, "extra": self.extra,
            "min_margin": self.min_margin, "used": sorted(self.used),
            "prompts": [p.tolist() for p in self.prompts], "feeds": [f.tolist() for f in self.feeds],
            "classes": int(self.expected[0].shape[1]),
            "expected": [_b64_f32(e) for e in self.expected],
            "calibrations": {k: asdict(c) for k, c in self.calibrations.items()}})

    @classmethod
    def from_json(cls, text: str) -> "TrafficFingerprint":
        try:
            d = json.loads(text)
            if not isinstance(d, dict) or d.get("format") not in FORMATS:
                raise ValueError(f"not a traffic fingerprint ({FORMAT})")
            if d["format"] == FORMAT:
                expected = [_f32_b64(e, int(d["classes"])) for e in d["expected"]]
            else:
                expected = [torch.tensor(e, dtype=F64) for e in d["expected"]]
            return cls([torch.tensor(p, dtype=torch.int64) for p in d["prompts"]],
                       [torch.tensor(f, dtype=torch.int64) for f in d["feeds"]],
                       expected, float(d["alpha"]), int(d["extra"]),
                       {k: Calibration(**c) for k, c in d["calibrations"].items()}, set(d["used"]),
                       float(d["min_margin"]), str(d.get("model", "")), int(d.get("seed", 0)))
        except (KeyError, TypeError, json.JSONDecodeError, RuntimeError, binascii.Error) as exc:
            raise ValueError(f"malformed traffic fingerprint: {exc}") from exc

    def save(self, path: str | os.PathLike) -> None:
        """Write with mode 0600 (the references are secret); save again after a check to keep ``used``."""
        fd = os.open(Path(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.to_json())
        os.chmod(path, 0o600)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TrafficFingerprint":
        try:
            return cls.from_json(Path(path).read_text())
        except OSError as exc:
            raise ValueError(f"cannot read fingerprint {path}: {exc}") from exc


def _b64_f32(t: torch.Tensor) -> str:
    """A float tensor as base64 of its little-endian float32 bytes (row-major)."""
    return base64.b64encode(t.to(torch.float32).contiguous().numpy().astype("<f4").tobytes()).decode()


def _f32_b64(text: str, classes: int) -> torch.Tensor:
    """Inverse of ``_b64_f32`` for a (rows, classes) matrix, as float64."""
    import numpy as np
    flat = np.frombuffer(base64.b64decode(text, validate=True), dtype="<f4")
    if classes < 1 or flat.size % classes:
        raise ValueError(f"expected outputs of {flat.size} values do not fill rows of {classes}")
    return torch.from_numpy(flat.astype(np.float64).reshape(-1, classes))


@torch.no_grad()
def reference_outputs(model: Transformer, prompt: torch.Tensor, n_new: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The genuine model's greedy continuation to feed (n_new - 1 tokens) and its outputs at the last
    prompt position and after each fed token ((n_new, classes), float64)."""
    cont = model.generate(prompt.reshape(1, -1), n_new)[0]
    feed = cont[:-1]
    full = torch.cat([prompt, feed]).reshape(1, -1)
    logits = model(full)[0].to(F64)
    return feed, logits[prompt.numel() - 1:]


def make_traffic_fingerprint(model: Transformer, sessions: Sequence[Session], alpha: float, extra: int,
                             min_margin: float = 0.1, source: str = "", seed: int = 0) -> TrafficFingerprint:
    """The verifier's pool from text sessions (``text_sessions``): reference outputs by the plaintext
    model. Calibrate it with ``calibrate_traffic`` for each device class the server may run."""
    feeds, expected = [], []
    for s in sessions:
        f, e = reference_outputs(model, s.prompt, s.n_new)
        feeds.append(f)
        expected.append(e)
    return TrafficFingerprint([s.prompt for s in sessions], feeds, expected, float(alpha), int(extra),
                              min_margin=min_margin, model=source, seed=seed)


def calibrate_traffic(fp: TrafficFingerprint, codec, opener: SessionOpener, device_class: str = "fp32",
                      modes: Sequence[str] = MODES, sessions: int | None = None, margin: float = 8.0,
                      confidence: float = 0.999, gen: torch.Generator | None = None, holdout: float = 0.0,
                      variant: str = "") -> dict[str, Calibration]:
    """Run reference sessions on an honest stack of ``device_class`` (locally: nothing is sent to the
    server, so the pool stays unused) and store one calibration per mode under
    "<class>/<mode><variant>".

    Logits: a session fails when its largest output error exceeds ``margin`` times the largest honest
    error seen; labels: when a checked position with a clear reference gap changes its top-1. With
    ``sessions`` above the pool size the references are reused, each time with fresh noise.

    ``p0`` bounds the failure rate among calibration sessions. With ``holdout`` > 0 that fraction of the
    sessions is kept out of the threshold and only they count, so the bound is a held-out estimate for
    the chosen threshold, which a small ``margin`` (tight thresholds) needs; with ``margin`` 8 and no
    holdout the threshold sits far beyond every honest error seen, and the same sessions are counted.
    """
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"holdout must be in [0, 1), got {holdout}")
    g = gen or torch.Generator().manual_seed(secrets.randbits(62))
    n = sessions or len(fp.prompts)
    # more sessions than references: cycle through them, each run with fresh noise (local, never sent)
    idx = [int(i) for _ in range(-(-n // len(fp.prompts))) for i in torch.randperm(len(fp.prompts), generator=g)][:n]
    outs = [run_session(codec, opener, fp.prompts[i], fp.feeds[i]) for i in idx]
    runs = list(zip(idx, outs))
    cut = n - int(round(holdout * n))
    if holdout and not 0 < cut < n:
        raise ValueError(f"holdout {holdout} of {n} sessions leaves no session to fit or to count")
    fit, held = (runs[:cut], runs[cut:]) if holdout else (runs, runs)
    result = {}
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        devs = [fp.outcome(i, o, "logits", math.inf)[1] for i, o in fit]
        scale = max(float(fp.expected[i].abs().max()) for i in idx)
        threshold = max(margin * max(devs), 1e-6 * max(scale, 1.0)) if mode == "logits" else 0.5
        fails = [fp.outcome(i, o, mode, threshold) for i, o in held]
        f = sum(int(x[0]) for x in fails)
        cal = Calibration(mode, threshold, max(x[1] for x in fails), len(held), f,
                          upper_bound(f, len(held), confidence), confidence)
        fp.calibrations[f"{device_class}/{mode}{variant}"] = cal
        result[mode] = cal
    return result


def check_traffic(fp: TrafficFingerprint, codec, opener: SessionOpener, mode: str = "logits",
                  device_class: str = "fp32", p1: float = 0.5, fp_target: float = 2.0 ** -40,
                  miss_target: float = 2.0 ** -40, sequential: bool = False,
                  gen: torch.Generator | None = None, variant: str = "") -> Verdict:
    """Send never-used reference sessions through ``opener`` and decide whether the server runs the
    genuine model; the pool's ``used`` set grows by the probes sent (save the fingerprint afterwards).

    The calibration is the one stored for ``device_class`` (and ``variant``): the class the server
    declares. Declaring a less precise class than it uses loosens the check in the server's favour.
    The fixed-size test refuses to start when the pool holds fewer unused references than it needs;
    the sequential one (at most ``probe_budget`` probes) ends "undecided" if the pool runs out first.
    """
    key = f"{device_class}/{mode}{variant}"
    if key not in fp.calibrations:
        raise ValueError(f"the fingerprint has no calibration {key!r} (has {sorted(fp.calibrations)})")
    if codec.alpha != fp.alpha or codec.extra != fp.extra:
        raise ValueError(f"fingerprint made for noise {fp.alpha} / width {fp.extra}, the deployment uses "
                         f"{codec.alpha} / {codec.extra}: probes would not look like ordinary requests")
    cal = fp.calibrations[key]
    design = design_test(cal.p0_upper, p1, fp_target, miss_target)
    if not sequential:
        fails, worst = 0, 0.0
        for i in fp.take(design.n, gen):
            bad, dev = fp.outcome(i, run_session(codec, opener, fp.prompts[i], fp.feeds[i]), mode, cal.threshold)
            fails += int(bad)
            worst = max(worst, dev)
        return Verdict("mismatch" if fails >= design.k else "match", mode, design.n, fails, design.k,
                       design.false_positive, design.miss, cal.p0_upper, p1, worst, cal.confidence, cal.probes)
    test = SequentialTest(max(cal.p0_upper, 1e-12), min(p1, 1 - 1e-9), fp_target, miss_target)
    worst = 0.0
    # stops undecided after 2n probes, or when the pool has no unused reference left
    while test.state == "undecided" and test.trials < 2 * design.n and fp.remaining > 0:
        (i,) = fp.take(1, gen)
        bad, dev = fp.outcome(i, run_session(codec, opener, fp.prompts[i], fp.feeds[i]), mode, cal.threshold)
        worst = max(worst, dev)
        test.observe(bad)
    fpb, missb = test.bounds
    return Verdict(test.state, mode, test.trials, test.failures, design.k, fpb, missb, cal.p0_upper, p1, worst,
                   cal.confidence, cal.probes)


def probe_budget(fp: TrafficFingerprint, mode: str = "logits", device_class: str = "fp32", p1: float = 0.5,
                 sequential: bool = False, fp_target: float = 2.0 ** -40, miss_target: float = 2.0 ** -40,
                 variant: str = "") -> int:
    """The most probe sessions ``check_traffic`` sends with these settings: the fixed-size test's n, or
    twice it for the sequential test (which usually decides far sooner)."""
    key = f"{device_class}/{mode}{variant}"
    if key not in fp.calibrations:
        raise ValueError(f"the fingerprint has no calibration {key!r} (has {sorted(fp.calibrations)})")
    n = design_test(fp.calibrations[key].p0_upper, p1, fp_target, miss_target).n
    return 2 * n if sequential else n


class ProbeSchedule:
    """Spreads probe sessions over the client's own sessions instead of sending them in one burst.

    Call ``tick()`` before each real session: with probability ``rate`` (OS CSPRNG unless a generator is
    given) one never-used reference session runs first through the same transport, and its outcome
    feeds Wald's sequential test; ``verdict`` is "undecided" until the test decides.
    """

    def __init__(self, fp: TrafficFingerprint, codec, opener: SessionOpener, mode: str = "logits",
                 device_class: str = "fp32", rate: float = 0.05, p1: float = 0.5, fp_target: float = 2.0 ** -40,
                 miss_target: float = 2.0 ** -40, gen: torch.Generator | None = None) -> None:
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"rate must be in (0, 1], got {rate}")
        self.fp, self.codec, self.opener, self.mode, self.rate = fp, codec, opener, mode, rate
        self.cal = fp.calibrations[f"{device_class}/{mode}"]
        self.test = SequentialTest(max(self.cal.p0_upper, 1e-12), min(p1, 1 - 1e-9), fp_target, miss_target)
        self.p1 = p1
        self.gen = gen or torch.Generator().manual_seed(secrets.randbits(62))
        self.worst = 0.0

    def tick(self) -> bool:
        """Maybe run one probe session now; returns whether one ran."""
        if self.test.state != "undecided" or float(torch.rand(1, generator=self.gen)) >= self.rate:
            return False
        (i,) = self.fp.take(1, self.gen)
        out = run_session(self.codec, self.opener, self.fp.prompts[i], self.fp.feeds[i])
        bad, dev = self.fp.outcome(i, out, self.mode, self.cal.threshold)
        self.worst = max(self.worst, dev)
        self.test.observe(bad)
        return True

    @property
    def verdict(self) -> Verdict:
        fpb, missb = self.test.bounds
        return Verdict(self.test.state, self.mode, self.test.trials, self.test.failures, 0, fpb, missb,
                       self.cal.p0_upper, self.p1, self.worst, self.cal.confidence, self.cal.probes)
