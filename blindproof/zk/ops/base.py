"""The op-proof framework: layout, claims, contexts, proof containers and the shared gadgets.

Layout. Every tensor (trace tensor, witness, weight, auxiliary column) is committed in canonical form:
each dimension zero-padded to a power of two, flattened row-major, signed integers mapped to the field
with ``field.from_signed`` (:func:`canonical`). A tensor of shape ``(d_0, …, d_k)`` is therefore an MLE
over ``Σ_i ceil(log2 d_i)`` variables, the first ones picking ``d_0`` (MSB-first, see ``zk.iop.mle``).
Names: trace tensors by their program name, op witnesses ``"<output>/<witness>"`` as
``quant.reference.run_program`` records them (:func:`witness_name`), weights ``"w:<name>"``
(:func:`weight_name`), auxiliary columns an op commits for its gadgets ``"<output>~<what>"``.

Claims. ``Claim(tensor, point, value)`` states ``MLE(canonical(tensor))(point) = value``; points are
extension points ``(n, 4)``, values ``(4,)``. Claims pile up in a :class:`ClaimSet`; at the end a
:class:`Settler` checks them (the verifier evaluates public tensors itself, committed ones go to the
polynomial commitment; :class:`OracleSettler` evaluates the prover's actual tables, for tests).
Padding is zero, a constant is not: a constant ``c`` on a padded tensor is ``c · ind`` with ``ind`` the
public indicator of real entries (:func:`indicator_eval`, :func:`indicator_table`).

Op interface (one module per op family, registered by kind in ``blindproof.zk.ops``)::

    shapes(op, in_shapes, spec) -> dict[str, tuple]      # output, witnesses and aux columns -> shape
    aux(ctx: ProverContext, op) -> dict[str, np.ndarray]  # aux columns (int64) from the trace values
    prove(ctx: ProverContext, op, out_claims) -> (OpProof, in_claims)
    verify(ctx: VerifierContext, op, out_claims, proof: OpProof) -> in_claims

``shapes`` is pure (the verifier derives every committed shape from the public input shapes). ``aux``
is called before anything is committed: every column an op needs (limbs, multiplicities, clamp
excesses) is committed with the trace, before any challenge ("commit everything"). ``prove`` receives
exactly ONE claim on the op's output (the program merges several with :func:`prove_reduce` first); it
either reduces it to claims on its inputs, witnesses, weights and aux columns, or returns it unchanged
for the commitment to open (the ops that prove their relation on the committed output); the program
routes each claim to the op that produced the tensor or to the settler. A deferred lookup may read
only the op's own tensors (or public ones): an input computed by an earlier op must be tied to the op
at op time (``program._Run.check_deferred``). ``verify`` mirrors ``prove`` message for message
and raises :class:`Reject` on any failure (the top-level verifier turns it into a ``VerifyResult`` with
``verdict.guarded``). Transcript discipline: both sides call the same helpers in the same order.

Proof container. An :class:`OpProof` is an ordered list of parts (extension arrays or serialized
sumcheck/lookup proofs). The prover appends with ``put_*``; the verifier consumes them in the same
order through :class:`ProofReader` (``take_ext``, ``take_sumcheck``, ``take_lookup``, then ``done``),
which rejects missing, extra or malformed parts. ``OpProof.to_bytes``/``from_bytes`` are bounded.

Gadgets (each with a prover and a verifier half that take an ``OpProof`` / ``ProofReader``):

- :func:`prove_sum` / :func:`verify_sum`: a sumcheck over named tables (a thin wrapper of
  ``zk.iop.sumcheck``) returning the random point and the tables' values there.
- :func:`prove_zero_check` / :func:`verify_zero_check`: ``Σ_t c_t Π f ≡ 0`` on the hypercube (degree
  ≤ 2 per term) by a sumcheck of ``eq(τ, x) · Σ_t c_t Π f(x)`` at a fresh random ``τ``.
- :class:`RangeCheck`: every real entry of a tensor lies in ``[lo, hi]`` (shifted by ``lo``, split in
  16-bit limbs, two-sided when ``hi − lo + 1`` is not a power of two; padding is handled by ``ind``).
- :class:`FunctionLookup`: every (input, output) pair of two tensors is a row of a public table
  (width-2 logUp lookup). The padded pair ``(0, 0)`` must be a row of the table.
- :class:`Clamp`: ``out = clamp(q, lo, hi)`` by ``q − out = d⁺ − d⁻``, ``d⁺, d⁻ ≥ 0``,
  ``d⁺ (hi − out) = 0``, ``d⁻ (out − lo) = 0``, ``out ∈ [lo, hi]``.
- :class:`Checks`: a bundle of range checks and function lookups proved together — one logUp-GKR
  lookup per table, and the aux columns (limbs, multiplicities) they need.
- :func:`prove_reduce` / :func:`verify_reduce`: several claims on one tensor → one claim (a degree-2
  sumcheck against ``eq(r_0, ·) + Σ_{i≥1} α_i eq(r_i, ·)``).
- :class:`LookupBatch`: when a context carries one (the program sets it), ``Checks`` defer their
  lookups to it and the program proves them all at the end, one lookup per table and pack of groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Mapping, Sequence

import numpy as np

from blindproof.zk.field import babybear as F
from blindproof.zk.iop import lookup as L
from blindproof.zk.iop import mle
from blindproof.zk.iop import sumcheck as S
from blindproof.zk.iop import blind as BL
from blindproof.zk.field.encoding import ProofFormatError, Reader, Writer
from blindproof.quant.spec import Op, QuantSpec
from blindproof.zk.iop.transcript import Transcript
from blindproof.zk.iop.layout import n_vars, canonical, indicator_eval
from blindproof.zk.iop.claims import Reject, Claim, LinearClaim

LIMB_BITS = 16
LOOKUP_ERROR_LOG2 = -102.0  # the batched lookups' single-repetition logUp error stays ≤ 2^-102
MERGED_LEAVES_LOG = 22  # batched lookups share one GKR while their trees hold ≤ 2^22 leaves
MAX_PARTS = 4096
CLAMP_BITS_MAX = 29  # a clamp's excesses d± < 2^29: with lo ≤ 0 ≤ hi every |q| < 2^29 is covered, and
# hi − lo + 2^30 ≤ p keeps the clamp unique mod p for output ranges up to p − 2^30 ≈ 0.875·2^30 wide
MAX_PART_BYTES = 1 << 26
_MAGIC = b"BPOP"
_VERSION = 1


# --- contexts -------------------------------------------------------------------------------------

@dataclass
class VerifierContext:
    """What a verifier knows: the transcript, the spec, every committed tensor's shape, the public
    tensors (program inputs and outputs) and the position offset ``start``."""

    transcript: Transcript
    spec: QuantSpec
    shapes: Mapping[str, tuple[int, ...]]
    public: Mapping[str, np.ndarray] = field(default_factory=dict)
    start: int = 0
    lookups: "LookupBatch | None" = None  # set by the program: Checks defer their lookups to it
    masks: object = None  # set by the program (zkmask.ProverMasks / VerifierMasks): sumchecks run masked
    blind: Mapping[str, "BL.Rule"] | None = None  # set by the program: tensors read as randomized extensions
    blind_claims: list = field(default_factory=list)  # claims on randomizer tables the gadgets leave
    one_opening: bool = False  # every committed table is settled by one opening (the well-formedness proof)

    def rule(self, name: str) -> "BL.Rule | None":
        """The randomizer rule of a tensor, or None (not blinded)."""
        return None if self.blind is None else self.blind.get(name)

    def shape(self, name: str) -> tuple[int, ...]:
        """Shape of a tensor; Reject if unknown (a verifier never guesses)."""
        try:
            return tuple(self.shapes[name])
        except KeyError:
            raise Reject(f"unknown tensor {name!r}") from None

    def vars(self, name: str) -> int:
        """Number of MLE variables of a tensor."""
        return n_vars(self.shape(name))


@dataclass
class ProverContext(VerifierContext):
    """The verifier's knowledge plus every value: ``values[name]`` as int64 arrays (trace tensors,
    witnesses, weights ``"w:<name>"``, aux columns). Canonical tables are built once and cached."""

    values: Mapping[str, np.ndarray] = field(default_factory=dict)
    strict: bool = True  # False only in tests of cheating provers: self-check failures do not raise
    _tables: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def value(self, name: str) -> np.ndarray:
        """The integer values of a tensor."""
        try:
            return self.values[name]
        except KeyError:
            raise ValueError(f"the prover has no values for tensor {name!r}") from None

    def table(self, name: str) -> np.ndarray:
        """Canonical base table of a tensor (cached)."""
        t = self._tables.get(name)
        if t is None:
            t = canonical(self.value(name))
            self._tables[name] = t
        return t

    def evaluate(self, name: str, point: np.ndarray) -> np.ndarray:
        """MLE of a tensor at ``point``."""
        return mle.evaluate(self.table(name), point)

    def hat(self, name: str, point: np.ndarray) -> np.ndarray:
        """What a claim on the tensor states at ``point``: ``T̂(point)`` if blinded, else the MLE."""
        r = self.rule(name)
        if r is None:
            return self.evaluate(name, point)
        return r.hat(self.table(name), self.table(r.table), point)


def claim_of(ctx: ProverContext, name: str, point: np.ndarray) -> Claim:
    """The honest claim on a tensor at a point."""
    return Claim(name, point, ctx.hat(name, point))


# --- proof container ------------------------------------------------------------------------------

@dataclass
class OpProof:
    """An op proof: an ordered list of parts, each an (n, 4) extension array or a byte string."""

    parts: list = field(default_factory=list)

    def put_ext(self, arr: np.ndarray) -> None:
        """Append extension values (any leading shape; stored as (n, 4))."""
        self.parts.append(F._check_ext(arr, "OpProof.put_ext").reshape(-1, 4).copy())

    def put_bytes(self, data: bytes) -> None:
        """Append a serialized sub-proof."""
        self.parts.append(bytes(data))

    def write(self, w: Writer) -> None:
        """Append to a writer: count, then per part a tag (0 ext, 1 bytes) and the body."""
        w.u32(len(self.parts))
        for p in self.parts:
            if isinstance(p, bytes):
                w.u8(1)
                w.bytes_(p)
            else:
                w.u8(0)
                w.ext_array(p)

    @staticmethod
    def read(r: Reader) -> "OpProof":
        """Read a proof written by :meth:`write` (bounded)."""
        n = r.u32(max_value=MAX_PARTS)
        parts: list = []
        for _ in range(n):
            tag = r.u8(max_value=1)
            parts.append(r.bytes_(MAX_PART_BYTES) if tag else r.ext_array(MAX_PART_BYTES // 16))
        return OpProof(parts)

    def to_bytes(self) -> bytes:
        """Self-describing bytes."""
        w = Writer()
        w.header(_MAGIC, _VERSION)
        self.write(w)
        return w.getvalue()

    @staticmethod
    def from_bytes(data: bytes) -> "OpProof":
        """Parse :meth:`to_bytes` output; ProofFormatError on malformed input."""
        r = Reader(data, max_total=MAX_PART_BYTES)
        r.header(_MAGIC, (_VERSION,))
        proof = OpProof.read(r)
        r.finish()
        return proof

    def size_bytes(self) -> int:
        """Serialized size."""
        return len(self.to_bytes())


class ProofReader:
    """Consumes an :class:`OpProof` part by part; every mismatch is a :class:`Reject`."""

    def __init__(self, proof: OpProof) -> None:
        if not isinstance(proof, OpProof):
            raise Reject(f"expected an OpProof, got {type(proof).__name__}")
        self._parts = list(proof.parts)
        self._i = 0

    def _next(self, what: str):
        if self._i >= len(self._parts):
            raise Reject(f"proof ends early: {what} missing")
        p = self._parts[self._i]
        self._i += 1
        return p

    def take_ext(self, n: int) -> np.ndarray:
        """Exactly ``n`` extension values, (n, 4)."""
        p = self._next(f"{n} extension values")
        if isinstance(p, bytes) or p.shape != (n, 4):
            raise Reject(f"expected {n} extension values")
        try:
            return F._check_ext(p, "proof values")
        except F.FieldError as exc:
            raise Reject(str(exc)) from None

    def take_bytes(self) -> bytes:
        """A serialized sub-proof."""
        p = self._next("a sub-proof")
        if not isinstance(p, bytes):
            raise Reject("expected a serialized sub-proof")
        return p

    def take_sumcheck(self, spec: S.SumcheckSpec) -> S.SumcheckProof:
        """A sumcheck proof shaped by ``spec``."""
        try:
            return S.SumcheckProof.from_bytes(self.take_bytes(), spec)
        except ProofFormatError as exc:
            raise Reject(f"malformed sumcheck: {exc}") from None

    def take_lookup(self, st: "L.LookupStatement | Sequence[L.LookupStatement]") -> L.LookupProof:
        """A lookup proof for statement ``st`` (or for several, :func:`lookup.prove_many`)."""
        try:
            return L.LookupProof.from_bytes(self.take_bytes(), st)
        except ProofFormatError as exc:
            raise Reject(f"malformed lookup: {exc}") from None

    def done(self) -> None:
        """Reject unread parts."""
        if self._i != len(self._parts):
            raise Reject(f"{len(self._parts) - self._i} unexpected extra proof parts")


# --- sumcheck over named tables ------------------------------------------------------------------

Terms = Sequence[tuple[object, Sequence[int]]]


Read = tuple[int, str, "BL.View"]  # (table index, tensor, how the sumcheck reads the tensor's variables)


def _blinded(ctx: VerifierContext, reads: Sequence[Read]) -> list[tuple[int, "BL.Rule", "BL.View"]]:
    return [(k, r, view) for k, name, view in reads if (r := ctx.rule(name)) is not None]


def libra_for(ctx: VerifierContext, claim: Claim, coef: np.ndarray | None = None) -> list["BL.Libra"]:
    """The randomizer a sum reducing ``claim`` must pay back (``coef`` times it; none if the claim is
    plain or its tensor is not blinded)."""
    r = ctx.rule(claim.tensor)
    if r is None or claim.plain:
        return []
    c = r.z(claim.point)
    return [BL.Libra(r, c if coef is None else F.emul(coef, c), claim.point)]


def _with_libra(n: int, k0: int, terms: Terms, libra: Sequence["BL.Libra"]) -> list:
    return list(terms) + [(lb.term_coef(n), (k0 + i,)) for i, lb in enumerate(libra)]


_INV2 = F.ext((F.P + 1) // 2)


def _halved(terms: Terms) -> list:
    return [(F.emul(_INV2, _ext_coeff(c)), f) for c, f in terms]


def _dummy_variable(tables: Sequence[np.ndarray], terms: Terms) -> tuple[list[np.ndarray], list]:
    """A sum without variables that must pay a randomizer back gets one dummy variable (Libra): every
    table constant in it, every term halved."""
    return [np.repeat(np.asarray(t), 2, axis=0) for t in tables], _halved(terms)


def _libra_claims(ctx: VerifierContext, libra: Sequence["BL.Libra"], point: np.ndarray,
                  finals: np.ndarray) -> None:
    for lb, v in zip(libra, finals):
        ctx.blind_claims.append(Claim(lb.rule.table, lb.claim_point(point), v, plain=True))


def prove_sum(ctx: VerifierContext, proof: OpProof, n: int, tables: Sequence[np.ndarray], terms: Terms,
              claim: np.ndarray, reads: Sequence[Read] = (), libra: Sequence["BL.Libra"] = ()
              ) -> tuple[np.ndarray, np.ndarray]:
    """Prove ``claim = Σ_x Σ_t c_t Π_k tables[k](x) + Σ libra``; returns (point (n, 4), the values of
    ``tables`` there (K, 4)). When the context carries masks (program proofs) and ``n > 0``, the
    sumcheck is zero-knowledge masked: the mask's value is reduced to a claim on its committed table,
    kept in ``ctx.masks``. ``reads`` name the tensors some tables hold and how (a blinded tensor is
    read as its randomized extension, so its final value is ``T̂``); ``libra`` pays back the
    randomizers inside ``claim`` (their final values become claims on the randomizer tables)."""
    n0 = n
    if libra and n == 0:
        tables, terms = _dummy_variable(tables, terms)
        n = 1
    blinded = _blinded(ctx, reads)
    blinders = [BL.blinder(r, ctx.table(r.table), k, view) for k, r, view in blinded]
    k0 = len(tables)
    # the payback tables depend on the last few variables only: passed compact (sumcheck "tails")
    tails = {k0 + i: lb.tail(ctx.table(lb.rule.table), n) for i, lb in enumerate(libra)}
    tables = list(tables) + [None] * len(libra)
    terms = _with_libra(n, k0, terms, libra)
    spec = S.SumcheckSpec.make(n, len(tables), terms, [(b.table, b.round, b.self_degree) for b in blinders])
    if ctx.masks is None or n == 0:
        out = S.prove(spec, tables, claim, ctx.transcript, blinders=blinders, tails=tails)
        proof.put_bytes(out.proof.to_bytes(spec))
    else:
        name, mask = ctx.masks.take(n, spec.round_degrees)
        out = S.prove(spec, tables, claim, ctx.transcript, mask=mask, blinders=blinders, tails=tails)
        proof.put_bytes(out.proof.to_bytes(spec))
        ctx.masks.add_claim(name, n, mask.degree, out.point, out.proof.mask_eval)
    _libra_claims(ctx, libra, out.point, out.final_evals[k0:])
    return out.point[:n0], out.final_evals[:k0]


def verify_sum(ctx: VerifierContext, rd: ProofReader, n: int, n_tables: int, terms: Terms,
               claim: np.ndarray, reads: Sequence[Read] = (), libra: Sequence["BL.Libra"] = ()
               ) -> tuple[np.ndarray, np.ndarray]:
    """Check a :func:`prove_sum`; returns (point, claimed table values). The caller must check (or
    turn into claims) every table value. With masks in the context a masked proof is required."""
    n0 = n
    if libra and n == 0:
        terms = _halved(terms)
        n = 1
    blinded = [(k, BL.blind_round(r, view), r.self_degree) for k, r, view in _blinded(ctx, reads)]
    terms = _with_libra(n, n_tables, terms, libra)
    spec = S.SumcheckSpec.make(n, n_tables + len(libra), terms, blinded)
    sc = rd.take_sumcheck(spec)
    masked = ctx.masks is not None and n > 0
    if masked and (sc.mask_sum is None or sc.mask_eval is None):
        raise Reject("sumcheck: a masked (zero-knowledge) proof is required")
    if not masked and sc.mask_sum is not None:
        raise Reject("unexpected sumcheck mask")
    point, final, rho = S.verify_rounds(spec, claim, sc, ctx.transcript)
    expect = spec.compose(sc.final_evals)
    if rho is not None:
        expect = F.eadd(expect, F.emul(rho, sc.mask_eval))
    if not np.array_equal(expect, final):
        raise Reject("sumcheck: final values do not match the last round polynomial")
    if masked:
        try:
            ctx.masks.add_claim(ctx.masks.next_name(), n, spec.degree, point, sc.mask_eval)
        except F.FieldError:  # a challenge with r^(2^b) = −1: negligible, never accepted
            raise Reject("sumcheck mask: a challenge without a geometric point") from None
    _libra_claims(ctx, libra, point, sc.final_evals[n_tables:])
    return point[:n0], sc.final_evals[:n_tables]


def identity_reads(names: Sequence[str | None], n: int, first: int = 0) -> list[Read]:
    """Reads of tables that hold whole tensors over the sumcheck's ``n`` variables (``None``: public)."""
    return [(first + k, name, BL.rounds(n)) for k, name in enumerate(names) if name is not None]


