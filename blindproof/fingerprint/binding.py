"""Bind published harmless directions to a model commitment: a zk proof that ``W δ_i = 0``.

Statement: the committed weight ``W`` (``m x n``, canonical layout ``"w:<name>"`` inside the model
commitment of :mod:`blindproof.zk.proof.commitment`) maps every published integer direction ``δ_i`` to zero.
With an int8 ``W`` (the integer model's weights) and ``127·‖δ_i‖₁ < p/2`` the identity over the field
is an identity over the integers, which the verifier checks on the public directions.

Which weight: ``W`` must be the weight of the one op that reads the program's input, a ``linear``
whose output reaches a program output (:func:`input_reader`); both sides refuse any other weight and
any program where something else also reads the input. Otherwise "``W δ = 0``" could be proved for a
decoy layer (its output unused, or read beside the real first layer) while ``δ`` changes the output.
The weight's declared dtype must fit the bound (int8 for the default 127); that the committed entries
respect their dtype is the model commitment's well-formedness proof (:mod:`blindproof.zk.proof.wellformed`).

Protocol (format 2; one transcript, statement first):

1. The prover commits a random mask ``G`` (:class:`~blindproof.zk.iop.sumcheck.MaskPolynomial`, extension
   coefficients; its own small hiding PCS commitment in the layout the model commitment's parameters
   give) and a fresh companion of the weight commitment
   (:func:`pcs.commit_companion`: mask rows and the randomizer ``R`` of ``W``, OS randomness); the
   transcript absorbs both digests, in that order.
2. Challenges: ``r`` over the rows (``log2 m`` extension elements) and ``β_i`` per direction.
   With ``D = Σ_i β_i δ_i`` the claim is ``Σ_k W̃(r, k) · D̃(k) = 0``. If some ``W δ_i ≠ 0`` then
   ``W D ≠ 0`` except with probability ``1/|K|`` over ``β``, and its multilinear extension vanishes
   at ``r`` with probability at most ``log2 m / |K|``.
3. One sumcheck over the ``log2 n`` column variables on ``Ŵ(r, x)·D̃(x) + ρ·G(x)`` (claim ``ρ·ΣG``,
   ``ρ`` drawn after ``ΣG`` is sent). ``Ŵ = W̃ + x_s(1 − x_s)·Φ(x_A)`` is ``W``'s randomized extension
   (:mod:`blindproof.zk.iop.blind`): ``x_s`` the last column variable (bound in the last round, degree
   3 there), ``Φ(x_A) = Σ_w R̃(x_A, w)`` over the two variables above it (:func:`blinding_rule`;
   ``Ŵ = W̃`` on the cube, so the sum is unchanged). It ends in ``Ŵ(r, s)``, ``G(s)`` (both sent) and
   ``D̃(s)`` (the verifier's own). Soundness error ``≤ (3 log2 n + 1)/|K|`` besides the openings'.
4. ``Ŵ(r, s) = v`` is the linear claim ``W̃(r, s) + z·4·R̃(φ) = v`` (``z = s_x(1 − s_x)``), proved by
   ONE stacked opening of ``[weights; companion]``, charged to the key's opening ledger like a model
   proof's; ``G(s)`` is one linear claim on the mask table (:func:`sumcheck.mask_claim_terms`), proved by one
   opening of the mask commitment.

What it reveals about ``W``: nothing beyond the statement. The value ``v = Ŵ(r, s)`` carries
``z·4·R̃(φ)`` with ``Φ`` spanning 4 base dimensions, so it is uniform given ``W`` (fresh ``R`` per
proof; the openings reveal nothing beyond their claims: fresh mask rows); every round polynomial
carries ``ρ·G_j`` with uniform extension coefficients. ``tests/test_fingerprint_binding.py`` counts
it: over every value of a proof, rank([randomness | W]) − rank(randomness) is the statement's own 4
base forms. Format 1 revealed ``W̃(r, s)`` itself (4 base equations in ``W`` per proof), and its
``sumcheck.MaskPolynomial`` mask (base coefficients, reduced by an unmasked sumcheck that reveals it)
let all its values together show 44 base forms of ``W`` per proof beyond the statement (32×64 layer).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import struct
from dataclasses import dataclass
from typing import Callable, Sequence

import blake3
import numpy as np

from blindproof.zk.field import babybear as F
from blindproof.zk.commit import pcs
from blindproof.zk.iop import mle
from blindproof.zk.iop import sumcheck as S
from blindproof.zk.proof.commitment import ModelCommitment
from blindproof.zk.proof.keys import KeyedFieldRng, OpeningBudgetExceeded, OpeningLedger
from blindproof.zk.field.encoding import ProofFormatError, Reader, Writer
from blindproof.zk.iop import blind as BL
from blindproof.zk.iop.layout import canonical, dim_vars, weight_name
from blindproof.quant.spec import Op, QuantSpec
from blindproof.zk.iop.transcript import Transcript
from blindproof.zk.verdict import VerifyResult, guarded
from blindproof.zk.proof.wellformed import WellformedProof, dtype_bound

DOMAIN = b"blindproof/fingerprint-binding/v2"
_MAGIC = b"BPFB"
_VERSION = 2  # 2: the weight's value is randomized (companion commitment with the randomizer, linear claim)
_PARTS = 5
INT8_BOUND = 127
MAX_DIRECTIONS = 1 << 16
_MAX_PART = 1 << 26


def input_reader(spec: QuantSpec) -> Op:
    """The one op through which the program's output depends on its input: a ``linear`` op.

    A binding proof is about one weight, so it means "the model ignores ``δ``" only when that weight's
    layer is the sole path from the input to the outputs. ValueError (naming what is wrong) unless the
    program has exactly one input, exactly one op reads it, that op
    is a ``linear``, and its output reaches a program output (a layer whose output nothing uses would
    be a decoy: its null space says nothing about the model)."""
    if len(spec.inputs) != 1:
        raise ValueError(f"the binding needs a program with one input, this one has {len(spec.inputs)}")
    x = spec.inputs[0]
    readers = [op for op in spec.ops if x in op.inputs]
    if len(readers) != 1:
        names = ", ".join(f"{op.kind} -> {op.output}" for op in readers) or "none"
        raise ValueError(f"the program input {x!r} must be read by exactly one linear op, it is read by {names}")
    op = readers[0]
    if op.kind != "linear":
        raise ValueError(f"the program input {x!r} is read by a {op.kind} op, not by a linear op")
    if len(spec.weights[op.params["weight"]].shape) != 2:
        raise ValueError(f"the program input {x!r} is read by a linear op whose weight is not a matrix")
    if op.output not in _output_ancestors(spec):
        raise ValueError(f"the output of linear {op.output!r} (the input's reader) reaches no program output")
    return op  # (an input that is also an output, where δ would show directly, is refused by QuantSpec)


def _output_ancestors(spec: QuantSpec) -> set[str]:
    """Every tensor some program output depends on (the outputs included)."""
    producer = {op.output: op for op in spec.ops}
    seen: set[str] = set()
    todo = list(spec.outputs)
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        op = producer.get(t)
        if op is not None:
            todo.extend(op.inputs)
    return seen


def first_linear_weight(commitment: ModelCommitment) -> str:
    """The spec name of the weight of the linear op that is the input's only reader (:func:`input_reader`);
    ValueError for a program where no single weight stands between the input and the outputs."""
    return input_reader(commitment.spec).params["weight"]


def _weight_shape(commitment: ModelCommitment, weight: str, bound: int) -> tuple[int, int]:
    """The shape of the bound weight; ValueError unless ``weight`` is the weight of the input's only
    reader (:func:`input_reader`) and its declared dtype keeps every entry within ``bound``."""
    if weight not in commitment.spec.weights:
        raise ValueError(f"the committed model has no weight {weight!r}")
    reader = first_linear_weight(commitment)
    if weight != reader:
        raise ValueError(f"weight {weight!r} is not the weight of the input's only reader ({reader!r})")
    ws = commitment.spec.weights[weight]
    # the integer argument needs |W| ≤ bound; the dtype's range is what the weights' well-formedness
    # proof guarantees, so a wider dtype than the bound is refused
    if dtype_bound(ws.dtype) > bound:
        raise ValueError(f"weight {weight!r} is {ws.dtype} (entries up to {dtype_bound(ws.dtype)}), above the "
                         f"bound {bound} the statement assumes")
    shape = tuple(int(d) for d in ws.shape)
    if len(shape) != 2 or shape[1] < 2:
        raise ValueError(f"weight {weight!r} must be a matrix with at least 2 inputs, has shape {shape}")
    return shape  # type: ignore[return-value]


def _check_directions(directions: np.ndarray, n: int, bound: int) -> np.ndarray:
    d = np.asarray(directions)
    if d.dtype.kind not in "iu":
        raise TypeError(f"directions must be integer vectors, got {d.dtype}")
    d = d.astype(np.int64).reshape(-1, n) if d.size and d.shape[-1] == n else d
    if d.ndim != 2 or d.shape[1] != n or not 1 <= d.shape[0] <= MAX_DIRECTIONS:
        raise ValueError(f"directions must have shape (k, {n}) with 1 <= k <= {MAX_DIRECTIONS}, got {np.shape(directions)}")
    if not np.all(np.any(d != 0, axis=1)):
        raise ValueError("a published direction is zero")
    l1 = [sum(abs(int(x)) for x in row) for row in d]
    if max(l1) * bound >= (F.P - 1) // 2:
        raise ValueError(f"direction entries too large: {bound} * ||d||_1 must stay below (p-1)/2 so that W d = 0 "
                         "over the field means W d = 0 over the integers")
    return d


def _statement(commitment: ModelCommitment, weight: str, directions: np.ndarray, bound: int) -> bytes:
    h = blake3.blake3()
    h.update(commitment.digest())
    name = weight.encode("utf-8")
    h.update(struct.pack("<I", len(name)) + name)
    h.update(struct.pack("<QQQ", bound, *directions.shape))
    h.update(np.ascontiguousarray(directions, dtype="<i8").tobytes())
    return h.digest()


def _combined_directions(directions: np.ndarray, beta: np.ndarray, n_pad: int) -> np.ndarray:
    """D = Σ_i β_i δ_i as an extension table of length n_pad (zero-padded)."""
    table = np.zeros((directions.shape[0], n_pad), dtype=np.uint32)
    table[:, :directions.shape[1]] = F.from_signed(directions)
    return F.edot(beta, table)


@dataclass
class BindingProof:
    """The mask commitment, the companion commitment (the randomizer ``R``), the masked sumcheck
    (:class:`Rounds`), the stacked opening of [weights; companion] and the mask opening."""

    mask_commitment: bytes
    companion_commitment: bytes
    sumcheck: bytes
    weight_opening: bytes
    mask_opening: bytes

    def parts(self) -> tuple[bytes, ...]:
        return (self.mask_commitment, self.companion_commitment, self.sumcheck, self.weight_opening,
                self.mask_opening)

    def to_bytes(self) -> bytes:
        w = Writer()
        w.header(_MAGIC, _VERSION)
        for part in self.parts():
            w.bytes_(part)
        return w.getvalue()

    @staticmethod
    def from_bytes(data: bytes) -> "BindingProof":
        r = Reader(data, max_total=_PARTS * (_MAX_PART + 8) + 64)
        r.header(_MAGIC, (_VERSION,))
        parts = [r.bytes_(_MAX_PART) for _ in range(_PARTS)]
        r.finish()
        return BindingProof(*parts)


# --- the masked sumcheck -------------------------------------------------------------------------------
#
# Its own rounds (the column sumcheck of a product with a blinded last round, transcript labels
# ``binding/…``) over the library's extension-coefficient mask ``G`` (:class:`sumcheck.MaskPolynomial`),
# committed as its table ``T[c, i, k]`` in a small commitment of its own, and ``G(s)`` settled as one
# linear claim on ``T`` (:func:`sumcheck.mask_claim_terms`). Format 1 used a base-field mask reduced by
# an unmasked sumcheck: a verifier could strip it and read linear forms of ``W`` off the rounds (44 base
# forms per proof on a 32×64 layer, randomizer or not).

MASK_TABLE = "binding/mask"


def _round_degrees(b: int) -> tuple[int, ...]:
    """Degree of each round: 2 (a product of two multilinears), 3 in the last (``Ŵ`` blinded there)."""
    return (2,) * (b - 1) + (3,)


def _mask_terms(point: np.ndarray) -> tuple:
    """``G(s)`` as one linear claim's terms on the committed mask table (the library's mask claim)."""
    return S.mask_claim_terms(MASK_TABLE, point.shape[0], 3, point)


def _mask_layout(commitment: ModelCommitment, b: int) -> pcs.Layout:
    """The mask commitment's layout: ``T[k, i, t]`` of ``4 · 2^⌈log2 b⌉ · 4`` entries, the model
    commitment's parameters, its own mask rows."""
    return _layout_for(commitment.params, 4 + max(0, (b - 1).bit_length()))


