"""Zero-knowledge masks for the op sumchecks of a program proof (Libra-style, one mask per sumcheck).

Every op sumcheck with at least one variable, and every layer sumcheck of the program's logUp-GKR
lookups (:func:`blindproof.zk.iop.lookup.prove_many`, after the op proofs), runs on ``f + ρ·g`` with its
own random mask ``g`` (:class:`blindproof.zk.iop.sumcheck.MaskPolynomial`), so its round messages are
uniformly masked. The lookups also take their blinding leaves' values and their layers' randomizers
from here (masks of degree 1 read as random polynomials, :class:`blindproof.zk.iop.lookup._Randomizer`). The
mask's coefficient table (extension coefficients, four base coordinates) is committed as
``"zk~mask.<i>"`` (``i`` = the sumcheck's position in the proof) in the SAME trace commitment as the
trace, before any challenge; the mask's value ``g(r)`` becomes a linear claim on that table
(``sumcheck.mask_claim_terms``: one term per variable), which the settler opens with every other trace
claim — nothing else about the mask is revealed.

The prover must know every mask's size before committing: the sequence of sumcheck sizes depends only
on the program and the input shapes, so :class:`MaskRecorder` learns it from a dry run of the op
proofs (under a throwaway transcript), followed by the GKR layer sizes of the deferred lookups
(:func:`blindproof.zk.iop.lookup.mask_sizes`, from public shapes), cached per (spec, input shapes, start).
The verifier needs no plan: it names the ``i``-th mask for the ``i``-th masked sumcheck and the trace
opening rejects a claim on a mask that was not committed or that has another size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from blindproof.zk.field import babybear as F

from blindproof.zk.iop import sumcheck as S

MASK_PREFIX = "zk~mask."


def _degrees(n: int, degree: "int | tuple[int, ...]") -> tuple[int, ...]:
    """One round degree per variable."""
    return (int(degree),) * int(n) if isinstance(degree, (int, np.integer)) else tuple(int(d) for d in degree)


def mask_name(i: int) -> str:
    """Committed name of the ``i``-th mask of a program proof."""
    return f"{MASK_PREFIX}{i}"


def is_mask(name: str) -> bool:
    """Whether a committed tensor name is a sumcheck mask."""
    return name.startswith(MASK_PREFIX)


@dataclass
class VerifierMasks:
    """Verifier side: names masks in order and collects the claims on their committed tables."""

    used: int = 0
    claims: list = field(default_factory=list)  # base.Claim on mask tables, settled with the trace

    def next_name(self) -> str:
        """Name of the next mask."""
        name = mask_name(self.used)
        self.used += 1
        return name

    def add_claim(self, name: str, n: int, degree: int, point: np.ndarray, value: np.ndarray) -> None:
        """Record ``g(point) = value`` for the mask committed as ``name`` (``n`` variables, ``degree``) as
        the linear claim on its table that the trace opening settles (:func:`sumcheck.mask_claim_terms`)."""
        from blindproof.zk.iop.claims import LinearClaim  # base uses this module's objects, not its names

        self.claims.append(LinearClaim(S.mask_claim_terms(name, n, degree, point), value))

    def add_linear(self, terms: tuple, value: np.ndarray) -> None:
        """Record a linear claim on committed masks (terms from :func:`sumcheck.mask_var_terms`)."""
        from blindproof.zk.iop.claims import LinearClaim

        self.claims.append(LinearClaim(tuple(terms), value))


@dataclass
class MaskRecorder(VerifierMasks):
    """Dry-run prover side: hands out fresh masks of whatever size is asked and records the sizes."""

    plan: list = field(default_factory=list)  # (n_vars, degree) per masked sumcheck
    rng: np.random.Generator = field(default_factory=np.random.default_rng)

    def take(self, n: int, degree: "int | tuple[int, ...]") -> tuple[str, S.MaskPolynomial]:
        """A mask for a sumcheck of ``n`` variables and round degree ``degree`` (or one per round)."""
        self.plan.append((int(n), _degrees(n, degree)))
        return self.next_name(), S.MaskPolynomial.random(self.rng, n, degree)


@dataclass
class ProverMasks(VerifierMasks):
    """Prover side: the masks sampled (and committed) before any challenge, handed out in order."""

    masks: list = field(default_factory=list)

    @staticmethod
    def sample(plan: list, rng: np.random.Generator | None = None) -> "ProverMasks":
        """Fresh random masks for a plan of (n_vars, degree) sizes, from the OS CSPRNG unless ``rng``
        (tests) is given."""
        rng = rng if rng is not None else F.SecureRng()
        return ProverMasks(masks=[S.MaskPolynomial.random(rng, n, d) for n, d in plan])

    def tables(self) -> dict[str, np.ndarray]:
        """The coefficient tables to commit, by name."""
        return {mask_name(i): m.committed_table() for i, m in enumerate(self.masks)}

    def take(self, n: int, degree: "int | tuple[int, ...]") -> tuple[str, S.MaskPolynomial]:
        """The next committed mask; ValueError if the plan does not match the proof being made."""
        i = self.used
        degs = _degrees(n, degree)
        if (i >= len(self.masks) or self.masks[i].n_vars != n or not self.masks[i].fits(degs)
                or self.masks[i].degree != max(degs, default=self.masks[i].degree)):
            raise ValueError(f"sumcheck {i} (n={n}, degree={degree}) does not match the committed mask plan")
        return self.next_name(), self.masks[i]

    def check_all_used(self) -> None:
        """Every committed mask was used (else the plan was wrong)."""
        if self.used != len(self.masks):
            raise ValueError(f"{len(self.masks)} masks committed, {self.used} used")