# --- linear relations between revealed values ---------------------------------------------------------

Relation = Sequence[tuple[object, str, np.ndarray, bool]]  # (coefficient, tensor, point, randomized)


def _relation_terms(ctx: VerifierContext, terms: Relation) -> list[tuple[str, np.ndarray, np.ndarray]]:
    out = []
    for c, name, point, randomized in terms:
        r = ctx.rule(name)
        if r is None or not randomized:
            continue
        coef = F.emul(_ext_coeff(c), F.emul(r.z(point), r.phi_scale()))
        out.append((r.table, r.phi_point(point), coef))
    return out


def _ext_coeff(c) -> np.ndarray:
    if isinstance(c, (int, np.integer)):
        return F.ext(int(c) % F.P)
    return F._check_ext(np.asarray(c), "coefficient").reshape(4)


def _relation_groups(ctx: VerifierContext, lin: list) -> list[list]:
    """The relation's randomizer terms as one group: one δ, settled as one linear claim by the opening
    that holds them all. A relation whose tables live in two openings (a weight's randomizer is in the
    weight opening's companion, the others in the trace commitment; the well-formedness proof has one
    opening for all) is refused: its δ would have to be sent per opening, and a part with a single
    term, ``c·z·Φ_T(p)``, gives ``T̃(p)`` away beside the claim ``T̂(p)``."""
    if lin and not ctx.one_opening and len({BL.in_companion(t[0]) for t in lin}) > 1:
        raise Reject("a linear relation spans the trace and weight openings")
    return [lin] if lin else []


