"""What a server can tell apart: probes versus traffic, judged on what the server itself computes.

The server of an expanded deployment sees, per request, the keyed input ``X`` (so its norm), its shape
(batch, length, start offset), how many decoding requests follow in the session, and - since it holds
``E'`` - the first-layer states ``X E'^T = h Q``, one fixed vector per token. Mapping those vectors
to symbols (``Symbolizer``) gives it the token sequences under a substitution, and with them
frequency, repetition and n-gram statistics against everything it has served before.

``session_features`` computes, in stream order, the features a server would use; ``evaluate`` measures
each one's accuracy at telling probes from traffic (threshold and direction fitted on one half of the
sessions, accuracy measured on the other), and a logistic regression over all of them (the server
given labelled examples). 50 % is chance.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import torch

F64 = torch.float64
FEATURES = ("input_norm", "prompt_len", "n_requests", "batch", "start", "novel_states", "repeats_within",
            "seen_8grams", "exact_repeat", "unigram_nll", "bigram_nll", "output_norm")


@dataclass(frozen=True)
class Request:
    """One request as the server receives it: keyed inputs (batch, seq, width) and the start offset."""

    x: torch.Tensor
    start: int = 0


@dataclass(frozen=True)
class SessionView:
    """A session as the server sees it: its requests in order (the first is the prompt)."""

    requests: tuple[Request, ...]
    label: int  # 1: probe, 0: traffic (the truth the distinguishers try to recover)


class Symbolizer:
    """Maps first-layer state vectors to symbol ids: a vector within ``tol`` of a known one (relative
    to the typical state norm) gets that symbol, otherwise a new one."""

    def __init__(self, tol: float = 1e-2) -> None:
        self.tol = tol
        self.book: torch.Tensor | None = None

    def __call__(self, states: torch.Tensor) -> list[int]:
        out = []
        for v in states.to(torch.float32):
            if self.book is not None:
                dist = (self.book - v).norm(dim=1)
                j = int(dist.argmin())
                if float(dist[j]) <= self.tol * max(float(v.norm()), 1e-6):
                    out.append(j)
                    continue
            self.book = v[None].clone() if self.book is None else torch.cat([self.book, v[None]])
            out.append(self.book.shape[0] - 1)
        return out


class ServerHistory:
    """Everything the server has served so far, as symbol statistics."""

    def __init__(self) -> None:
        self.unigrams: Counter = Counter()
        self.bigrams: Counter = Counter()
        self.grams8: set[tuple[int, ...]] = set()
        self.prompts: set[tuple[int, ...]] = set()
        self.total = 0

    def add(self, seq: list[int], prompt: bool) -> None:
        self.unigrams.update(seq)
        self.bigrams.update(zip(seq, seq[1:]))
        self.grams8.update(tuple(seq[i:i + 8]) for i in range(len(seq) - 7))
        if prompt:
            self.prompts.add(tuple(seq))
        self.total += len(seq)


def _nll(seq: list[int], hist: ServerHistory, vocab: int) -> tuple[float, float]:
    """Mean negative log-likelihood under add-one unigram and bigram models of the history."""
    v = max(vocab, 1)
    uni = -sum(math.log((hist.unigrams[s] + 1) / (hist.total + v)) for s in seq) / len(seq)
    if len(seq) < 2:
        return uni, uni
    bi = -sum(math.log((hist.bigrams[(a, b)] + 1) / (hist.unigrams[a] + v)) for a, b in zip(seq, seq[1:]))
    return uni, bi / (len(seq) - 1)


class ServerObserver:
    """The server's running view: symbolizes states and keeps the history the features compare against."""

    def __init__(self, expand_weight: torch.Tensor, server=None) -> None:
        self.w = expand_weight.detach().to(torch.float32)
        self.server = server  # with it, the norm of the server's own output at the last position
        self.sym = Symbolizer()
        self.hist = ServerHistory()

    @torch.no_grad()
    def prompt(self, req: Request, n_requests: int = 1) -> list[list[float]]:
        """Feature rows (one per batch row) of a session's first request; then adds it to the history."""
        rows = []
        out_norm = [0.0] * req.x.shape[0]
        if self.server is not None:
            out_norm = self.server.run_blocks(req.x.to(torch.float32), req.start)[:, -1].norm(dim=-1).tolist()
        for b in range(req.x.shape[0]):
            x = req.x[b].to(torch.float32)
            seq = self.sym(x @ self.w.T)
            hist = self.hist
            vocab = 0 if self.sym.book is None else self.sym.book.shape[0]
            novel = sum(hist.unigrams[s] == 0 for s in seq) / len(seq)
            grams = [tuple(seq[i:i + 8]) for i in range(len(seq) - 7)]
            seen8 = sum(g in hist.grams8 for g in grams) / len(grams) if grams else 0.0
            uni, bi = _nll(seq, hist, vocab)
            rows.append([float(x.norm()), len(seq), n_requests, req.x.shape[0], req.start, novel,
                         1 - len(set(seq)) / len(seq), seen8, float(tuple(seq) in hist.prompts), uni, bi,
                         out_norm[b]])
            hist.add(seq, prompt=True)
        return rows

    @torch.no_grad()
    def record(self, req: Request) -> None:
        """Add a later request of a session (a decoding step) to the history."""
        for b in range(req.x.shape[0]):
            self.hist.add(self.sym(req.x[b].to(torch.float32) @ self.w.T), prompt=False)


