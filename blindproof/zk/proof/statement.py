"""What the model prover and the model verifier share: the statement the transcript
starts from, the transcript that counts the challenges it draws, the soundness
figures recomputed from those counts, and the public-value checks
(conventions in ``blindproof.zk.proof.verifier``).
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from typing import Callable, Mapping, Sequence

import numpy as np

from blindproof.quant.spec import ACC_BOUND
from blindproof.zk.commit import pcs
from blindproof.zk.iop.claims import Claim, fold_public, LinearClaim, Reject
from blindproof.zk.iop.layout import n_vars, public_eval
from blindproof.zk.proof.proof_file import SoundnessFigures
from blindproof.zk.proof.soundness import BABYBEAR_P, EXT_DEGREE, logup_error_log2
from blindproof.zk.iop.transcript import Transcript


DOMAIN = b"blindproof/model-proof/v3"  # v3: the public input and output enter by their digest
LOG_EXT_FIELD = EXT_DEGREE * math.log2(BABYBEAR_P)
ROUND_DEGREE = 5  # the degree each op challenge is counted at; a sumcheck round above it adds the rest
_LOOKUP_LABELS = ("lookup/alpha", "lookup/beta")
_LAMBDA_LABEL = "lookup/lambda"  # counted by its degree (CountingTranscript.lambda_degrees)


def _tensor_bytes(name: str, a: np.ndarray) -> bytes:
    a = np.ascontiguousarray(a, dtype="<i8")
    nb = name.encode("utf-8")
    head = struct.pack("<I", len(nb)) + nb + struct.pack("<I", a.ndim) + b"".join(struct.pack("<Q", d) for d in a.shape)
    return head + a.tobytes()


def statement_bytes(model_digest: bytes, spec_digest: bytes, params: pcs.PcsParams, start: int,
                    io_digest: bytes) -> bytes:
    """The public statement, unambiguously encoded (absorbed before anything else). The public input
    and output enter by their digest (:func:`proof_file.io_digest`); their ranges are checked before."""
    if len(io_digest) != 32:
        raise ValueError(f"the public digest has 32 bytes, got {len(io_digest)}")
    return b"".join([model_digest, spec_digest,
                     struct.pack("<dII", float(params.security_bits), params.blowup, params.proximity_tests),
                     struct.pack("<Q", int(start)), bytes(io_digest)])


class CountingTranscript(Transcript):
    """A transcript that also records what the soundness analysis needs: the extension challenges
    drawn under each label, and for each logUp lookup its query count (from the group sizes it
    absorbs), its depth (the deepest of its trees: the table's log size from the table description
    it absorbs, or a deeper group) and its α and β draws."""

    def __init__(self, domain: bytes, statement: bytes = b"", on_op: Callable[[str], None] | None = None) -> None:
        super().__init__(domain, statement)
        self.counts: Counter[str] = Counter()
        self.lookups: list[list[int]] = []  # [queries, depth, α and β draws, repetitions (α draws)]
        self.lambda_draws: list[int] = []  # per λ draw: how many lookups were recorded before it
        self.extra_degree = 0  # Σ over sumcheck round challenges of (round degree − ROUND_DEGREE)⁺
        self._round_degree = 0  # degree of the round whose values were absorbed last
        self._table_log = 0  # log size of the table the next lookup uses
        self.on_op = on_op  # told "kind -> output" as each op proof starts (progress display)

    def absorb_bytes(self, label: str, data: bytes) -> None:
        super().absorb_bytes(label, data)
        if label == "ops/op" and self.on_op is not None:
            self.on_op(data.decode("utf-8", "replace").replace("\0", " -> "))
        if label == "lookup/groups" and self.on_op is not None and not self.lookups:
            self.on_op("")  # the deferred lookups start
        if label == "lookup/table":  # u32 name length, name, u32 log size, u32 width, contents hash
            n = int.from_bytes(data[:4], "little")
            self._table_log = int.from_bytes(data[4 + n:8 + n], "little")
        if label == "lookup/groups":  # u32 log sizes, then the group names (text)
            logs = []
            for i in range(0, len(data) - 3, 4):
                v = int.from_bytes(data[i:i + 4], "little")
                if v >= 64:
                    break
                logs.append(v)
            # the bound on the table's rows in the logUp error: 2^max(table, groups) (the signed
            # tree's depth and padding add no poles; its GKR rounds are counted as challenges)
            self.lookups.append([sum(1 << g for g in logs), max([self._table_log, *logs]), 0, 0])

    def absorb_ext(self, label: str, arr: np.ndarray) -> None:
        super().absorb_ext(label, arr)
        if label == "sumcheck/round":  # a round of degree d sends its values at 0, 2, …, d: d of them
            self._round_degree = int(np.asarray(arr).size) // 4

    def challenge_exts(self, label: str, n: int) -> np.ndarray:
        out = super().challenge_exts(label, n)
        self.counts[label] += int(n)
        if label == "sumcheck/r":  # a round above ROUND_DEGREE (a two-entry tensor's randomizer)
            self.extra_degree += max(0, self._round_degree - ROUND_DEGREE) * int(n)
        if self.lookups and label == "lookup/alpha":  # one α per repetition
            self.lookups[-1][2] += int(n)
            self.lookups[-1][3] += int(n)
        elif self.lookups and label == "lookup/beta":
            self.lookups[-1][2] += int(n)
        elif label == "lookup/lambda":
            self.lambda_draws += [len(self.lookups)] * int(n)
        return out

    def lambda_degrees(self) -> list[int]:
        """Per λ draw, the degree in λ of the GKR layer it batches: ``Σ_t λ^(2t) (p_t + λ q_t)`` over
        at most every fraction tree recorded so far (one signed tree per lookup and repetition),
        so ``2·trees − 1``."""
        trees = [max(1, rec[3]) for rec in self.lookups]
        return [max(1, 2 * sum(trees[:k]) - 1) for k in self.lambda_draws]


def _bits(err: float) -> float:
    return math.inf if err <= 0 else -math.log2(err)


def soundness_figures(counts: Mapping[str, int], lookups: Sequence[Sequence[int]], trace: pcs.Layout | None,
                      trace_claims: int, weights: pcs.Layout, weight_claims: int,
                      lambda_degrees: Sequence[int] = (), extra_degree: int = 0) -> SoundnessFigures:
    """Provable and conjectured bits of a whole proof (see the module docstring). ``lookups``: per
    logUp lookup (queries, GKR depth, challenges drawn, repetitions), as :class:`CountingTranscript`
    records them; ``lambda_degrees``: the degree of each GKR layer's batching challenge λ;
    ``extra_degree``: what sumcheck rounds of degree above :data:`ROUND_DEGREE` add
    (``CountingTranscript.extra_degree``)."""
    if counts.get(_LAMBDA_LABEL, 0) != len(lambda_degrees):
        raise Reject("GKR batching challenges without a recorded degree")
    other = sum(n for lab, n in counts.items()
                if not lab.startswith("pcs/") and lab not in _LOOKUP_LABELS and lab != _LAMBDA_LABEL)
    weighted = ROUND_DEGREE * other + sum(lambda_degrees) + extra_degree
    terms: list[tuple[str, float, float]] = []
    if weighted:
        b = LOG_EXT_FIELD - math.log2(weighted)
        terms.append((f"op challenges ({other + len(lambda_degrees)})", b, b))
    unaccounted = sum(n for lab, n in counts.items() if lab in _LOOKUP_LABELS) - sum(x[2] for x in lookups)
    if unaccounted:
        raise Reject("lookup challenges without a recorded lookup shape")
    lookup_err = 0.0
    for entry in lookups:
        queries, depth, draws = entry[:3]
        reps = entry[3] if len(entry) > 3 else 1  # (queries, depth, draws): one repetition
        if reps < 1 or draws % reps:
            raise Reject("a lookup drew an uneven number of challenges per repetition")
        lookup_err += 2.0 ** logup_error_log2(queries, depth, draws // reps, reps)
    if lookup_err:
        b = _bits(lookup_err)
        terms.append((f"lookup challenges ({len(lookups)} lookups)", b, b))
    if trace is not None and trace_claims:
        rep = trace.soundness(trace_claims)
        terms.append(("trace opening", rep.provable_bits, rep.conjectured_bits))
    if weight_claims:
        rep = weights.soundness(weight_claims)
        terms.append(("weight opening", rep.provable_bits, rep.conjectured_bits))
    prov = _bits(sum(2.0 ** -t[1] for t in terms))
    conj = _bits(sum(2.0 ** -t[2] for t in terms))
    return SoundnessFigures(prov, conj, terms)


# --- settling claims ------------------------------------------------------------------------------

def split_claims(claims: Sequence, public: Mapping[str, np.ndarray], companion: Sequence[str] = ()
                 ) -> tuple[list[Claim], list, list]:
    """(public, trace, weight) claims, each in order; claims on the companion's tensors (``companion``)
    go with the weights; a linear claim (the randomized claims of ``iop.blind``, as
    :class:`pcs.LinearClaim`) goes with the trace when every term is a trace tensor, else with the
    weights (a claim mixing both is refused: no opening holds both)."""
    pub, tr, w = [], [], []
    comp = set(companion)

    def weighty(name: str) -> bool:
        return name.startswith("w:") or name in comp

    for c in claims:
        if isinstance(c, (pcs.LinearClaim, LinearClaim)):
            c = c if isinstance(c, pcs.LinearClaim) else pcs.LinearClaim(c.terms, c.value)
            c = fold_public(c, lambda name, pt: _public_value(public, name, pt))
            if c is None:
                continue
            kinds = {weighty(t) for t, _, _ in c.terms}
            if any(t in public for t, _, _ in c.terms) or len(kinds) != 1:
                raise Reject("a linear claim mixes public, trace and weight tensors")
            (w if kinds == {True} else tr).append(c)
            continue
        (pub if c.tensor in public else w if weighty(c.tensor) else tr).append(c)
    return pub, tr, w


def _public_value(public: Mapping[str, np.ndarray], name: str, point: np.ndarray) -> "np.ndarray | None":
    """A public tensor's MLE at ``point`` (None for a committed tensor); Reject on a point of another size."""
    if name not in public:
        return None
    values = public[name]
    if point.shape[0] != n_vars(values.shape):
        raise Reject(f"claim on public {name!r} has {point.shape[0]} coordinates, the tensor {n_vars(values.shape)}")
    return public_eval(values, point)