def prove_relation(ctx: ProverContext, proof: OpProof, terms: Relation, label: str) -> np.ndarray:
    """For a linear relation ``Σ c·T̃(p) = known`` between values the proof reveals as ``T̂(p)``:
    send ``δ = Σ c·(T̂(p) − T̃(p))`` (a linear form of the randomizer tables, settled as one
    :class:`LinearClaim` by the opening that holds them: see :func:`_relation_groups`) so that
    ``Σ c·T̂(p) = known + δ``.
    Nothing is sent when no term is randomized (δ = 0)."""
    total = F.ezero()
    for group in _relation_groups(ctx, _relation_terms(ctx, terms)):
        delta = F.ezero()
        for name, pt, coef in group:
            delta = F.eadd(delta, F.emul(coef, ctx.evaluate(name, pt)))
        proof.put_ext(delta[None])
        ctx.transcript.absorb_ext(f"ops/{label}/delta", delta)
        ctx.blind_claims.append(LinearClaim(tuple(group), delta))
        total = F.eadd(total, delta)
    return total


def verify_relation(ctx: VerifierContext, rd: "ProofReader", terms: Relation, label: str) -> np.ndarray:
    """Mirror of :func:`prove_relation`: returns δ (the sum over the groups)."""
    total = F.ezero()
    for group in _relation_groups(ctx, _relation_terms(ctx, terms)):
        delta = rd.take_ext(1)[0]
        ctx.transcript.absorb_ext(f"ops/{label}/delta", delta)
        ctx.blind_claims.append(LinearClaim(tuple(group), delta))
        total = F.eadd(total, delta)
    return total


