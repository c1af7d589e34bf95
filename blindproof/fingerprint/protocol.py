"""Identification protocol: secret references, probes x + alpha*d, calibration and the check.

The holder of the reference model keeps secret reference inputs x_i and their reference outputs f(x_i).
A probe is x_i + alpha*d with d a fresh random harmless direction, so the genuine model answers f(x_i)
(up to rounding) while almost any other model's answer moves linearly with alpha. The check only needs a
callable ``query(inputs) -> outputs`` (logits (batch, classes) or labels (batch,)), so it runs unchanged
over a local model, a gRPC client or an encrypted channel, and never needs the weights.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from blindproof.fingerprint.stats import SequentialTest, design_test, upper_bound
from blindproof.fingerprint.subspace import HarmlessSpace, harmless_space

Query = Callable[[torch.Tensor], "torch.Tensor | np.ndarray"]
MODES = ("logits", "labels")


@dataclass(frozen=True)
class Probes:
    """A batch of probes with the outputs the genuine model gives on them."""

    inputs: torch.Tensor  # (count, *input_shape), float32
    expected_logits: torch.Tensor  # (count, classes), float64
    expected_labels: torch.Tensor  # (count,), int64
    magnitudes: torch.Tensor  # (count,), the alpha used for each probe


@dataclass(eq=False)
class Fingerprint:
    """The verifier's secret: reference inputs, their outputs and their harmless spaces.

    ``spaces`` holds one global space shared by all references, or one local space per reference.
    """

    references: torch.Tensor  # (N, *input_shape)
    expected: torch.Tensor  # (N, classes) reference logits f(x_i)
    spaces: Sequence[HarmlessSpace]
    alpha: float
    radius_fraction: float = 0.5  # local spaces: use at most this fraction of a direction's exact radius

    def __post_init__(self) -> None:
        if self.references.shape[0] != self.expected.shape[0] or self.references.shape[0] == 0:
            raise ValueError("references and expected outputs must be non-empty and of equal length")
        if len(self.spaces) not in (1, self.references.shape[0]):
            raise ValueError("give one global space or one space per reference")
        if not self.alpha > 0:
            raise ValueError(f"alpha must be positive, got {self.alpha}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.references.shape[1:])

    def probes(self, count: int, generator: torch.Generator | None = None) -> Probes:
        """``count`` fresh probes: random reference, random harmless direction, magnitude alpha."""
        if count <= 0:
            raise ValueError(f"count must be positive, got {count}")
        gen = generator or _secret_generator()
        idx = torch.randint(0, self.references.shape[0], (count,), generator=gen)
        x = self.references[idx].to(torch.float64)
        if len(self.spaces) == 1:
            d = self.spaces[0].sample(count, gen)
        else:
            d = torch.cat([self.spaces[int(i)].sample(1, gen) for i in idx])
        mags = torch.full((count,), float(self.alpha), dtype=torch.float64)
        if any(s.kind == "local" for s in self.spaces):
            for j, i in enumerate(idx):
                space = self.spaces[0] if len(self.spaces) == 1 else self.spaces[int(i)]
                mags[j] = min(self.alpha, self.radius_fraction * space.max_magnitude(d[j]))
        shape = (-1,) + (1,) * len(self.input_shape)
        inputs = (x + mags.reshape(shape) * d).to(torch.float32)
        exp = self.expected[idx].to(torch.float64)
        return Probes(inputs, exp, exp.argmax(dim=1), mags)


def make_fingerprint(model: nn.Module, references: torch.Tensor, alpha: float = 100.0, depth: int = 0,
                     min_margin: float = 0.0, **space_kwargs) -> Fingerprint:
    """Build the verifier's secret from the reference model and secret reference inputs.

    ``depth`` 0 uses the global space (any magnitude); depth >= 1 a local space per reference, deeper
    into the network but capped by each direction's radius. References whose top-two logit gap is below
    ``min_margin`` are dropped (near-ties would make label-only checks flaky on an honest server).
    """
    refs = torch.as_tensor(references, dtype=torch.float32)
    shape = tuple(refs.shape[1:])
    with torch.no_grad():
        logits = model.eval()(refs).to(torch.float64)
    if logits.dim() != 2:
        raise ValueError(f"the model must return (batch, classes) logits, got shape {tuple(logits.shape)}")
    top2 = logits.topk(2, dim=1).values
    keep = (top2[:, 0] - top2[:, 1]) >= min_margin
    if not bool(keep.any()):
        raise ValueError(f"no reference has a logit margin >= {min_margin}")
    refs, logits = refs[keep], logits[keep]
    if depth == 0:
        spaces = [harmless_space(model, shape, **space_kwargs)]
    else:
        spaces = [harmless_space(model, shape, at=r, depth=depth, **space_kwargs) for r in refs]
    if any(s.dim == 0 for s in spaces):
        raise ValueError("the model has no harmless directions at this depth for some reference")
    return Fingerprint(refs, logits, spaces, float(alpha))


def _secret_generator() -> torch.Generator:
    """Probes must be unpredictable to the server: seed from the OS CSPRNG unless a generator is given."""
    return torch.Generator().manual_seed(secrets.randbits(62))


def _outputs(query: Query, inputs: torch.Tensor, mode: str, batch: int) -> torch.Tensor:
    """Run the query in batches; returns logits (float64) or labels (int64) for the mode."""
    outs = []
    for s in range(0, inputs.shape[0], batch):
        out = query(inputs[s:s + batch])
        outs.append(torch.as_tensor(np.asarray(out)) if not isinstance(out, torch.Tensor) else out.detach().cpu())
    out = torch.cat(outs)
    if out.shape[0] != inputs.shape[0]:
        raise ValueError(f"query returned {out.shape[0]} outputs for {inputs.shape[0]} inputs")
    if out.dim() == 2 and out.dtype.is_floating_point:
        return out.to(torch.float64) if mode == "logits" else out.argmax(dim=1)
    if out.dim() == 1 and not out.dtype.is_floating_point:
        if mode == "logits":
            raise ValueError("the query returns labels only; use mode='labels'")
        return out.to(torch.int64)
    raise ValueError(f"query must return (batch, classes) float logits or (batch,) integer labels, "
                     f"got {tuple(out.shape)} {out.dtype}")


def _failures(out: torch.Tensor, probes: Probes, mode: str, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-probe failure flags and deviations (max abs logit error, or 0/1 label disagreement)."""
    if mode == "logits":
        if out.shape != probes.expected_logits.shape:
            raise ValueError(f"query returned logits of shape {tuple(out.shape)}, "
                             f"expected {tuple(probes.expected_logits.shape)}")
        dev = (out - probes.expected_logits).abs().amax(dim=1)
        dev = torch.where(torch.isfinite(dev), dev, torch.full_like(dev, math.inf))
        return dev > threshold, dev
    dev = (out != probes.expected_labels).to(torch.float64)
    return dev > 0, dev


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