@functools.lru_cache(maxsize=64)
def _layout_for(params: pcs.PcsParams, log_size: int) -> pcs.Layout:
    return pcs.make_layout([MASK_TABLE], [log_size], params)


@dataclass
class Rounds:
    """The masked sumcheck's messages: ``H = Σ G``, per round its values at 0, 2, …, d (the value at 1
    follows from the running claim), and the final values ``Ŵ(r, s)`` and ``G(s)``."""

    mask_sum: np.ndarray  # (4,)
    rounds: list  # per round (d_j, 4)
    w_value: np.ndarray  # (4,)
    mask_value: np.ndarray  # (4,)

    def to_bytes(self) -> bytes:
        w = Writer()
        w.ext_fixed(self.mask_sum.reshape(1, 4))
        for vals in self.rounds:
            w.ext_fixed(vals)
        w.ext_fixed(np.stack([self.w_value, self.mask_value]))
        return w.getvalue()

    @staticmethod
    def from_bytes(data: bytes, b: int) -> "Rounds":
        r = Reader(data, max_total=_MAX_PART)
        mask_sum = r.ext_fixed(1)[0]
        rounds = [r.ext_fixed(d) for d in _round_degrees(b)]
        finals = r.ext_fixed(2)
        r.finish()
        return Rounds(mask_sum, rounds, finals[0], finals[1])