def _eq_terms(terms: Terms) -> list[tuple[object, tuple[int, ...]]]:
    out = []
    for c, fs in terms:
        if not 1 <= len(fs) <= 2:
            raise ValueError("zero-check terms need 1 or 2 factors (eq makes the degree ≤ 3)")
        out.append((c, (0, *(k + 1 for k in fs))))
    return out


def prove_zero_check(ctx: VerifierContext, proof: OpProof, n: int, tables: Sequence[np.ndarray],
                     terms: Terms, names: Sequence[str | None] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Prove ``Σ_t c_t Π_k tables[k] ≡ 0`` on the hypercube; returns (point, table values (K, 4)).
    ``names[k]`` is the tensor table ``k`` holds whole (``None``: public), so blinded ones are read
    randomized."""
    tau = ctx.transcript.challenge_exts("ops/zero_check_tau", n)
    eq = mle.eq_table(tau)
    point, finals = prove_sum(ctx, proof, n, [eq, *tables], _eq_terms(terms), F.ezero(),
                              reads=identity_reads(names, n, first=1))
    return point, finals[1:]


def verify_zero_check(ctx: VerifierContext, rd: ProofReader, n: int, n_tables: int,
                      terms: Terms, names: Sequence[str | None] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Check a :func:`prove_zero_check`; returns (point, claimed table values)."""
    tau = ctx.transcript.challenge_exts("ops/zero_check_tau", n)
    point, finals = verify_sum(ctx, rd, n, n_tables + 1, _eq_terms(terms), F.ezero(),
                               reads=identity_reads(names, n, first=1))
    if not np.array_equal(finals[0], mle.eq_eval(tau, point) if n else F.eone()):
        raise Reject("zero-check: wrong eq value")
    return point, finals[1:]


# --- several claims on one tensor -> one -------------------------------------------------------------

def _reduce_libra(ctx: VerifierContext, claims: Sequence[Claim], alphas) -> list["BL.Libra"]:
    out: list = []
    for a, c in zip(alphas, claims):
        out += libra_for(ctx, c, a)
    return out


def prove_reduce(ctx: ProverContext, proof: OpProof, claims: Sequence[Claim]) -> Claim:
    """Reduce claims on one tensor to a single claim (a degree-2 sumcheck against
    ``eq(r_0, ·) + Σ_{i≥1} α_i eq(r_i, ·)``, paying back the randomizers of randomized claims);
    a single claim passes through, and nothing is written then."""
    _check_same_tensor(claims)
    if len(claims) == 1:
        return claims[0]
    name = claims[0].tensor
    n = claims[0].point.shape[0]
    alphas = _reduce_absorb(ctx, claims)
    w = _reduce_weights(claims, alphas)
    total = _combine_values(claims, alphas)
    point, finals = prove_sum(ctx, proof, n, [ctx.table(name), w], [(1, (0, 1))], total,
                              reads=[(0, name, BL.rounds(n))], libra=_reduce_libra(ctx, claims, alphas))
    return Claim(name, point, finals[0])


def verify_reduce(ctx: VerifierContext, rd: ProofReader, claims: Sequence[Claim]) -> Claim:
    """Check a :func:`prove_reduce`; returns the single claim."""
    _check_same_tensor(claims)
    if len(claims) == 1:
        return claims[0]
    n = claims[0].point.shape[0]
    if any(c.point.shape[0] != n for c in claims):
        raise Reject(f"claims on {claims[0].tensor!r} have different numbers of coordinates")
    alphas = _reduce_absorb(ctx, claims)
    point, finals = verify_sum(ctx, rd, n, 2, [(1, (0, 1))], _combine_values(claims, alphas),
                               reads=[(0, claims[0].tensor, BL.rounds(n))],
                               libra=_reduce_libra(ctx, claims, alphas))
    want = F.ezero()
    for a, c in zip(alphas, claims):
        want = F.eadd(want, F.emul(a, mle.eq_eval(c.point, point)))
    if not np.array_equal(finals[1], want):
        raise Reject("claim reduction: wrong weight value")
    return Claim(claims[0].tensor, point, finals[0])


def _check_same_tensor(claims: Sequence[Claim]) -> None:
    if not claims:
        raise ValueError("no claims to reduce")
    if len({c.tensor for c in claims}) != 1:
        raise ValueError("claims to reduce must be on one tensor")


def _reduce_absorb(ctx: VerifierContext, claims: Sequence[Claim]) -> list[np.ndarray]:
    ctx.transcript.absorb_bytes("ops/reduce", claims[0].tensor.encode())
    for c in claims:
        ctx.transcript.absorb_ext("ops/reduce_point", c.point)
        ctx.transcript.absorb_ext("ops/reduce_value", c.value)
    # one independent coefficient per further claim (not powers of one α, whose error grows with the
    # number of claims while the soundness count charges each challenge a fixed degree)
    if len(claims) == 1:
        return [F.eone()]
    alphas = ctx.transcript.challenge_exts("ops/reduce_alpha", len(claims) - 1)
    return [F.eone(), *alphas]


def _reduce_weights(claims: Sequence[Claim], alphas: Sequence[np.ndarray]) -> np.ndarray:
    w = None
    for a, c in zip(alphas, claims):
        t = F.emul(mle.eq_table(c.point), a[None, :])
        w = t if w is None else F.eadd(w, t)
    return w


def _combine_values(claims: Sequence[Claim], alphas: Sequence[np.ndarray]) -> np.ndarray:
    total = F.ezero()
    for a, c in zip(alphas, claims):
        total = F.eadd(total, F.emul(a, c.value))
    return total


# --- range checks and function lookups ------------------------------------------------------------

def small_limbs(shape: Sequence[int]) -> int:
    """A limb width for range checks of a tensor of ``shape``: 8 bits up to 2^13 entries (more limbs,
    but 256-row tables instead of 2^16-row ones, which would dominate a small lookup), else 16."""
    return 8 if n_vars(shape) <= 13 else LIMB_BITS


def _limb_widths(bits: int, limb_bits: int = LIMB_BITS) -> list[int]:
    """The fewest limbs of ≤ ``limb_bits`` bits, of (nearly) equal width, least significant first:
    small limbs keep the range tables small (23 bits -> 12 + 11, not 16 + 7)."""
    k = -(-bits // limb_bits)
    base, extra = divmod(bits, k)
    return [base + 1] * extra + [base] * (k - extra)


@lru_cache(maxsize=32)
def interval_table(lo: int, hi: int) -> L.LookupTable:
    """The table ``lo … hi`` padded to a power of two by repeating ``hi`` (a one-column lookup of
    the tensor itself proves ``lo ≤ v ≤ hi``)."""
    n = 1 << max(0, (hi - lo).bit_length())
    col = np.full(n, hi, dtype=np.int64)
    col[: hi - lo + 1] = np.arange(lo, hi + 1)
    return L.LookupTable(f"interval[{lo},{hi}]", (F.from_signed(col),))


@dataclass(frozen=True)
class RangeCheck:
    """Every real entry of ``tensor`` (shape ``shape``) lies in ``[lo, hi]``.

    ``u = v − lo·ind`` (and, unless ``hi − lo + 1`` is a power of two, also ``hi·ind − v``) is split
    into limbs of ≤ 16 bits, each committed as an aux column ``"<tag>.<side><k>"`` and looked up in a
    range table; the recomposition is checked at a random point with the public indicator. With two
    sides, ``u₁ + u₂ = hi − lo`` over the integers needs ``2^(bits+1) < p``, so ``bits ≤ 29``.
    Shortcuts (no aux limbs, :meth:`direct`): ``lo = 0``, ``hi = 2^b − 1``, ``b ≤ 16``: the tensor is
    looked up in ``range<b>``; ``lo ≤ 0 ≤ hi`` and ``hi − lo < 2^16``: in :func:`interval_table`
    (the padding zeros are in both). ``plus`` names tensors added to ``tensor``: the checked value
    is their sum (limbs are then always used)."""

    tag: str
    tensor: str
    shape: tuple[int, ...]
    lo: int
    hi: int
    plus: tuple[str, ...] = ()
    limb_bits: int = LIMB_BITS  # width of limbs and the largest direct range table (≤ 16)

    def __post_init__(self) -> None:
        if self.hi < self.lo:
            raise ValueError(f"range check of {self.tensor!r}: empty range [{self.lo}, {self.hi}]")
        if max(abs(self.lo), abs(self.hi)) >= F.P:
            raise ValueError(f"range check of {self.tensor!r}: bounds must be below p")
        if len(self.sides()) == 2 and self.bits > 29:
            raise ValueError(f"range check of {self.tensor!r}: [{self.lo}, {self.hi}] is too wide for a "
                             "two-sided check (needs ≤ 29 bits)")
        if self.bits > 30:
            raise ValueError(f"range check of {self.tensor!r}: more than 30 bits")
        if not 1 <= self.limb_bits <= LIMB_BITS:
            raise ValueError(f"range check of {self.tensor!r}: limb width must be 1..{LIMB_BITS}")

    @property
    def bits(self) -> int:
        """Bits of the shifted value ``v − lo`` (at least 1)."""
        return max(1, (self.hi - self.lo).bit_length())

    def sides(self) -> tuple[int, ...]:
        """0: ``v − lo``; 1: ``hi − v`` (only when the width is not a power of two)."""
        return (0,) if (self.hi - self.lo + 1) == 1 << self.bits else (0, 1)

    def _range_direct(self) -> bool:
        return not self.plus and self.lo == 0 and self.sides() == (0,) and self.bits <= self.limb_bits

    def _interval_direct(self) -> bool:
        return (not self.plus and self.limb_bits == LIMB_BITS and self.lo <= 0 <= self.hi
                and self.bits <= LIMB_BITS)

    def direct(self) -> bool:
        """True when the tensor itself is looked up (no aux limbs)."""
        return self._range_direct() or self._interval_direct()

    def tables(self) -> list[tuple[str, L.LookupTable]]:
        """(column, table) of every lookup this check needs."""
        if self._range_direct():
            return [(self.tensor, L.LookupTable.range(self.bits))]
        if self._interval_direct():
            return [(self.tensor, interval_table(self.lo, self.hi))]
        return [(n, L.LookupTable.range(b)) for n, b, _, _ in self.limbs()]

    def summands(self) -> tuple[str, ...]:
        """The tensors whose sum is checked."""
        return (self.tensor, *self.plus)

    def limbs(self) -> list[tuple[str, int, int, int]]:
        """(column name, bit width, bit offset, side) of every limb; the direct case names the tensor."""
        if self.direct():
            return [(self.tensor, self.bits, 0, 0)]
        out = []
        for side in self.sides():
            off = 0
            for k, b in enumerate(_limb_widths(self.bits, self.limb_bits)):
                out.append((f"{self.tag}.{side}{k}", b, off, side))
                off += b
        return out

    def columns(self) -> dict[str, tuple[int, ...]]:
        """Aux columns this check commits (name -> shape)."""
        return {} if self.direct() else {n: self.shape for n, _, _, _ in self.limbs()}

    def relation(self, side: int, tau: np.ndarray) -> "Relation":
        """The recomposition of one side as a linear relation at ``tau``: side 0 ``Σ summands − Σ 2^off
        limbs = lo·ind``, side 1 ``−Σ summands − Σ 2^off limbs = −hi·ind``."""
        sign = 1 if side == 0 else -1
        out: list = [(sign, n, tau, True) for n in self.summands()]
        out += [(-(1 << off), n, tau, True) for n, _, off, s in self.limbs() if s == side]
        return out

    def witness(self, v: np.ndarray, strict: bool = True) -> dict[str, np.ndarray]:
        """Aux limb values for tensor values ``v``; raises ValueError if an entry is out of range
        (``strict=False``, for tests of cheating provers: the top limb takes whatever is left)."""
        v = np.asarray(v, dtype=np.int64)
        if v.shape != self.shape:
            raise ValueError(f"range check of {self.tensor!r}: values have shape {v.shape}, "
                             f"expected {self.shape}")
        if strict and v.size and (v.min() < self.lo or v.max() > self.hi):
            bad = v[(v < self.lo) | (v > self.hi)][0]
            raise ValueError(f"range check of {self.tensor!r}: value {int(bad)} outside "
                             f"[{self.lo}, {self.hi}]")
        if self.direct():
            return {}
        out = {}
        for side in self.sides():
            u = v - self.lo if side == 0 else self.hi - v
            widths = _limb_widths(self.bits, self.limb_bits)
            off = 0
            for k, b in enumerate(widths):
                top = k == len(widths) - 1
                out[f"{self.tag}.{side}{k}"] = (u >> off) if top and not strict else (u >> off) & ((1 << b) - 1)
                off += b
        return out


def _lenient_multiplicities(table: L.LookupTable, cols: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """Multiplicities counting only the rows that are in the table (a cheating prover's best try)."""
    index = {tuple(int(c[j]) for c in table.columns): j for j in range(table.columns[0].shape[0])}
    counts = np.zeros(table.columns[0].shape[0], dtype=np.int64)
    for group in cols:
        for row in zip(*(np.asarray(c).tolist() for c in group)):
            j = index.get(tuple(row))
            if j is not None:
                counts[j] += 1
    return counts


@dataclass(frozen=True)
class FunctionLookup:
    """Every pair ``(inputs[0][i], inputs[1][i])`` (both of ``shape``) is a row of ``table``
    (a width-2 ``LookupTable``). Padding pairs are ``(0, 0)``, which must be a row of the table."""

    tensors: tuple[str, str]
    shape: tuple[int, ...]
    table: L.LookupTable


@dataclass
class Checks:
    """Range checks and function lookups proved together: limb recompositions at random points, then
    one logUp-GKR lookup per table (groups chunked by ``lookup.MAX_GROUPS``). ``tag`` names the
    multiplicity columns ``"<tag>.mult.<table>.<chunk>"``."""

    tag: str
    ranges: list[RangeCheck] = field(default_factory=list)
    functions: list[FunctionLookup] = field(default_factory=list)

    def _lookups(self) -> list[tuple[L.LookupTable, list[tuple[tuple[str, ...], tuple[int, ...]]]]]:
        """[(table, [(group column names, shape)])] in a fixed order, chunked."""
        by_table: dict[str, tuple[L.LookupTable, list]] = {}
        for rc in self.ranges:
            for name, table in rc.tables():
                t = by_table.setdefault(table.name, (table, []))
                t[1].append(((name,), rc.shape))
        for fl in self.functions:
            t = by_table.setdefault(fl.table.name, (fl.table, []))
            if t[0] is not fl.table and t[0].digest_bytes() != fl.table.digest_bytes():
                raise ValueError(f"two different tables are named {fl.table.name!r}")
            t[1].append((tuple(fl.tensors), fl.shape))
        out = []
        for key in sorted(by_table):
            table, groups = by_table[key]
            for i in range(0, len(groups), L.MAX_GROUPS):
                out.append((table, groups[i:i + L.MAX_GROUPS]))
        return out

    def _mult_name(self, table: L.LookupTable, chunk: int) -> str:
        return f"{self.tag}.mult.{table.name}.{chunk}"

    def _chunks(self):
        seen: dict[str, int] = {}
        for table, groups in self._lookups():
            k = seen.get(table.name, 0)
            seen[table.name] = k + 1
            yield table, groups, self._mult_name(table, k)

    def columns(self) -> dict[str, tuple[int, ...]]:
        """Every aux column (limbs and multiplicities) -> shape."""
        out: dict[str, tuple[int, ...]] = {}
        for rc in self.ranges:
            out.update(rc.columns())
        for table, _, mname in self._chunks():
            out[mname] = (1 << table.log_size,)
        return out

    def witness(self, values: Callable[[str], np.ndarray], strict: bool = True) -> dict[str, np.ndarray]:
        """Aux values; ``values(name)`` returns a tensor's int64 values. ``strict=False`` (tests of
        cheating provers) tolerates entries outside their range or table."""
        out: dict[str, np.ndarray] = {}
        for rc in self.ranges:
            out.update(rc.witness(sum(np.asarray(values(n), dtype=np.int64) for n in rc.summands()), strict))
        get = lambda n: out[n] if n in out else values(n)  # noqa: E731
        for table, groups, mname in self._chunks():
            cols = [[canonical(get(n)) for n in names] for names, _ in groups]
            mult = table.multiplicities(cols) if strict else _lenient_multiplicities(table, cols)
            out[mname] = np.asarray(mult, dtype=np.int64)
        return out

    def _statement(self, table, groups, mname) -> L.LookupStatement:
        return L.LookupStatement(table, tuple(f"{mname}:{g}" for g in range(len(groups))),
                                 tuple(n_vars(shape) for _, shape in groups))

    def prove(self, ctx: ProverContext, proof: OpProof) -> list[Claim]:
        """Prove every check; returns the claims on tensors and aux columns."""
        claims: list[Claim] = []
        taus: dict = {}
        for rc in self.ranges:
            if rc.direct():
                continue
            tau = self._tau(ctx, rc, taus)
            names = [*rc.summands()] + [n for n, _, _, _ in rc.limbs()]
            vals = np.stack([ctx.hat(n, tau) for n in names])
            proof.put_ext(vals)
            ctx.transcript.absorb_ext("ops/range_values", vals)
            for side in rc.sides():
                prove_relation(ctx, proof, rc.relation(side, tau), "range")
            claims += [Claim(n, tau, v) for n, v in zip(names, vals)]
        for table, groups, mname in self._chunks():
            if ctx.lookups is not None:
                ctx.lookups.add(table, groups, mname)
                continue
            st = self._statement(table, groups, mname)
            cols = [[ctx.table(n) for n in names] for names, _ in groups]
            lp, lclaims = L.prove_with_claims(st, cols, canonical(ctx.value(mname)), ctx.transcript)
            proof.put_bytes(lp.to_bytes(st))
            if ctx.strict:
                _check_own_lookup([st], lp)
            claims += self._lookup_claims(groups, mname, lclaims)
        return claims

    @staticmethod
    def _tau(ctx: VerifierContext, rc: "RangeCheck", taus: dict) -> np.ndarray:
        """The point a range check recomposes its limbs at: one per checked tensor, shared by every
        check of it (two windows of one weight reveal its value once: a second value at another point
        would be one more linear form for its randomizer to hide)."""
        key = (rc.summands(), tuple(rc.shape))
        if key not in taus:
            taus[key] = ctx.transcript.challenge_exts("ops/range_tau", n_vars(rc.shape))
        return taus[key]

    def verify(self, ctx: VerifierContext, rd: ProofReader) -> list[Claim]:
        """Check every check; returns the claims to settle. Raises Reject."""
        claims: list[Claim] = []
        taus: dict = {}
        for rc in self.ranges:
            if rc.direct():
                continue
            tau = self._tau(ctx, rc, taus)
            limbs, m = rc.limbs(), len(rc.summands())
            vals = rd.take_ext(m + len(limbs))
            ctx.transcript.absorb_ext("ops/range_values", vals)
            ind = indicator_eval(rc.shape, tau)
            v = F.ezero()
            for x in vals[:m]:
                v = F.eadd(v, x)
            for side in rc.sides():
                delta = verify_relation(ctx, rd, rc.relation(side, tau), "range")
                lhs = (F.esub(v, F.emul(F.ext(rc.lo), ind)) if side == 0
                       else F.esub(F.emul(F.ext(rc.hi), ind), v))
                rhs = delta  # both sides: Σ c·T̂ = known + δ, rearranged
                for (_, _, off, s), lv in zip(limbs, vals[m:]):
                    if s == side:
                        rhs = F.eadd(rhs, F.emul(F.ext(1 << off), lv))
                if not np.array_equal(lhs, rhs):
                    raise Reject(f"range check of {rc.tensor!r}: limbs do not recompose the value")
            claims += [Claim(nm, tau, x) for nm, x in zip(rc.summands(), vals[:m])]
            claims += [Claim(nm, tau, lv) for (nm, _, _, _), lv in zip(limbs, vals[m:])]
        for table, groups, mname in self._chunks():
            if ctx.lookups is not None:
                ctx.lookups.add(table, groups, mname)
                continue
            st = self._statement(table, groups, mname)
            lp = rd.take_lookup(st)
            res = L.verify(st, lp, ctx.transcript)
            if not res.ok:
                raise Reject(f"lookup into {table.name!r}: {res.reason}")
            claims += self._lookup_claims(groups, mname, res.claims)
        return claims

    @staticmethod
    def _lookup_claims(groups, mname: str, evals: Sequence[S.EvalClaim]) -> list[Claim]:
        """Map the lookup's claims (group columns in order, then multiplicities) to tensor names."""
        names = [n for names, _ in groups for n in names] + [mname]
        if len(evals) != len(names):
            raise Reject("lookup returned an unexpected number of claims")
        return [Claim(n, e.point, e.value, plain=True) for n, e in zip(names, evals)]


@dataclass
class LookupBatch:
    """Lookups deferred to the end of a program and proved together: the groups of many ops that use
    one table share a logUp-GKR lookup (≤ ``lookup.MAX_GROUPS`` groups each), so the table side and the
    per-layer overhead are paid once per pack instead of once per op. Each op keeps its own committed
    multiplicity column; the table's numerator is their sum, so the prover sends every column's value
    at the table's leaf point and the verifier checks that they add up to the lookup's claim.
    Every deferred column was committed before any challenge, so proving at the end is sound."""

    entries: list = field(default_factory=list)  # (table, groups, multiplicity column)

    def add(self, table: L.LookupTable, groups: list, mname: str) -> None:
        """Defer one Checks chunk (its groups and its multiplicity column)."""
        self.entries.append((table, list(groups), mname))

    def _packs(self):
        # packed by the table's contents, not only its name: entries of two different tables that
        # share a name must never be checked against one of them
        by_table: dict[tuple[str, bytes], list] = {}
        for table, groups, mname in self.entries:
            by_table.setdefault((table.name, table.digest_bytes()), []).append((table, groups, mname))
        for name in sorted(by_table):
            pack: list = []
            size = 0
            for e in by_table[name]:
                if pack and size + len(e[1]) > L.MAX_GROUPS:
                    yield pack
                    pack, size = [], 0
                pack.append(e)
                size += len(e[1])
            if pack:
                yield pack

    @staticmethod
    def _statement(pack, reps: int = 1) -> L.LookupStatement:
        names, logs = [], []
        for _, groups, mname in pack:
            names += [f"{mname}:{g}" for g in range(len(groups))]
            logs += [n_vars(shape) for _, shape in groups]
        return L.LookupStatement(pack[0][0], tuple(names), tuple(logs), reps)

    def _statements(self) -> list[tuple[list, L.LookupStatement]]:
        """Every pack with its statement. The largest lookups get two independent logUp repetitions
        until the single-repetition ones together err with probability ≤ 2^LOOKUP_ERROR_LOG2 (the
        choice depends only on public shapes, so prover and verifier make it alike)."""
        packs = list(self._packs())
        single = [self._statement(p) for p in packs]
        errs = [2.0 ** st.error_log2() for st in single]
        reps = [1] * len(packs)
        total = sum(errs)
        for i in sorted(range(len(packs)), key=lambda i: (-errs[i], i)):
            if total <= 2.0 ** LOOKUP_ERROR_LOG2:
                break
            reps[i] = 2
            total -= errs[i]
        return [(p, self._statement(p, r) if r > 1 else st) for p, st, r in zip(packs, single, reps)]

    @staticmethod
    def _claims(pack, evals: Sequence[S.EvalClaim], mvals: np.ndarray) -> list[Claim]:
        names = [n for _, groups, _ in pack for cols, _ in groups for n in cols]
        if len(evals) != len(names) + 1:
            raise Reject("lookup returned an unexpected number of claims")
        out = [Claim(n, e.point, e.value, plain=True) for n, e in zip(names, evals)]
        pt = evals[-1].point
        return out + [Claim(mname, pt, v, plain=True) for (_, _, mname), v in zip(pack, mvals)]

    @staticmethod
    def _linear_claims(pack, st: L.LookupStatement, lclaims: Sequence) -> list[LinearClaim]:
        """A zero-knowledge lookup's leaf claims with their terms on the pack's tensors: each column of
        the statement is a tensor, the multiplicity column the sum of the pack's (one term each);
        terms on the committed masks pass unchanged."""
        local = [n for g in range(len(st.group_logs)) for n in st.column_names(g)]
        names = [n for _, groups, _ in pack for cols, _ in groups for n in cols]
        if len(local) != len(names):
            raise Reject("lookup returned an unexpected number of columns")
        to_tensor = dict(zip(local, names))
        mnames = [mname for _, _, mname in pack]
        out = []
        for c in lclaims:
            terms = []
            for name, pt, coef in c.terms:
                if name == L.MULTIPLICITY_COLUMN:
                    terms += [(m, pt, coef) for m in mnames]
                else:
                    terms.append((to_tensor.get(name, name), pt, coef))
            out.append(LinearClaim(tuple(terms), c.value))
        return out

    def _gkrs(self) -> list[list[tuple[list, L.LookupStatement]]]:
        """The packs in runs that share one logUp-GKR (:func:`lookup.prove_many`): consecutive packs
        while their trees hold ≤ 2^MERGED_LEAVES_LOG leaves (bounds the prover's memory; a tree has
        ``2^depth`` leaves, padding included)."""
        runs: list[list] = []
        size = 0
        for pack, st in self._statements():
            leaves = st.reps * (1 << st.tree_logs[0])
            if runs and size + leaves <= 1 << MERGED_LEAVES_LOG:
                runs[-1].append((pack, st))
                size += leaves
            else:
                runs.append([(pack, st)])
                size = leaves
        return runs

    def mask_sizes(self) -> list[tuple[int, int]]:
        """(n_vars, degree) of the zero-knowledge masks the GKR layers of :meth:`prove` take from a
        context's masks, in order (public shapes only)."""
        return [s for run in self._gkrs() for s in L.mask_sizes([st for _, st in run])]

    def prove(self, ctx: ProverContext) -> tuple[OpProof, list[Claim]]:
        """Prove every deferred lookup; returns the proof and the claims to settle. With masks in the
        context every GKR layer sumcheck is zero-knowledge masked (:func:`lookup.prove_many`)."""
        proof, claims = OpProof(), []
        ctx.transcript.absorb_bytes("ops/lookup_batch", str(len(self.entries)).encode())
        for run in self._gkrs():
            sts, cols, mults = [], [], []
            for pack, st in run:
                table = pack[0][0]
                sts.append(st)
                cols.append([[ctx.table(n) for n in names] for _, groups, _ in pack for names, _ in groups])
                mult = np.zeros(1 << table.log_size, dtype=np.int64)
                for _, _, mname in pack:
                    mult += np.asarray(ctx.value(mname), dtype=np.int64)
                mults.append(F.from_signed(mult))
            lp, lclaims = L.prove_many(sts, cols, mults, ctx.transcript, ctx.masks)
            proof.put_bytes(lp.to_bytes(sts))
            if ctx.strict:
                _check_own_lookup(sts, lp)
            for (pack, st), cl in zip(run, lclaims):
                if lp.zk:  # the leaf checks are linear claims: no value of a column is sent
                    claims += self._linear_claims(pack, st, cl)
                    continue
                pt = cl[-1].point
                mvals = np.stack([ctx.evaluate(mname, pt) for _, _, mname in pack])
                proof.put_ext(mvals)
                ctx.transcript.absorb_ext("ops/lookup_batch_mult", mvals)
                claims += self._claims(pack, cl, mvals)
        return proof, claims

    def verify(self, ctx: VerifierContext, proof: OpProof) -> list[Claim]:
        """Check every deferred lookup; returns the claims to settle. Raises Reject."""
        rd = ProofReader(proof)
        claims: list[Claim] = []
        ctx.transcript.absorb_bytes("ops/lookup_batch", str(len(self.entries)).encode())
        for run in self._gkrs():
            sts = [st for _, st in run]
            res = L.verify_many(sts, rd.take_lookup(sts), ctx.transcript, ctx.masks)
            if not res.ok:
                raise Reject(f"lookup into {', '.join(st.table.name for st in sts)}: {res.reason}")
            at = 0
            for pack, st in run:
                if ctx.masks is not None:
                    n = 2 * st.reps
                    claims += self._linear_claims(pack, st, res.claims[at:at + n])
                    at += n
                    continue
                n = st.table.width * len(st.group_logs) + 1
                cl = res.claims[at:at + n]
                at += n
                mvals = rd.take_ext(len(pack))
                ctx.transcript.absorb_ext("ops/lookup_batch_mult", mvals)
                total = F.ezero()
                for v in mvals:
                    total = F.eadd(total, v)
                if not np.array_equal(total, cl[-1].value):
                    raise Reject(f"lookup into {pack[0][0].name!r}: multiplicities do not add up")
                claims += self._claims(pack, cl, mvals)
            if at != len(res.claims):
                raise Reject("lookup returned an unexpected number of claims")
        rd.done()
        return claims


def _check_own_lookup(sts: Sequence[L.LookupStatement], lp: L.LookupProof) -> None:
    """A strict prover refuses data its own lookup does not accept: every tree's root numerator must
    be 0 (the only check that depends on the witness rows being in the table)."""
    trees = iter(lp.root_p if lp.root_p is not None else ())
    for st in sts:
        for _ in range(st.reps):
            p = next(trees, None)
            if p is None or p.any():
                raise ValueError(f"lookup into {st.table.name!r} fails on the prover's own data: "
                                 "the witness and table fractional sums differ")


# --- clamp ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Clamp:
    """``out = clamp(q, lo, hi)`` elementwise, with ``|q| ≤ q_bound`` known from the op's semantics.

    Aux columns ``d⁺ = max(q − hi, 0)`` and ``d⁻ = max(lo − q, 0)`` (``"<tag>.dpos"``, ``"<tag>.dneg"``);
    a zero-check of ``(q − out − d⁺ + d⁻) + γ·d⁺(hi − out) + γ²·d⁻(out − lo) + γ³·d⁺d⁻`` (padding is
    zero everywhere, so no indicator is needed); ``out ∈ [lo, hi]``; ``d⁺ + d⁻ ∈ [0, 2^b)`` — one range
    check for both, since ``d⁺d⁻ = 0`` makes one of them zero and the other the checked sum — with
    ``b = min(bits(q_bound + max(|lo|, |hi|)), 29)``.

    Unique for EVERY field value of ``q``, whatever ``q_bound`` says: the relations put ``q`` in
    ``[lo, hi]`` (then ``out = q``), in ``hi + [1, 2^b)`` (``out = hi``) or in ``lo − [1, 2^b)``
    (``out = lo``); these ``hi − lo + 2^(b+1) − 1`` residues are distinct when ``hi − lo + 2^(b+1) ≤ p``,
    which the constructor requires. So ``q_bound`` (a declared bound, which a hostile spec may get
    wrong) only sizes ``b`` for completeness; it never decides which output verifies. With ``b = 29``
    and ``lo ≤ 0 ≤ hi`` the three windows cover every ``|q| < 2^29``, the reference's whole domain."""

    tag: str
    q: str
    out: str
    shape: tuple[int, ...]
    lo: int
    hi: int
    q_bound: int
    limb_bits: int = LIMB_BITS  # passed to its range checks (see :func:`small_limbs`)

    def __post_init__(self) -> None:
        if self.lo >= self.hi:
            raise ValueError(f"clamp of {self.q!r}: need lo < hi, got [{self.lo}, {self.hi}]")
        if self.q_bound < 0:
            raise ValueError(f"clamp of {self.q!r}: negative bound {self.q_bound}")
        if (self.hi - self.lo) + 2 * (1 << self.bits) > F.P:
            raise ValueError(f"clamp of {self.q!r}: output range [{self.lo}, {self.hi}] is too wide for a clamp "
                             f"that is unique mod p (hi − lo + 2^{self.bits + 1} > p)")

    @property
    def bits(self) -> int:
        """Bit width of the excess range checks (at most :data:`CLAMP_BITS_MAX`)."""
        return min((self.q_bound + max(abs(self.lo), abs(self.hi))).bit_length(), CLAMP_BITS_MAX)

    @property
    def dpos(self) -> str:
        return f"{self.tag}.dpos"

    @property
    def dneg(self) -> str:
        return f"{self.tag}.dneg"

    def ranges(self) -> list[RangeCheck]:
        """The two range checks: the output, and the sum of the excesses."""
        top = (1 << self.bits) - 1
        return [RangeCheck(f"{self.tag}.out", self.out, self.shape, self.lo, self.hi, limb_bits=self.limb_bits),
                RangeCheck(f"{self.tag}.d", self.dpos, self.shape, 0, top, plus=(self.dneg,),
                           limb_bits=self.limb_bits)]

    def columns(self) -> dict[str, tuple[int, ...]]:
        """The excess columns (the range checks' columns come with :class:`Checks`)."""
        return {self.dpos: self.shape, self.dneg: self.shape}

    def witness(self, q: np.ndarray, strict: bool = True) -> dict[str, np.ndarray]:
        """Excess values for the unclamped ``q``."""
        q = np.asarray(q, dtype=np.int64)
        if strict and q.size and int(np.abs(q).max()) > self.q_bound:
            raise ValueError(f"clamp of {self.q!r}: |q| exceeds its bound {self.q_bound}")
        return {self.dpos: np.maximum(q - self.hi, 0), self.dneg: np.maximum(self.lo - q, 0)}

    def _terms(self, gamma: np.ndarray) -> list:
        g2 = F.emul(gamma, gamma)
        g3 = F.emul(g2, gamma)
        m1 = F.eneg(F.eone())
        # tables: 0 q, 1 out, 2 d+, 3 d-; constants only multiply d±, which vanish on the padding
        return [(1, (0,)), (m1, (1,)), (m1, (2,)), (1, (3,)),
                (F.emul(gamma, F.ext(self.hi)), (2,)), (F.eneg(gamma), (2, 1)),
                (g2, (3, 1)), (F.eneg(F.emul(g2, F.ext(self.lo))), (3,)), (g3, (2, 3))]

    def prove(self, ctx: ProverContext, proof: OpProof) -> list[Claim]:
        """Zero-check of the clamp relations; returns claims on q, out, d⁺, d⁻ (range checks are
        proved by the op's :class:`Checks`, which must include :meth:`ranges`)."""
        gamma = ctx.transcript.challenge_ext("ops/clamp_gamma")
        names = [self.q, self.out, self.dpos, self.dneg]
        point, vals = prove_zero_check(ctx, proof, n_vars(self.shape), [ctx.table(n) for n in names],
                                       self._terms(gamma), names)
        return [Claim(n, point, v) for n, v in zip(names, vals)]

    def verify(self, ctx: VerifierContext, rd: ProofReader) -> list[Claim]:
        """Check the zero-check; returns the claims."""
        gamma = ctx.transcript.challenge_ext("ops/clamp_gamma")
        names = [self.q, self.out, self.dpos, self.dneg]
        point, vals = verify_zero_check(ctx, rd, n_vars(self.shape), 4, self._terms(gamma), names)
        return [Claim(n, point, v) for n, v in zip(names, vals)]


# --- registry protocol --------------------------------------------------------------------------------

def op_label(ctx: VerifierContext, op: Op) -> None:
    """Bind the op (kind, output, params) into the transcript before its proof."""
    ctx.transcript.absorb_bytes("ops/op", f"{op.kind}\0{op.output}".encode())


def expect_one_claim(out_claims: Sequence[Claim], op: Op) -> Claim:
    """The single (already reduced) claim on the op's output; Reject otherwise."""
    if len(out_claims) != 1 or out_claims[0].tensor != op.output:
        raise Reject(f"op {op.kind} -> {op.output}: expected one claim on its output")
    return out_claims[0]
