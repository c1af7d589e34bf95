"""Claims on committed tensors and how a proof settles them.

``Claim(tensor, point, value)`` states ``MLE(canonical(tensor))(point) = value``; a
:class:`LinearClaim` a public linear combination of such evaluations. A :class:`Settler`
settles the claims a proof leaves (:class:`OracleSettler` evaluates the tables: tests).
Conventions in ``blindproof.zk.ops.base``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import blake3
import numpy as np

from blindproof.zk.field import babybear as F
from blindproof.zk.iop import mle
from blindproof.zk.iop import blind as BL
from blindproof.zk.iop.transcript import Transcript


class Reject(Exception):
    """An op proof does not verify (raised inside verifiers; converted to VerifyResult at the top)."""


# --- claims ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    """``MLE(canonical(tensor))(point) = value``; point (n, 4), value (4,). On a tensor the program
    blinds (:mod:`blindproof.zk.iop.blind`) the value is the randomized extension's ``T̂(point)``
    unless ``plain``."""

    tensor: str
    point: np.ndarray
    value: np.ndarray
    plain: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.tensor, str) or not self.tensor:
            raise TypeError("Claim: tensor must be a non-empty str")
        object.__setattr__(self, "point", F._check_ext(np.asarray(self.point).reshape(-1, 4), "claim point"))
        object.__setattr__(self, "value", F._check_ext(np.asarray(self.value).reshape(4), "claim value"))

    def same(self, other: "Claim") -> bool:
        """Same tensor, point, value and kind."""
        return (self.tensor == other.tensor and np.array_equal(self.point, other.point)
                and np.array_equal(self.value, other.value) and self.plain == other.plain)


@dataclass(frozen=True)
class LinearClaim:
    """``Σ_k coef_k · MLE(tensor_k)(point_k) = value``: how a randomized claim (a tensor and its
    randomizer table) and a relation between randomizers are settled, without revealing the terms."""

    terms: tuple[tuple[str, np.ndarray, np.ndarray], ...]
    value: np.ndarray

    def __post_init__(self) -> None:
        if not self.terms:
            raise ValueError("LinearClaim: no terms")
        terms = _checked_terms(self.terms)
        if terms is None:
            terms = tuple((str(t), F._check_ext(np.asarray(p).reshape(-1, 4), "linear claim point"),
                           F._check_ext(np.asarray(c).reshape(4), "linear claim coefficient")) for t, p, c in self.terms)
        object.__setattr__(self, "terms", terms)
        object.__setattr__(self, "value", F._check_ext(np.asarray(self.value).reshape(4), "linear claim value"))


_U32 = np.dtype(np.uint32)


def _checked_terms(terms) -> "tuple | None":
    """The terms of a linear claim when every point is a uint32 (n, 4) array and every coefficient a
    uint32 (4,) array, all canonical (one range check for all of them); None otherwise (the caller
    then converts and checks term by term, naming what is wrong)."""
    arrays = []
    for term in terms:
        if len(term) != 3:
            return None
        _, p, c = term
        if not (type(p) is np.ndarray and p.dtype == _U32 and p.ndim == 2 and p.shape[1] == 4
                and type(c) is np.ndarray and c.dtype == _U32 and c.shape == (4,)):
            return None
        arrays += (p.reshape(-1), c)
    if int(np.concatenate(arrays).max()) >= F.P:
        return None
    return tuple((str(t), p, c) for t, p, c in terms)


def fold_public(claim, evaluate: Callable[[str, np.ndarray], "np.ndarray | None"]):
    """A linear claim with its terms on public tensors (``evaluate`` gives their value, None for a
    committed tensor) moved to the value side: the same statement about the committed terms (both
    sides know the public values). None when no term is left and the claim held; Reject if it did not."""
    terms, value = [], F._check_ext(np.asarray(claim.value).reshape(4), "linear claim value")
    for name, pt, coef in claim.terms:
        v = evaluate(name, pt)
        if v is None:
            terms.append((name, pt, coef))
        else:
            value = F.esub(value, F.emul(np.asarray(coef, dtype=np.uint32).reshape(4), v))
    if len(terms) == len(claim.terms):
        return claim
    if terms:
        return type(claim)(tuple(terms), value)
    if value.any():
        raise Reject("a linear claim on public tensors is false")
    return None


@dataclass
class ClaimSet:
    """An ordered collection of claims, grouped by tensor on demand."""

    claims: list[Claim] = field(default_factory=list)

    def add(self, claim: Claim) -> None:
        """Append one claim."""
        if not isinstance(claim, Claim):
            raise TypeError(f"ClaimSet.add: expected a Claim, got {type(claim).__name__}")
        self.claims.append(claim)

    def extend(self, claims: Iterable[Claim]) -> None:
        """Append several claims."""
        for c in claims:
            self.add(c)

    def pop(self, tensor: str) -> list[Claim]:
        """Remove and return every claim on ``tensor``."""
        mine = [c for c in self.claims if c.tensor == tensor]
        self.claims = [c for c in self.claims if c.tensor != tensor]
        return mine

    def tensors(self) -> list[str]:
        """Tensor names with at least one claim, in first-claim order."""
        return list(dict.fromkeys(c.tensor for c in self.claims))

    def __iter__(self):
        return iter(self.claims)

    def __len__(self) -> int:
        return len(self.claims)


class Settler:
    """Settles the claims a program proof leaves (public tensors, committed trace tables, weights).

    ``commit(tables, transcript)`` is called once before any challenge with every canonical table
    (the prover's; a verifier-side settler receives ``None`` and absorbs the commitment it was given);
    ``settle(claims, transcript)`` is called once at the end with every claim left: a prover-side
    settler opens them, a verifier-side one raises :class:`Reject` unless they hold."""

    def commit(self, tables: Mapping[str, np.ndarray] | None, transcript: Transcript) -> None:  # pragma: no cover
        raise NotImplementedError

    def settle(self, claims: Sequence[Claim], transcript: Transcript) -> None:  # pragma: no cover
        raise NotImplementedError


class OracleSettler(Settler):
    """Test settler for both sides: evaluates the prover's actual canonical tables (what an opening
    would prove). Its commitment is a BLAKE3 digest of every table, so the transcript depends on the
    data; a verifier-side use must share the object (or the tables) with the prover: it is an oracle,
    not a commitment."""

    linear_claims = True  # settles LinearClaims: program proofs with it run blinded

    def __init__(self, tables: Mapping[str, np.ndarray] | None = None) -> None:
        self.tables = dict(tables or {})

    def randomizer_lengths(self) -> dict[str, int]:
        """The randomizer sizes of the tables it holds (a verifier sharing the prover's oracle)."""
        return BL.lengths_from_layout(list(self.tables), [mle.num_vars(t) for t in self.tables.values()])

    @staticmethod
    def digest(tables: Mapping[str, np.ndarray]) -> bytes:
        """A binding digest of named tables (sorted by name)."""
        h = blake3.blake3()
        for name in sorted(tables):
            nb = name.encode()
            h.update(len(nb).to_bytes(4, "little") + nb)
            t = np.ascontiguousarray(tables[name], dtype="<u4")
            h.update(t.size.to_bytes(8, "little") + t.tobytes())
        return h.digest()

    def commit(self, tables: Mapping[str, np.ndarray] | None, transcript: Transcript) -> None:
        if tables is not None:
            self.tables = dict(tables)
        transcript.absorb_digest("ops/oracle-commitment", self.digest(self.tables))

    def settle(self, claims: Sequence[Claim], transcript: Transcript) -> None:
        self.check(claims)

    def _eval(self, name: str, point: np.ndarray) -> np.ndarray:
        t = self.tables.get(name)
        if t is None:
            raise Reject(f"claim on {name!r}, which is not committed")
        if mle.num_vars(t) != point.shape[0]:
            raise Reject(f"claim on {name!r} has {point.shape[0]} coordinates, the tensor {mle.num_vars(t)}")
        return mle.evaluate(t, point)

    def check(self, claims: Sequence["Claim | LinearClaim"]) -> None:
        """Evaluate every claim on the tables; Reject on the first false one."""
        for c in claims:
            if isinstance(c, LinearClaim):
                total = F.ezero()
                for name, pt, coef in c.terms:
                    total = F.eadd(total, F.emul(coef, self._eval(name, pt)))
                if not np.array_equal(total, c.value):
                    raise Reject(f"linear claim on {', '.join(t for t, _, _ in c.terms)} does not hold")
                continue
            t = self.tables.get(c.tensor)
            if t is None:
                raise Reject(f"claim on {c.tensor!r}, which is not committed")
            if mle.num_vars(t) != c.point.shape[0]:
                raise Reject(f"claim on {c.tensor!r} has {c.point.shape[0]} coordinates, "
                             f"the tensor {mle.num_vars(t)}")
            if not np.array_equal(mle.evaluate(t, c.point), c.value):
                raise Reject(f"claim on {c.tensor!r} does not match the committed tensor")