@dataclass(frozen=True)
class Calibration:
    """Honest behaviour of the serving stack: logit threshold and a bound on honest failures."""

    mode: str
    threshold: float  # logits: deviation above this is a failure (unused for labels)
    max_deviation: float  # largest honest deviation seen
    probes: int
    failures: int  # honest failures at the threshold
    p0_upper: float  # one-sided upper confidence bound on the honest failure rate
    confidence: float


def calibrate(query: Query, fingerprint: Fingerprint, mode: str = "logits", probes: int = 1000, margin: float = 8.0,
              floor: float = 1e-6, confidence: float = 0.999, batch: int = 256,
              generator: torch.Generator | None = None) -> Calibration:
    """Measure honest deviations on the serving stack running the genuine model.

    The logit threshold is ``margin`` times the largest honest deviation (at least ``floor`` times the
    logit scale); the honest failure rate is then bounded by Clopper-Pearson at ``confidence``.
    """
    _check_mode(mode)
    if probes <= 0 or margin < 1.0:
        raise ValueError("calibration needs probes > 0 and margin >= 1")
    p = fingerprint.probes(probes, generator)
    out = _outputs(query, p.inputs, mode, batch)
    if mode == "logits":
        _, dev = _failures(out, p, mode, math.inf)
        scale = float(p.expected_logits.abs().max())
        threshold = max(margin * float(dev.max()), floor * max(scale, 1.0))
    else:
        threshold = 0.5
    fail, dev = _failures(out, p, mode, threshold)
    f = int(fail.sum())
    return Calibration(mode, threshold, float(dev.max()), probes, f, upper_bound(f, probes, confidence), confidence)


