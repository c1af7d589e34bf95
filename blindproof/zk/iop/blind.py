"""Randomized extensions: what a program proof reveals about a committed tensor is uniformly random.

A blinded tensor ``T`` is worked with as its randomized extension (Libra, CRYPTO 2019, §4; Virgo,
S&P 2020, §5)

    T̂(x) = T̃(x) + x_s (1 − x_s) · Φ_T(x_A),     Φ_T(x_A) = Σ_{w ∈ {0,1}^b} R̃_T(x_A, w) = 2^b · R̃_T(x_A, ½, …, ½)

with ``x_s`` one variable of ``T`` (its *blinding variable*), ``x_A`` the ``a`` variables just above it
(MSB-first order; a small tensor repeats them, see :func:`make_rule`) and ``R_T`` a fresh random
base table of ``2^(a+b)`` entries, committed with the
trace as ``"zk~blind:<T>"``. ``T̂ = T̃`` on the hypercube, so every sum over the cube is unchanged;
off the cube ``x_s(1 − x_s) ≠ 0`` and every value the proof reveals about ``T`` carries a fresh
linear form of ``R_T``.

Rules every protocol follows (each is checked where it applies):

- **Claims mean T̂.** A :class:`~blindproof.zk.iop.claims.Claim` on a blinded tensor states ``T̂(p) = v``
  unless it is marked ``plain`` (``T̃(p) = v``: randomizer tables, and the leaf claims of lookups made
  without zero knowledge; a zero-knowledge lookup's leaf checks are linear claims whose values its
  own layer randomizers hide, :mod:`blindproof.zk.iop.lookup`). The
  settler proves ``T̃(p) + z·2^b·R̃_T(p_A, ½) = v`` (``z = p_s(1 − p_s)``) as one linear claim.
- **Readers sum x_s.** A sumcheck reading ``T`` binds ``x_s`` as one of its rounds, after every
  variable of ``x_A`` is bound or fixed (:func:`blinder`): in that round the table has degree 2
  (``sumcheck.Blinder``), and its final value is ``T̂`` at the sumcheck's point.
- **Producers and sums pay the randomizer back** (:class:`Libra`). A sumcheck whose claimed sum holds a
  randomized value ``v = T̂(p)`` (an op reducing its output claim, a merge, a row-sum right-hand side)
  proves ``Σ_x [f(x)] + c·Φ_T(p_A) = v``: ``Φ_T(p_A)`` is itself a sum over ``w``, added as one table
  ``R̃_T(p_A, x_B)`` over the sumcheck's last ``b`` variables; its final value is a plain claim on
  ``R_T``.
- **Linear relations between revealed values** (an ``add``'s split, a range check's limbs, a
  lookup's tie, a pool's remainder) hold for the ``T̃`` and are off by ``δ = Σ c·z·Φ`` for the
  ``T̂``: the prover sends ``δ`` with a linear claim on the ``R`` tables (``base.prove_relation``).

Degrees of freedom: ``Φ_T`` spans ``Π (repeats + 1)`` base dimensions of its coordinates (times four
when extension-valued; with no variable above ``x_s`` the coordinates are ``x_s`` itself, at a cost in
degree: :attr:`Rule.self_degree`) and each value a proof reveals about ``T`` takes four; a dry run of the op proofs counts them (reads, merged claims,
paybacks: ``program.mask_plan``) and sizes each trace tensor's coordinates to fit
(:func:`coordinates_for`); ``tests/test_zk_leakage_rank.py`` checks on real proofs that no combination
of revealed values cancels the randomizers without cancelling the tensor.
"""

from __future__ import annotations

import functools

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from blindproof.zk.field import babybear as F
from blindproof.zk.iop import mle
from blindproof.zk.iop import sumcheck as S