def check_public_claims(claims: Sequence[Claim], public: Mapping[str, np.ndarray]) -> None:
    """Evaluate public tensors' MLEs; Reject on a false claim."""
    for c in claims:
        values = public[c.tensor]
        if c.point.shape[0] != n_vars(values.shape):
            raise Reject(f"claim on public {c.tensor!r} has {c.point.shape[0]} coordinates, "
                         f"the tensor {n_vars(values.shape)}")
        if not np.array_equal(public_eval(values, c.point), c.value):
            raise Reject(f"claim on public tensor {c.tensor!r} is false")


TRACE_COMMITMENT_LABEL = "model/trace-commitment"
COMPANION_COMMITMENT_LABEL = "model/companion-commitment"


def check_public_ranges(spec, tensors: Mapping[str, np.ndarray]) -> None:
    """Reject unless every public tensor is an integer array inside its spec range ``[lo, hi]``: the
    field only sees values mod p, so an unchecked ``Y + p`` would prove as well as ``Y``."""
    for name, v in tensors.items():
        ts = spec.tensors.get(name)
        if ts is None:
            raise Reject(f"public tensor {name!r} has no range in the spec")
        a = np.asarray(v)
        if a.dtype.kind not in "iu":
            raise Reject(f"public tensor {name!r} must be integers, got {a.dtype}")
        if a.size and (int(a.min()) < ts.lo or int(a.max()) > ts.hi):
            raise Reject(f"public tensor {name!r} has values in [{int(a.min())}, {int(a.max())}], outside its "
                         f"declared range [{ts.lo}, {ts.hi}]")
        # every value of the program lies below 2^29 (the reference's bound); a declared range wider than
        # p/2 would otherwise admit Y + p beside Y (a detached proof binds its output by digest only)
        if a.size and int(np.abs(a).max()) >= ACC_BOUND:
            raise Reject(f"public tensor {name!r} reaches |{int(np.abs(a).max())}| >= 2^29, beyond every value "
                         f"of the program")