@dataclass(frozen=True)
class Verdict:
    """Outcome of an identity check with its error probabilities, each under a stated condition.

    ``false_positive`` is the chance an honest server is declared a mismatch *given* that its per-probe
    failure rate is at most ``p0`` (the calibration's Clopper-Pearson bound). That bound itself fails
    with probability at most ``1 - calibration_confidence`` over the calibration's probes, so without the
    condition the chance is at most ``false_positive_unconditional``. ``miss`` is the chance a server
    failing at least a fraction ``p1`` of probes is declared a match: ``p1`` is the caller's assumption,
    and a server failing less often is not covered.
    """

    decision: str  # "match" | "mismatch" | "undecided"
    mode: str
    probes: int
    failures: int
    threshold_failures: int  # failures at which the test declares a mismatch (fixed-size test)
    false_positive: float  # given the honest failure rate <= p0
    miss: float  # given the substitute's failure rate >= p1
    p0: float
    p1: float
    max_deviation: float
    calibration_confidence: float = 0.999
    calibration_probes: int = 0

    @property
    def match(self) -> bool | None:
        return {"match": True, "mismatch": False}.get(self.decision)

    @property
    def false_positive_unconditional(self) -> float:
        """P(honest server declared a mismatch) over calibration and check together, assuming only that
        the serving stack fails probes independently at one rate, as it did during calibration."""
        return min(1.0, self.false_positive + (1.0 - self.calibration_confidence))

    def conditions(self) -> str:
        """The error figures with the conditions they hold under, in words."""
        return (f"false positive <= {self.false_positive:.2g} given an honest failure rate <= p0 = {self.p0:.3g} "
                f"(a {100 * self.calibration_confidence:g}% bound from {self.calibration_probes} calibration probes; "
                f"unconditionally <= {self.false_positive_unconditional:.2g}); miss <= {self.miss:.2g} for a "
                f"server failing >= p1 = {self.p1:g} of probes (assumed; servers failing less are not covered)")


def check(query: Query, fingerprint: Fingerprint, calibration: Calibration, p1: float = 0.5,
          fp_target: float = 2.0 ** -40, miss_target: float = 2.0 ** -40, sequential: bool = False,
          max_probes: int | None = None, batch: int = 64, generator: torch.Generator | None = None) -> Verdict:
    """Probe the server through ``query`` and decide whether it runs the reference model.

    Fixed-size (default): the binomial design meeting both targets for p0 = calibration.p0_upper and the
    assumed least substitute failure rate ``p1``. Sequential: Wald's test, probing ``batch`` at a time
    until it decides or ``max_probes`` (default twice the fixed design) run out.
    """
    mode = calibration.mode
    p0 = calibration.p0_upper
    design = design_test(p0, p1, fp_target, miss_target)
    gen = generator or _secret_generator()
    if not sequential:
        p = fingerprint.probes(design.n, gen)
        fail, dev = _failures(_outputs(query, p.inputs, mode, batch), p, mode, calibration.threshold)
        f = int(fail.sum())
        return Verdict("mismatch" if f >= design.k else "match", mode, design.n, f, design.k,
                       design.false_positive, design.miss, p0, p1, float(dev.max()), calibration.confidence,
                       calibration.probes)
    test = SequentialTest(max(p0, 1e-12), min(p1, 1 - 1e-9), fp_target, miss_target)
    limit = max_probes or 2 * design.n
    worst = 0.0
    while test.state == "undecided" and test.trials < limit:
        p = fingerprint.probes(min(batch, limit - test.trials), gen)
        fail, dev = _failures(_outputs(query, p.inputs, mode, batch), p, mode, calibration.threshold)
        worst = max(worst, float(dev.max()))
        for flag in fail.tolist():
            if test.observe(bool(flag)) != "undecided":
                break
    fp, miss = test.bounds
    return Verdict(test.state, mode, test.trials, test.failures, design.k, fp, miss, p0, p1, worst,
                   calibration.confidence, calibration.probes)