A_VARS = 4
B_VARS = 2
EXT_VARS = 2  # coordinate variables of an extension-valued randomizer (four base coordinates)
EXT_BELOW = 2  # a blinding variable with fewer variables above it gets one (see :func:`is_ext`)
PREFIX = "zk~blind:"
_HALF = F.ext((F.P + 1) // 2)


def is_ext(s: int) -> bool:
    """Whether a randomizer with blinding variable ``s`` is extension-valued: with fewer than
    :data:`EXT_BELOW` variables above ``x_s`` a base-field ``Φ`` spans too few dimensions (none
    above: one, a constant, so each revealed value of a 2-entry tensor would leave three of its four
    base coordinates in the clear); the extension-valued ``Φ = Σ_k x^k Φ_k`` spans four times as many."""
    return s < EXT_BELOW


@functools.lru_cache(maxsize=1)
def _ext_point() -> tuple[np.ndarray, np.ndarray]:
    """``(κ, λ)`` with ``Σ_k x^k R[…, k] = λ · R̃(…, κ)`` over the randomizer's coordinate variables."""
    c, lam = S._coordinate_point()
    kappa = np.array(c, dtype=np.uint32).reshape(-1, 4)
    kappa.setflags(write=False)
    lam_a = np.array(lam, dtype=np.uint32)
    lam_a.setflags(write=False)
    return kappa, lam_a


def blind_name(tensor: str) -> str:
    """Committed name of a tensor's randomizer table ``R_T``."""
    return PREFIX + tensor


def is_blind_table(name: str) -> bool:
    """Whether a committed name is a randomizer table."""
    return name.startswith(PREFIX)


def in_companion(name: str) -> bool:
    """Whether a randomizer table is a weight's (committed in the weight opening's companion)."""
    return name.startswith(PREFIX + "w:")


@functools.lru_cache(maxsize=8)
def _halves(b: int) -> np.ndarray:
    t = np.tile(_HALF, (b, 1))
    t.setflags(write=False)
    return t


@functools.lru_cache(maxsize=8)
def _scale(b: int) -> np.ndarray:
    t = F.ext(1 << b)
    t.setflags(write=False)
    return t


@dataclass(frozen=True)
class Rule:
    """Where a tensor's randomizer lives: blinding variable ``s``, variables ``A`` (indices into the
    tensor's ``n`` MLE variables, MSB-first) and ``b`` summed variables of ``R``. ``table`` names the
    committed ``R`` (a relabelled tensor shares its source's)."""

    tensor: str
    n: int
    s: int
    A: tuple[int, ...]
    table: str
    b: int = B_VARS
    ext: bool = False  # extension-valued ``Φ`` (:func:`is_ext` of the source's ``s``): ``R`` has
    # :data:`EXT_VARS` more variables, read at ``κ``; a relabelling keeps its source's

    @property
    def self_degree(self) -> int:
        """Degree of ``Φ`` in the blinding variable itself (its readers' round has ``2 +`` this)."""
        return self.A.count(self.s)

    @property
    def r_vars(self) -> int:
        """Variables of the randomizer table."""
        return len(self.A) + self.b + (EXT_VARS if self.ext else 0)

    def _tail_point(self) -> np.ndarray:
        """The fixed end of every point of ``R``: the coordinate point ``κ`` (extension-valued) or nothing."""
        return _ext_point()[0] if self.ext else np.zeros((0, 4), dtype=np.uint32)

    def z(self, point: np.ndarray) -> np.ndarray:
        """``p_s (1 − p_s)``."""
        ps = point[self.s]
        return F.emul(ps, F.esub(F.eone(), ps))

    def phi_point(self, point: np.ndarray) -> np.ndarray:
        """The point of ``R`` whose value times :meth:`phi_scale` is ``Φ_T(p_A)``."""
        pa = point[list(self.A)] if self.A else np.zeros((0, 4), dtype=np.uint32)
        return np.concatenate([pa, _halves(self.b), self._tail_point()])

    def phi_scale(self) -> np.ndarray:
        """``2^b`` (times ``λ`` of the coordinate point when extension-valued)."""
        return F.emul(_scale(self.b), _ext_point()[1]) if self.ext else _scale(self.b)

    def phi(self, R: np.ndarray, point: np.ndarray) -> np.ndarray:
        """``Φ_T(p_A)`` from the randomizer table (prover, oracle)."""
        return F.emul(self.phi_scale(), mle.evaluate(R, self.phi_point(point)))

    def hat(self, T: np.ndarray, R: np.ndarray, point: np.ndarray) -> np.ndarray:
        """``T̂(p)``."""
        return F.eadd(mle.evaluate(T, point), F.emul(self.z(point), self.phi(R, point)))

    def settle_terms(self, point: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """``(tensor, point, coefficient)`` terms of the linear claim that settles ``T̂(p) = v``."""
        return [(self.tensor, point, F.eone()),
                (self.table, self.phi_point(point), F.emul(self.z(point), self.phi_scale()))]

    def permuted(self, tensor: str, perm: Sequence[int]) -> "Rule":
        """The rule of a relabelling ``y`` of this tensor with ``y``'s variable ``i`` = this one's
        ``perm[i]`` (same randomizer table)."""
        inv = {src: i for i, src in enumerate(perm)}
        return Rule(tensor, self.n, inv[self.s], tuple(inv[a] for a in self.A), self.table, self.b, self.ext)


CAPACITY = 1 << A_VARS  # base dimensions of Φ when nothing else is known: four randomized values
MAX_A = 12  # randomizer coordinates at most (R ≤ 2^(12+b) entries)
MAX_SELF = 3  # coordinates on x_s itself at most (each adds one to the degree of its readers' round)


def _coordinates(s: int, length: int) -> tuple[int, ...]:
    """``length`` randomizer coordinates: the variables just above ``s`` (as many as there are, up to
    ``length``), repeated round-robin when a small tensor has fewer (Φ then has degree > 1 in a
    variable; the space of such polynomials has ``Π (repeats + 1)`` dimensions). With no variable
    above (``s = 0``: a two-entry tensor, say) the coordinates are ``x_s`` itself, ``length`` times:
    ``Φ(x_s)`` of degree ``length``, which its readers' round pays for in degree (:attr:`Rule.self_degree`)."""
    if s == 0:
        return (0,) * length
    distinct = list(range(s - min(length, s), s))
    counts = [length // len(distinct) + (1 if i < length % len(distinct) else 0) for i in range(len(distinct))]
    return tuple(v for v, c in zip(distinct, counts) for _ in range(c))


def max_coordinates(s: int) -> int:
    """Coordinates a randomizer with blinding variable ``s`` may have."""
    return MAX_SELF if s == 0 else MAX_A


def coordinates_for(s: int, dims: int) -> int:
    """The fewest coordinates whose Φ spans at least ``dims`` base dimensions (at most
    :func:`max_coordinates`)."""
    for length in range(0, max_coordinates(s) + 1):
        if span(s, _coordinates(s, length)) >= dims:
            return length
    return max_coordinates(s)


def dims_needed(s: int, reveals: int) -> int:
    """Base dimensions of ``Φ`` a tensor revealed ``reveals`` times needs: four per value, and at
    least :data:`CAPACITY` unless the coordinates cost degree (``s = 0``)."""
    return 4 * reveals if s == 0 else max(CAPACITY, 4 * reveals)


def span(s: int, coords: tuple[int, ...]) -> int:
    """Base dimensions ``Φ`` spans over its coordinates (four per coordinate monomial when
    extension-valued)."""
    base = int(np.prod([coords.count(v) + 1 for v in set(coords)])) if coords else 1
    return base * (4 if is_ext(s) else 1)


def make_rule(tensor: str, n: int, s: int, length: int | None = None) -> Rule:
    """A fresh randomizer for ``tensor`` (``n`` variables) with blinding variable ``s`` and ``length``
    coordinates (default: enough for four randomized values)."""
    if not 0 <= s < n:
        raise ValueError(f"blinding variable {s} of {tensor!r} outside its {n} variables")
    if length is None:
        length = coordinates_for(s, CAPACITY)
    if not 0 <= length <= max_coordinates(s):
        raise ValueError(f"{length} randomizer coordinates for {tensor!r}: at most {max_coordinates(s)}")
    return Rule(tensor, n, s, _coordinates(s, length), blind_name(tensor), ext=is_ext(s))


def lengths_from_layout(names, log_sizes) -> dict[str, int]:
    """Per trace randomizer table, its variables beyond the summed ones, read off a commitment's
    tensor sizes: the coordinates (plus :data:`EXT_VARS` for an extension-valued one; the caller,
    who knows the blinding variable, takes them off: :func:`coordinates_of`)."""
    return {n: int(k) - B_VARS for n, k in zip(names, log_sizes) if is_blind_table(n) and not in_companion(n)}


def coordinates_of(s: int, length: int) -> int:
    """Coordinates of a randomizer with blinding variable ``s`` whose table has ``length`` variables
    beyond the summed ones (:func:`lengths_from_layout`)."""
    return max(0, length - (EXT_VARS if is_ext(s) else 0))


def sample_tables(rules: Mapping[str, Rule], rng) -> dict[str, np.ndarray]:
    """Fresh randomizer tables (field elements, uint32), one per source
    rule; ``rng`` is the OS CSPRNG (``field.SecureRng``) except in tests."""
    own = [r for r in rules.values() if r.table == blind_name(r.tensor)]
    sizes = [1 << r.r_vars for r in own]
    flat = F.random(rng, sum(sizes))  # one draw for all (a thousand small tables per proof)
    ends = np.cumsum(sizes)
    # field elements as uint32: canonical tables as they are (no signed conversion per table)
    return {r.table: flat[e - k:e] for r, k, e in zip(own, sizes, ends)}


# --- readers ---------------------------------------------------------------------------------------

View = Sequence["int | np.ndarray"]  # per variable of T: the sumcheck round binding it, or a fixed value


def blind_round(rule: Rule, view: View) -> int:
    """The sumcheck round that binds the blinding variable. ValueError if the view fixes ``x_s`` or
    binds a variable of ``x_A`` other than ``x_s`` itself in or after that round (``Φ`` would not be
    a constant-coefficient polynomial in that round)."""
    if len(view) != rule.n:
        raise ValueError(f"a view of {rule.tensor!r} covers {len(view)} of its {rule.n} variables")
    rs = view[rule.s]
    if not isinstance(rs, (int, np.integer)):
        raise ValueError(f"a reader of {rule.tensor!r} fixes its blinding variable")
    rs = int(rs)
    for a in rule.A:
        v = view[a]
        if a != rule.s and isinstance(v, (int, np.integer)) and int(v) >= rs:
            raise ValueError(f"a reader of {rule.tensor!r} binds a randomizer variable after the blinding one")
    return rs


def blinder(rule: Rule, R: np.ndarray, table: int, view: View) -> S.Blinder:
    """The sumcheck blinder of table ``table``, which reads ``T̂`` through ``view``."""
    rs = blind_round(rule, view)

    def coeff(point: np.ndarray) -> np.ndarray:
        pa = np.stack([point[int(view[a])] if isinstance(view[a], (int, np.integer)) else view[a]
                       for a in rule.A]) if rule.A else np.zeros((0, 4), dtype=np.uint32)
        full = np.concatenate([pa, np.tile(_HALF, (rule.b, 1)), rule._tail_point()])
        return F.emul(rule.phi_scale(), mle.evaluate(R, full))

    return S.Blinder(table, coeff, rs, rule.self_degree)


def rounds(n: int, offset: int = 0) -> list[int]:
    """A view piece: ``n`` variables bound by rounds ``offset … offset + n − 1``."""
    return list(range(offset, offset + n))


def fixed(point: np.ndarray) -> list[np.ndarray]:
    """A view piece: variables fixed to the coordinates of ``point``."""
    return [point[i] for i in range(point.shape[0])]


# --- producers and sums ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Libra:
    """``coef · Φ_T(p_A)`` added to a sumcheck's sum (see the module docstring)."""

    rule: Rule
    coef: np.ndarray
    point: np.ndarray  # a point of T (only its A coordinates matter)

    def width(self, n: int) -> int:
        """Sumcheck variables the table runs over (its last ``min(n, b)``)."""
        return min(n, self.rule.b)

    def term_coef(self, n: int) -> np.ndarray:
        """Coefficient of the table's term: ``coef · 2^−(n − m)`` (the table is constant in the first
        ``n − m`` variables) times ``2^(b − m)`` (the ``w`` variables it sums itself), times ``λ`` of
        the coordinate point when extension-valued."""
        m = self.width(n)
        scale = pow(2, self.rule.b - m, F.P) * pow(pow(2, n - m, F.P), F.P - 2, F.P) % F.P
        out = F.emul(self.coef, F.ext(scale))
        return F.emul(out, _ext_point()[1]) if self.rule.ext else out

    def tail(self, R: np.ndarray, n: int) -> np.ndarray:
        """The payback table ``L(x) = 2^−(b−m) Σ_{w'} R̃_T(p_A, x_last_m, w')`` over the sumcheck's last
        ``m`` variables only (it is constant in the others: a sumcheck "tail", prover side)."""
        m = self.width(n)
        pa = self.rule.phi_point(self.point)[: len(self.rule.A)]
        t = mle.bind_prefix(np.asarray(R, dtype=np.uint32), pa) if pa.shape[0] else F.embed(np.asarray(R, dtype=np.uint32))
        if self.rule.ext:  # the coordinate variables, last, read at κ
            t = t.reshape(1 << self.rule.b, 1 << EXT_VARS, 4)
            kappa = mle.eq_table(_ext_point()[0])
            t = np.stack([F.edot_ext(kappa, t[i]) for i in range(t.shape[0])])
        t = t.reshape(1 << m, 1 << (self.rule.b - m), 4)
        if self.rule.b > m:  # average the trailing w' (the 2^(b−m) goes into the coefficient)
            s = np.zeros((1 << m, 4), dtype=np.uint64)
            for j in range(t.shape[1]):
                s = (s + t[:, j].astype(np.uint64)) % F.P
            inv = pow(1 << (self.rule.b - m), F.P - 2, F.P)
            t = F.emul(s.astype(np.uint32), F.ext(inv))
        else:
            t = t.reshape(1 << m, 4)
        return np.ascontiguousarray(t)

    def claim_point(self, rho: np.ndarray) -> np.ndarray:
        """The point of ``R`` whose value is the table's final value."""
        n = rho.shape[0]
        m = self.width(n)
        pa = self.rule.phi_point(self.point)[: len(self.rule.A)]
        return np.concatenate([pa, rho[n - m:], np.tile(_HALF, (self.rule.b - m, 1)), self.rule._tail_point()])