def _line(t: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """``t_lo + X·(t_hi − t_lo)`` at each X of ``xs`` (base ints): (len(xs), h, 4)."""
    h = t.shape[0] // 2
    lo = t[:h]
    return F.eadd(lo[None], F.escale(F.esub(t[h:], lo)[None], xs.astype(np.uint32)[:, None]))


def _prove_rounds(w_r: np.ndarray, d_tab: np.ndarray, blinder: "S.Blinder", mask: S.MaskPolynomial, tr: Transcript
                  ) -> tuple[Rounds, np.ndarray]:
    """Prove ``Σ_x Ŵ(r, x)·D̃(x) = 0`` masked by ``ρ·G``; returns the messages and the point ``s``."""
    b = d_tab.shape[0].bit_length() - 1
    A, Dt = w_r, d_tab
    mask_sum = mask.hypercube_sum()
    tr.absorb_ext("binding/mask_sum", mask_sum)
    rho = tr.challenge_ext("binding/rho")
    point = np.zeros((b, 4), dtype=np.uint32)
    bound = F.ezero()
    rounds = []
    for j, d in enumerate(_round_degrees(b)):
        h = A.shape[0] // 2
        xs = np.arange(d + 1)
        ax, dx = _line(A, xs), _line(Dt, xs)
        c = blinder.coeff(point[:j]) if j == b - 1 else None
        if c is not None:  # Ŵ in the round of its blinding variable: + X(1 − X)·c
            ax = F.eadd(ax, F.escale(c[None, None], ((xs * (1 - xs)) % F.P).astype(np.uint32)[:, None]))
        prod = F.emul(ax, dx).astype(np.uint64).sum(axis=1) % F.P
        vals = F.eadd(prod.astype(np.uint32), F.emul(rho[None], mask.round_values(j, bound, d)))
        sent = np.concatenate([vals[:1], vals[2:]])
        tr.absorb_ext("binding/round", sent)
        rj = tr.challenge_ext("binding/r")
        point[j] = rj
        A = F.eadd(A[:h], F.emul(rj[None], F.esub(A[h:], A[:h])))
        if c is not None:
            A = F.eadd(A, F.emul(F.emul(rj, F.esub(F.eone(), rj)), c)[None])
        Dt = F.eadd(Dt[:h], F.emul(rj[None], F.esub(Dt[h:], Dt[:h])))
        bound = F.eadd(bound, mask._univariate(j, rj))
        rounds.append(sent)
    out = Rounds(mask_sum, rounds, A[0].copy(), mask.evaluate(point))
    tr.absorb_ext("binding/final", np.stack([out.w_value, out.mask_value]))
    return out, point


def _verify_rounds(proof: Rounds, d_at: "Callable[[np.ndarray], np.ndarray]", tr: Transcript
                   ) -> tuple[np.ndarray | None, str]:
    """Replay the rounds from the claim 0; ``d_at(s)`` is ``D̃(s)`` (the verifier's own). Returns the
    point ``s`` (None and the reason on a failed check)."""
    b = len(proof.rounds)
    tr.absorb_ext("binding/mask_sum", proof.mask_sum)
    rho = tr.challenge_ext("binding/rho")
    claim = F.emul(rho, proof.mask_sum)
    point = np.zeros((b, 4), dtype=np.uint32)
    for j, sent in enumerate(proof.rounds):
        tr.absorb_ext("binding/round", sent)
        rj = tr.challenge_ext("binding/r")
        point[j] = rj
        vals = np.concatenate([sent[:1], F.esub(claim, sent[0])[None], sent[1:]])
        claim = S.interpolate(vals, rj)
    tr.absorb_ext("binding/final", np.stack([proof.w_value, proof.mask_value]))
    expect = F.eadd(F.emul(proof.w_value, d_at(point)), F.emul(rho, proof.mask_value))
    if not np.array_equal(expect, claim):
        return None, "the sumcheck's final values do not match its last round"
    return point, ""


REVEALED_DIMS = 4  # base dimensions of Φ the proof needs: it reveals one extension value of Ŵ


def blinding_rule(weight: str, m: int, n: int) -> BL.Rule:
    """The randomizer of ``W`` (``m x n``) in a binding proof, from public shapes only: blinding variable
    the last column variable (the sumcheck's last round), ``Φ`` over the variables just above it with
    :data:`REVEALED_DIMS` base dimensions. ValueError for a weight with one variable (nothing above
    ``x_s`` to randomize with)."""
    nv = dim_vars(m) + dim_vars(n)
    if nv < 2:
        raise ValueError(f"weight {weight!r} of shape ({m}, {n}) has too few variables to hide its evaluation")
    if dim_vars(n) > pcs.MAX_TERMS:  # the mask claim has one term per column variable
        raise ValueError(f"weight {weight!r} has more than 2^{pcs.MAX_TERMS} inputs")
    s = nv - 1
    return BL.make_rule(weight_name(weight), nv, s, BL.coordinates_for(s, REVEALED_DIMS))


def _view(r: np.ndarray, b: int) -> list:
    """How the sumcheck reads ``Ŵ``: rows fixed to ``r``, columns bound by rounds ``0 … b−1``."""
    return BL.fixed(r) + BL.rounds(b)


def prove_binding(commitment: ModelCommitment, state: pcs.ProverState, weight: str, directions: np.ndarray,
                  bound: int = INT8_BOUND, rng: np.random.Generator | None = None, _check: bool = True, *,
                  ledger: OpeningLedger | None = None) -> bytes:
    """Prove that the committed ``weight`` annihilates every direction; returns the proof bytes.

    ``state`` is the opening state of ``commitment.weights`` (from ``commit_model``). The proof opens
    the weight commitment once, like a model proof, so it is charged to the key's opening ledger:
    ``ledger`` (e.g. ``key.ledger()``), else ``state.ledger`` (a :class:`~blindproof.zk.proof.prover.ModelProver`'s
    state has one); ValueError when there is neither, :class:`OpeningBudgetExceeded` past the budget.
    Raises ValueError if ``W δ_i ≠ 0`` for some direction (``_check=False`` exists to test the verifier).
    """
    m, n = _weight_shape(commitment, weight, bound)
    dirs = _check_directions(directions, n, bound)
    rule = blinding_rule(weight, m, n)
    name = weight_name(weight)
    if state.commitment != commitment.weights:
        raise ValueError("the prover state does not belong to this model commitment")
    ledger = ledger if ledger is not None else state.ledger
    if ledger is None:
        raise ValueError("the binding proof opens the weight commitment: pass the key's opening ledger "
                         "(ledger=key.ledger()) so that the opening is counted in its budget")
    # the well-formedness opening is public with the commitment: counted first (idempotent), then the
    # budget is checked before any work
    if commitment.wellformed:
        ledger.charge(commitment.weights, WellformedProof.from_bytes(commitment.wellformed).opened_positions(
            commitment.weights))
    if ledger.openings_left(commitment.weights) < 1:
        raise OpeningBudgetExceeded("the opening budget of this commitment key is spent (the last opening is "
                                    "kept for a rotation certificate): rotate to a fresh key")
    state = dataclasses.replace(state, ledger=ledger)
    a, b = dim_vars(m), dim_vars(n)
    lay = state.commitment.layout
    if name not in lay.names:
        raise ValueError(f"the weight commitment holds no tensor {name!r}")
    off = lay.offsets[lay.index(name)]  # read W back from the committed rows: the proof is about those
    table = state.messages.reshape(-1)[off:off + (1 << lay.log_sizes[lay.index(name)])]
    full = np.zeros(1 << (a + b), dtype=np.uint32)
    full[:table.size] = table
    if _check:
        w_int = F.to_signed(full.reshape(1 << a, 1 << b)[:m, :n]).astype(np.int64)
        bad = np.nonzero(np.any(w_int @ dirs.T != 0, axis=0))[0]
        if bad.size:
            raise ValueError(f"the committed weight does not map direction {int(bad[0])} to zero")
    tr = Transcript(DOMAIN, _statement(commitment, weight, dirs, bound))
    # the mask and the randomizer must be unpredictable: OS CSPRNG through BLAKE3 unless a test passes ``rng``
    mask = S.MaskPolynomial.random(rng or KeyedFieldRng(os.urandom(32), "binding/mask"), b, _round_degrees(b))
    R = F.random(rng or KeyedFieldRng(os.urandom(32), "binding/randomizer"), 1 << rule.r_vars)
    mask_com, mask_state = pcs.commit({MASK_TABLE: mask.committed_table()}, commitment.params, rng=rng)
    comp_com, comp_state = pcs.commit_companion(lay, {rule.table: R}, rng=rng)
    tr.absorb_digest("binding/mask_commitment", mask_com.digest())
    tr.absorb_digest("binding/companion_commitment", comp_com.digest())
    r = tr.challenge_exts("binding/rows", a) if a else np.zeros((0, 4), dtype=np.uint32)
    beta = tr.challenge_exts("binding/beta", dirs.shape[0])
    w_r = mle.bind_prefix(full, r) if a else F.embed(full)
    d_tab = _combined_directions(dirs, beta, 1 << b)
    rounds, s_pt = _prove_rounds(w_r, d_tab, BL.blinder(rule, R, 0, _view(r, b)), mask, tr)
    # Ŵ(r, s) = W̃(r, s) + z·4·R̃(φ): one linear claim on the weights and the companion, one stacked opening
    w_claim = pcs.LinearClaim(tuple(rule.settle_terms(np.concatenate([r, s_pt]))), rounds.w_value)
    w_open = pcs.open_claims([state, comp_state], [w_claim], tr)
    m_open = pcs.open_claims(mask_state, [pcs.LinearClaim(_mask_terms(s_pt), rounds.mask_value)], tr)
    return BindingProof(mask_com.to_bytes(), comp_com.to_bytes(), rounds.to_bytes(), w_open.to_bytes(),
                        m_open.to_bytes()).to_bytes()


def verify_binding(commitment: ModelCommitment, weight: str, directions: np.ndarray, proof: bytes,
                   bound: int = INT8_BOUND) -> VerifyResult:
    """Accept iff ``proof`` shows that the committed ``weight`` maps every direction to zero. Never raises."""
    def run() -> VerifyResult:
        try:
            m, n = _weight_shape(commitment, weight, bound)
            dirs = _check_directions(directions, n, bound)
        except (TypeError, ValueError) as exc:
            return VerifyResult.reject(f"binding: bad statement: {exc}")
        try:
            rule = blinding_rule(weight, m, n)  # from the public shapes, never from the proof
        except ValueError as exc:
            return VerifyResult.reject(f"binding: bad statement: {exc}")
        try:
            parts = BindingProof.from_bytes(bytes(proof))
            mask_com = pcs.Commitment.from_bytes(parts.mask_commitment)
            comp_com = pcs.Commitment.from_bytes(parts.companion_commitment)
        except ProofFormatError as exc:
            return VerifyResult.reject(f"binding: malformed proof: {exc}")
        a, b = dim_vars(m), dim_vars(n)
        if mask_com.layout != _mask_layout(commitment, b):  # the code is the parameters', not the prover's
            return VerifyResult.reject("binding: the mask commitment must hold exactly the mask table, "
                                       "in the layout the commitment's parameters give")
        try:  # the weights' code, the mask rows and exactly the randomizer table
            pcs.check_companion_layout(comp_com.layout, commitment.weights.layout, {rule.table: rule.r_vars})
        except ValueError as exc:
            return VerifyResult.reject(f"binding: {exc}")
        try:
            rounds = Rounds.from_bytes(parts.sumcheck, b)
        except ProofFormatError as exc:
            return VerifyResult.reject(f"binding: malformed sumcheck: {exc}")
        tr = Transcript(DOMAIN, _statement(commitment, weight, dirs, bound))
        tr.absorb_digest("binding/mask_commitment", mask_com.digest())
        tr.absorb_digest("binding/companion_commitment", comp_com.digest())
        r = tr.challenge_exts("binding/rows", a) if a else np.zeros((0, 4), dtype=np.uint32)
        beta = tr.challenge_exts("binding/beta", dirs.shape[0])
        d_tab = _combined_directions(dirs, beta, 1 << b)  # D̃(s): the verifier's own
        s_pt, why = _verify_rounds(rounds, lambda pt: mle.evaluate(d_tab, pt), tr)
        if s_pt is None:
            return VerifyResult.reject(f"binding: {why}")
        try:
            m_claim = pcs.LinearClaim(_mask_terms(s_pt), rounds.mask_value)
        except (ValueError, F.FieldError):  # a coordinate in {−1, ±√−1}: probability ~2^−120
            return VerifyResult.reject("binding: the sumcheck point is degenerate for the mask claim")
        # the sumcheck's final value is Ŵ(r, s): settled as W̃(r, s) + z·4·R̃(φ) against [weights; companion]
        w_claim = pcs.LinearClaim(tuple(rule.settle_terms(np.concatenate([r, s_pt]))), rounds.w_value)
        wres = pcs.verify([commitment.weights, comp_com], [w_claim], parts.weight_opening, tr)
        if not wres.ok:
            return VerifyResult.reject(f"binding: weight opening: {wres.reason}")
        gres = pcs.verify(mask_com, [m_claim], parts.mask_opening, tr)
        if not gres.ok:
            return VerifyResult.reject(f"binding: mask opening: {gres.reason}")
        return VerifyResult.accept()

    return guarded(run, "binding")


def published_directions(weight: np.ndarray, count: int | None = None) -> np.ndarray:
    """Integer null vectors (k, n) of an integer weight (LLL-reduced), the directions to publish."""
    from blindproof.fingerprint.linalg import integer_null_space

    w = np.asarray(weight)
    vecs = integer_null_space(w, reduce=True)
    if not vecs:
        raise ValueError("the weight is injective: it has no integer null vectors")
    out = np.array(vecs, dtype=np.int64).reshape(len(vecs), w.shape[1])
    return out if count is None else out[:count]


__all__: Sequence[str] = ("BindingProof", "Rounds", "blinding_rule", "first_linear_weight", "input_reader",
                          "prove_binding", "published_directions", "verify_binding")