@torch.no_grad()
def session_features(views: list[SessionView], expand_weight: torch.Tensor, server=None) -> torch.Tensor:
    """Features (rows, len(FEATURES)) computed in stream order, each from the server's history up to
    that session. Batched requests (several rows) contribute one feature row per batch row. With
    ``server`` (the deployed model) the server's own output on the prompt is a feature too."""
    obs = ServerObserver(expand_weight, server)
    rows = []
    for view in views:
        rows.extend(obs.prompt(view.requests[0], len(view.requests)))
        for req in view.requests[1:]:
            obs.record(req)
    return torch.tensor(rows, dtype=F64)


def labels_of(views: list[SessionView]) -> torch.Tensor:
    """One label per feature row (batched requests repeat their session's label)."""
    return torch.tensor([v.label for v in views for _ in range(v.requests[0].x.shape[0])], dtype=torch.int64)


def _best_threshold(f: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
    """(threshold, sign) maximising balanced accuracy of ``sign * (f - t) > 0`` => probe."""
    best, arg = -1.0, (0.0, 1)
    cands = torch.unique(f)
    if cands.numel() > 512:
        cands = torch.quantile(f, torch.linspace(0, 1, 513, dtype=F64))
    for t in torch.cat([cands, cands.max().reshape(1) + 1]):
        for sign in (1, -1):
            acc = balanced_accuracy((sign * (f - t) > 0).long(), y)
            if acc > best:
                best, arg = acc, (float(t), sign)
    return arg


def balanced_accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    """Mean of the accuracies on each class (0.5 at chance whatever the class sizes)."""
    accs = [float((pred[y == c] == c).double().mean()) for c in (0, 1) if bool((y == c).any())]
    return sum(accs) / len(accs)


def _fit_logistic(xtr: torch.Tensor, ytr: torch.Tensor):
    """An L2-regularised, class-balanced logistic regression on standardised features; returns P(1 | x)."""
    mu, sd = xtr.mean(0), xtr.std(0).clamp_min(1e-9)
    a = (xtr - mu) / sd
    w = torch.zeros(a.shape[1], dtype=F64, requires_grad=True)
    c = torch.zeros(1, dtype=F64, requires_grad=True)
    pos = ytr.double().mean().clamp(1e-3, 1 - 1e-3)
    weight = torch.where(ytr == 1, 0.5 / pos, 0.5 / (1 - pos))
    opt = torch.optim.LBFGS([w, c], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (weight * torch.nn.functional.binary_cross_entropy_with_logits(a @ w + c, ytr.double(),
                                                                              reduction="none")).mean()
        loss = loss + 1e-3 * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w, c = w.detach(), c.detach()

    def predict(x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(((x.to(F64) - mu) / sd) @ w + c)

    return predict


def evaluate(features: torch.Tensor, y: torch.Tensor, gen: torch.Generator, nonlinear: bool = True) -> dict[str, float]:
    """Held-out balanced accuracy of every single-feature distinguisher and of the logistic regression
    over all of them (fitted on a random half, measured on the other half)."""
    perm = torch.randperm(len(y), generator=gen)
    tr, te = perm[: len(y) // 2], perm[len(y) // 2:]
    out = {}
    for j, name in enumerate(FEATURES):
        t, sign = _best_threshold(features[tr, j], y[tr])
        out[name] = balanced_accuracy((sign * (features[te, j] - t) > 0).long(), y[te])
    prob = _fit_logistic(features[tr], y[tr])(features[te])
    out["logistic (all features)"] = balanced_accuracy((prob > 0.5).long(), y[te])
    if not nonlinear:
        return out
    try:  # a non-linear learner where scikit-learn is installed (a test dependency, not a runtime one)
        from sklearn.ensemble import HistGradientBoostingClassifier
    except ImportError:
        return out
    clf = HistGradientBoostingClassifier(max_iter=200, class_weight="balanced", random_state=0)
    clf.fit(features[tr].numpy(), y[tr].numpy())
    out["gradient boosting (all features)"] = balanced_accuracy(torch.from_numpy(clf.predict(features[te].numpy())), y[te])
    return out


def router(features_train: torch.Tensor, y_train: torch.Tensor):
    """The best probe detector a dishonest server can fit from labelled examples (a logistic regression
    over the features): returns a function mapping feature rows to P(probe)."""
    return _fit_logistic(features_train, y_train)


@torch.no_grad()
def session_view(codec, prompt: torch.Tensor, feed: torch.Tensor, label: int) -> SessionView:
    """The requests a client codec sends for a session: the prompt, then each fed token alone."""
    reqs = [Request(codec.client_input(prompt.reshape(1, -1), 0), 0)]
    if feed.numel():
        # one request per fed token; a batch of single tokens draws independent noise per row
        xs = codec.client_input(feed.reshape(-1, 1), 0)
        reqs += [Request(xs[i:i + 1], prompt.numel() + i) for i in range(feed.numel())]
    return SessionView(tuple(reqs), label)


@torch.no_grad()
def batch_probe_views(codec, inputs: torch.Tensor, batch: int, label: int = 1) -> list[SessionView]:
    """Fixed-batch probes (``protocol.check`` over ``blind.probe_query``): expanded plaintext inputs
    (count, seq, width), keyed and sent ``batch`` at a time with no decoding."""
    views = []
    for s in range(0, inputs.shape[0], batch):
        views.append(SessionView((Request(codec.encode_expanded(inputs[s:s + batch]), 0),), label))
    return views
