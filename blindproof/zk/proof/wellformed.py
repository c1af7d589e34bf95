"""Well-formed weights: a proof, made once with the model commitment, that every committed weight entry
lies in its declared dtype's range and every padding entry is zero.

Why. The op proofs argue over the integers from bounds: products of int8 weights and int16 activations
stay below 2^29, a bias below 2^29 keeps an accumulator's window unique modulo ``p``, and so on. The
weight commitment itself only holds field elements, which a model owner picks: an "int8" entry may be
300 or ``(p − 1)/2``. This proof pins them, so the op proofs need not check weights again.

Statement: the spec digest, the weight commitment's digest (its Merkle root and layout) and the
commitment parameters (:func:`statement_bytes`). For every weight ``w`` of dtype ``d`` with the
reference's bound ``B_d`` (:data:`DTYPE_BOUNDS`: int8 127, int16 32767, int32 2^29 − 1, exactly
``quant.reference.check_weights``), every real entry lies in ``[−B_d, B_d]`` and every entry of the
canonical padding is 0.

int8 and int16. Each weight table (padding included) is looked up paired with the public real-entries
indicator ``ind`` in :func:`flagged_table`, whose rows are ``(v, 1)`` for ``|v| ≤ B`` and ``(0, 0)``:
a real entry is in range, a padding entry is 0, in one width-2 logUp lookup (256 and 2^16 rows).
The verifier evaluates ``ind`` itself; it is never committed.

int32. The full int32 range (2^32 values) does not fit in BabyBear (``p < 2^31``), so "int32" is
proved with the bound the integer model already has, ``|w| ≤ 2^29 − 1``: the quantizer refuses a
wider bias or shift vector and the reference forward raises on one, and every "below 2^29" argument
of the op proofs needs exactly that. Its window ``[−B, B]`` spans 2^30 − 1 values, one bit more
than a two-sided limb check allows (``RangeCheck`` needs ``2^(bits+1) < p``), so it is proved as the
intersection of two one-sided windows of width 2^30, ``[−B, −B + 2^30 − 1]`` and ``[B − 2^30 + 1, B]``
(:class:`~blindproof.zk.ops.base.RangeCheck` limbs over the padded table): each is a set of
2^30 < p consecutive residues, both lie inside ``(−p/2, p/2)``, so their intersection is exactly
``[−B, B]``. Neither pins the padding, so a zero-check of ``(1 − ind)·W ≡ 0`` does (cheap: the
quantizer's int32 weights are vectors, biases and ``add_weight`` shifts).

Protocol (one Fiat–Shamir transcript, domain :data:`DOMAIN`, statement first):

1. The prover reads every weight back from the committed rows (the proof is about those tables, padding
   included) and commits, in a fresh companion of the weight commitment (the *aux* commitment: the
   weight commitment's code, :func:`blindproof.zk.commit.pcs.commit_companion`), every limb column, every
   multiplicity column and the zero-knowledge masks of every sumcheck and lookup
   (:mod:`blindproof.zk.iop.masks`); its digest is absorbed before any challenge.
2. The int32 padding zero-checks, by weight name (label ``wellformed/padding``).
3. The checks of :class:`~blindproof.zk.ops.base.Checks` (the int32 windows' limb recompositions);
   every lookup is deferred and all are proved together
   (:class:`~blindproof.zk.ops.base.LookupBatch`, zero-knowledge logUp-GKR: randomized layers, leaf
   checks as linear claims that mix weights and aux columns).
4. The claims left are settled: the indicator columns' by the verifier (a linear claim's indicator
   terms move to its value side), everything else by ONE opening of the weight commitment stacked
   with the aux commitment.

The verifier derives every shape, column and table from the spec; it accepts the aux commitment only
with the layout the model commitment's parameters give (:func:`blindproof.zk.commit.pcs.make_layout`), and
recomputes the soundness (union bound over every challenge and both openings) from what it saw;
below ``PROOF_FLOOR_BITS`` provable bits it rejects.

What it reveals: nothing about the weights beyond the commitment. Every value it sends about a
weight or a limb column is a randomized extension's (:func:`blind_rules`: the int32 weights read by
their padding zero-checks and windows, the limb columns by their recompositions; randomizer tables in
the aux commitment), the lookups' layer values are randomized and their leaf checks are linear
claims, the sumcheck rounds are masked and the opening hiding. It opens the weight commitment once,
like one more model proof.
"""

from __future__ import annotations

import os
import struct
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from blindproof.zk.field import babybear as F
from blindproof.zk.iop import lookup as L
from blindproof.zk.commit import pcs
from blindproof.zk.field.encoding import ProofFormatError, Reader, Writer
from blindproof.zk.ops import base as B
from blindproof.zk.iop import claims as CL
from blindproof.zk.iop import layout as LAY
from blindproof.zk.iop import blind as BL
from blindproof.zk.iop import masks as M
from blindproof.zk.proof.program import NotHiddenWarning, settle_form
from blindproof.quant.spec import DTYPE_MAX, QuantSpec
from blindproof.zk.iop.transcript import Transcript
from blindproof.zk.verdict import SoundnessResult, guarded

DOMAIN = b"blindproof/weights-wellformed/v2"
AUX_COMMITMENT_LABEL = "wellformed/aux-commitment"
PADDING_LABEL = "wellformed/padding"
DTYPE_BOUNDS: dict[str, int] = DTYPE_MAX  # the reference's bounds (quant.spec), one table for both
_MAGIC = b"BPWF"
_VERSION = 3  # 3: zero-knowledge lookups (leaf checks as linear claims), the aux commitment a companion of
# the weights, one stacked opening; 2: extension-coefficient masks opened by linear claims
_MAX_PROOF = 1 << 30
_TAG = "wf"  # aux columns: "wf:<weight>…" limbs, "wf.mult.<table>.<chunk>" multiplicities


class WellformedError(ValueError):
    """The weights' well-formedness proof is missing, malformed or does not verify."""


def dtype_bound(dtype: str) -> int:
    """The largest magnitude a committed weight of ``dtype`` may have (:data:`DTYPE_BOUNDS`)."""
    try:
        return DTYPE_BOUNDS[dtype]
    except (KeyError, TypeError):
        raise ValueError(f"unknown weight dtype {dtype!r}; known: {', '.join(DTYPE_BOUNDS)}") from None


@dataclass(frozen=True)
class WellformedResult(SoundnessResult):
    """A verdict plus the soundness of the proof that was checked (0 when it could not be computed)."""


# --- what is proved (from the spec alone) ---------------------------------------------------------------

@dataclass(frozen=True)
class _Plan:
    """Every shape, check and padded tensor of the proof, derived from the spec."""

    shapes: dict[str, tuple[int, ...]]  # committed weight name -> padded shape (the checks see the padding)
    real: dict[str, tuple[int, ...]]  # committed weight name -> the spec's shape
    padded: tuple[str, ...]  # weights whose padding a zero-check pins (the int32 windows), by name
    flags: dict[str, str]  # public indicator column -> the weight it flags (settled by the verifier)
    checks: B.Checks


MAX_FLAGGED_LOG = 16  # dtypes whose flagged table has at most 2^16 rows (int8, int16) are looked up whole


@lru_cache(maxsize=8)
def flagged_table(bound: int) -> L.LookupTable:
    """Rows ``(v, 1)`` for ``|v| ≤ bound`` and ``(0, 0)`` (repeated up to a power of two): a weight paired
    with its real-entries indicator lies in it iff real entries are in range and padding entries are 0."""
    n = 1 << (2 * bound + 1).bit_length()
    vals = np.zeros(n, dtype=np.int64)
    vals[: 2 * bound + 1] = np.arange(-bound, bound + 1)
    flag = np.zeros(n, dtype=np.int64)
    flag[: 2 * bound + 1] = 1
    return L.LookupTable(f"dtype[{bound}]+padding", (F.from_signed(vals), F.from_signed(flag)))


def _window_checks(tag: str, tensor: str, shape: tuple[int, ...], bound: int) -> list[B.RangeCheck]:
    """Range checks proving ``|v| ≤ bound`` for every entry of a padded table by two one-sided windows of
    ``2^bits < p`` residues each (``bits`` = the width of ``2·bound``); their intersection is the range."""
    bits = (2 * bound).bit_length()
    if bits > 30:
        raise ValueError(f"{tensor}: a bound of {bound} does not fit the field's window argument")
    width = 1 << bits
    limbs = B.small_limbs(shape)
    return [B.RangeCheck(f"{tag}.lo", tensor, shape, -bound, -bound + width - 1, limb_bits=limbs),
            B.RangeCheck(f"{tag}.hi", tensor, shape, bound - width + 1, bound, limb_bits=limbs)]


def _plan(spec: QuantSpec) -> _Plan:
    if not isinstance(spec, QuantSpec):
        raise TypeError(f"spec must be a QuantSpec, got {type(spec).__name__}")
    if not spec.weights:
        raise ValueError("the program has no weights")
    shapes, real, padded, flags, ranges, functions = {}, {}, [], {}, [], []
    for name, ws in sorted(spec.weights.items()):  # by name: a parsed spec's dict order is not the quantizer's
        bound = dtype_bound(ws.dtype)
        shape = tuple(int(d) for d in ws.shape)
        if not shape or min(shape) < 1:
            raise ValueError(f"weight {name!r} has an empty shape {shape}")
        wname = LAY.weight_name(name)
        pshape = LAY.padded_shape(shape)
        shapes[wname], real[wname] = pshape, shape
        if (2 * bound + 1).bit_length() <= MAX_FLAGGED_LOG:  # int8, int16: one pair lookup does both
            flag = f"{_TAG}~ind:{name}"
            flags[flag] = wname
            functions.append(B.FunctionLookup((wname, flag), pshape, flagged_table(bound)))
        else:  # int32: two windows by limbs, and a zero-check for the padding
            ranges += _window_checks(f"{_TAG}:{name}", wname, pshape, bound)
            if pshape != shape:
                padded.append(wname)
    return _Plan(shapes, real, tuple(padded), flags, B.Checks(_TAG, ranges, functions))


def blind_rules(plan: _Plan) -> dict[str, BL.Rule]:
    """The randomizer of every tensor whose value the proof would otherwise reveal: each int32
    weight (read by its padding zero-check and its windows) and each limb column (read by its
    window's recomposition) — the randomized extensions of :mod:`blindproof.zk.iop.blind`, with
    the tables committed in the aux commitment. The lookups need none: their leaf checks are linear
    claims hidden by their own randomizers."""
    shapes = dict(plan.shapes) | plan.checks.columns()
    rules: dict[str, BL.Rule] = {}
    for rc in plan.checks.ranges:
        if rc.direct():
            continue
        for name in [*rc.summands(), *(n for n, _, _, _ in rc.limbs())]:
            n = LAY.n_vars(shapes[name])
            if n and name not in rules:
                rules[name] = BL.make_rule(name, n, n - 1)
    return rules


def _padding_table(shape: Sequence[int]) -> np.ndarray:
    """``1 − ind`` as a canonical base table: 1 on padding entries, 0 on real ones."""
    return F.sub(np.ones(1 << LAY.n_vars(shape), dtype=np.uint32), LAY.indicator_table(shape))


def _flag_values(plan: _Plan) -> dict[str, np.ndarray]:
    """The public indicator columns (padded shape, 1 on real entries)."""
    out = {}
    for flag, wname in plan.flags.items():
        v = np.zeros(plan.shapes[wname], dtype=np.int64)
        v[tuple(slice(0, d) for d in plan.real[wname])] = 1
        out[flag] = v
    return out


_PAD_TERMS = [(1, (0, 1))]  # (1 − ind)·W


def statement_bytes(spec: QuantSpec, weights: pcs.Commitment, params: pcs.PcsParams) -> bytes:
    """The public statement: spec digest, weight commitment digest (root and layout), parameters."""
    return (bytes.fromhex(spec.digest()) + weights.digest()
            + struct.pack("<dII", float(params.security_bits), params.blowup, params.proximity_tests))


def _check_weight_commitment(spec: QuantSpec, com: pcs.Commitment, params: pcs.PcsParams) -> None:
    """ValueError unless the weight commitment holds exactly the spec's weights under the parameter rule."""
    from blindproof.zk.proof.config import expected_weight_layout  # commitment imports this module

    got = dict(zip(com.layout.names, com.layout.log_sizes))
    if got != expected_weight_layout(spec):
        raise ValueError("the weight commitment does not hold exactly the spec's weights at their sizes")
    pcs.check_layout_rule(com.layout, params, "the weight commitment")


# --- the proof container -------------------------------------------------------------------------------

@dataclass
class WellformedProof:
    """The aux commitment (a companion of the weight commitment), the padding and range checks, the
    batched lookups and the one opening of the weights stacked with the aux commitment."""

    aux_commitment: bytes
    checks: B.OpProof
    lookups: B.OpProof
    weight_opening: bytes  # weights and aux columns, stacked

    def to_bytes(self) -> bytes:
        """Self-describing bytes (magic ``BPWF``, format version 3)."""
        w = Writer()
        w.header(_MAGIC, _VERSION)
        w.bytes_(self.aux_commitment)
        self.checks.write(w)
        self.lookups.write(w)
        w.bytes_(self.weight_opening)
        return w.getvalue()

    @staticmethod
    def from_bytes(data: bytes) -> "WellformedProof":
        """Parse :meth:`to_bytes` output; :class:`ProofFormatError` on malformed input."""
        r = Reader(data, max_total=_MAX_PROOF)
        r.header(_MAGIC, (_VERSION,))
        aux = r.bytes_(B.MAX_PART_BYTES)
        checks = B.OpProof.read(r)
        lookups = B.OpProof.read(r)
        weight_opening = r.bytes_(B.MAX_PART_BYTES)
        r.finish()
        return WellformedProof(aux, checks, lookups, weight_opening)

    def opened_positions(self, weights: pcs.Commitment) -> np.ndarray:
        """The weight commitment's column positions this proof opens (for the opening ledger)."""
        aux = pcs.Commitment.from_bytes(self.aux_commitment)
        return pcs.Opening.from_bytes(self.weight_opening, [weights, aux]).positions


# --- prover ----------------------------------------------------------------------------------------------

def _committed_values(plan: _Plan, state: pcs.ProverState) -> dict[str, np.ndarray]:
    """Every weight as the committed rows hold it (padded shape, centred integers)."""
    lay, flat = state.commitment.layout, state.messages.reshape(-1)
    out = {}
    for name, shape in plan.shapes.items():
        i = lay.index(name)
        table = flat[lay.offsets[i]:lay.offsets[i] + (1 << lay.log_sizes[i])]
        out[name] = F.to_signed(table).reshape(shape)
    return out


def _prove_checks(ctx: B.ProverContext, plan: _Plan) -> tuple[B.OpProof, list[CL.Claim]]:
    """Padding zero-checks, then the range checks (lookups deferred to ``ctx.lookups``)."""
    proof, claims = B.OpProof(), []
    for name in plan.padded:
        ctx.transcript.absorb_bytes(PADDING_LABEL, name.encode("utf-8"))
        pad = _padding_table(plan.real[name])
        point, vals = B.prove_zero_check(ctx, proof, LAY.n_vars(plan.shapes[name]), [pad, ctx.table(name)], _PAD_TERMS,
                                         names=[None, name])
        claims.append(CL.Claim(name, point, vals[1]))
    claims += plan.checks.prove(ctx, proof)
    return proof, claims


def prove_wellformed(spec: QuantSpec, weights: pcs.ProverState, params: pcs.PcsParams, *,
                     rng: np.random.Generator | None = None, strict: bool = True) -> bytes:
    """Prove that the weights committed in ``weights`` (the opening state of a model's weight
    commitment for ``spec``, made under ``params``) respect their declared dtypes and have zero padding.

    ``rng`` draws the masks and the aux commitment's hiding randomness (a
    :class:`~blindproof.zk.proof.keys.KeyedFieldRng` makes the proof reproducible from the model key);
    by default they come from the OS CSPRNG. Raises ValueError if a committed weight is outside its
    range or its padding is not zero; ``strict=False`` (tests of cheating provers) proves anyway."""
    plan = _plan(spec)
    if not isinstance(weights, pcs.ProverState):
        raise TypeError(f"weights must be the weight commitment's pcs.ProverState, got {type(weights).__name__}")
    _check_weight_commitment(spec, weights.commitment, params)
    values = _committed_values(plan, weights)
    if strict:  # say what is wrong in the owner's terms before the checks would
        for name, ws in spec.weights.items():
            wname, bound = LAY.weight_name(name), dtype_bound(ws.dtype)
            inside = np.zeros(plan.shapes[wname], dtype=bool)
            inside[tuple(slice(0, d) for d in plan.real[wname])] = True
            v = values[wname]
            bad = v[inside & (np.abs(v) > bound)]
            if bad.size:
                raise ValueError(f"committed weight {name!r} has an entry {int(bad[0])} outside the {ws.dtype} range "
                                 f"[-{bound}, {bound}]")
            if np.any(v[~inside]):
                raise ValueError(f"committed weight {name!r} has non-zero padding")
    flags = _flag_values(plan)
    aux = plan.checks.witness(lambda n: flags[n] if n in flags else values[n], strict)  # raises if out of range
    shapes = dict(plan.shapes) | plan.checks.columns() | {f: plan.shapes[w] for f, w in plan.flags.items()}
    mask_rng = rng if rng is not None else _os_rng()
    rules = blind_rules(plan)
    shapes |= {r.table: (1 << r.r_vars,) for r in rules.values()}
    randomizers = BL.sample_tables(rules, mask_rng)
    scalars = sorted(n for n, sh in plan.shapes.items() if LAY.n_vars(sh) == 0)
    if scalars:  # a one-entry weight has no variable to randomize in: every claim on it is its value
        warnings.warn(NotHiddenWarning(f"the well-formedness proof does not hide the one-entry weights "
                                       f"{', '.join(scalars)} (docs/proofs.md §5)"), stacklevel=2)
    vals = values | flags | aux | randomizers

    # the masks' sizes follow from the spec: a dry run of the checks under a throwaway transcript,
    # then the batched lookups' GKR layers
    rec = M.MaskRecorder()
    dry = B.ProverContext(Transcript(DOMAIN + b"/mask-plan"), spec, shapes, values=vals, strict=strict,
                          lookups=B.LookupBatch(), masks=rec, blind=rules, one_opening=True)
    _prove_checks(dry, plan)
    masks = M.ProverMasks.sample(rec.plan + dry.lookups.mask_sizes(), mask_rng)

    aux_tables = {n: LAY.canonical(v) for n, v in aux.items()} | randomizers | masks.tables()
    # a companion of the weight commitment: the lookups' leaf claims mix weights and aux columns, and
    # one stacked opening settles both (it also brings the weight opening's fresh mask rows)
    aux_com, aux_state = pcs.commit_companion(weights.commitment.layout, aux_tables, rng=mask_rng)
    tr = Transcript(DOMAIN, statement_bytes(spec, weights.commitment, params))
    tr.absorb_digest(AUX_COMMITMENT_LABEL, aux_com.digest())
    ctx = B.ProverContext(tr, spec, shapes, values=vals, strict=strict, lookups=B.LookupBatch(), masks=masks,
                          blind=rules, one_opening=True)
    checks, claims = _prove_checks(ctx, plan)
    lookups, lclaims = ctx.lookups.prove(ctx)
    masks.check_all_used()
    claims += lclaims + masks.claims + ctx.blind_claims
    opened = settle_form(rules, _without_indicators(plan, claims))
    weight_opening = pcs.open_claims([weights, aux_state], opened, tr).to_bytes()
    return WellformedProof(aux_com.to_bytes(), checks, lookups, weight_opening).to_bytes()


def _without_indicators(plan: _Plan, claims: Sequence) -> list:
    """The claims left to open: the public indicator columns' are checked here (plain claims) or
    moved to the value side (terms of linear claims), never opened. Reject on a false one."""
    def public(name: str, point: np.ndarray):
        if name not in plan.flags:
            return None
        real = plan.real[plan.flags[name]]
        if point.shape[0] != LAY.n_vars(real):
            raise CL.Reject(f"the indicator column {name!r} read at a point of another size")
        return LAY.indicator_eval(real, point)

    out = []
    for c in claims:
        if isinstance(c, CL.Claim):
            v = public(c.tensor, c.point)
            if v is None:
                out.append(c)
            elif not np.array_equal(c.value, v):
                raise CL.Reject(f"the indicator column {c.tensor!r} has a wrong value")
            continue
        folded = CL.fold_public(c, public)
        if folded is not None:
            out.append(folded)
    return out


def _os_rng():
    from blindproof.zk.proof.keys import KeyedFieldRng  # commitment imports this module

    return KeyedFieldRng(os.urandom(32), "blindproof/weights-wellformed/masks")


# --- verifier ---------------------------------------------------------------------------------------------

def _parts(model) -> tuple[QuantSpec, pcs.Commitment, pcs.PcsParams]:
    if isinstance(model, tuple):
        if len(model) != 3:
            raise TypeError("model parts must be (spec, weight commitment, parameters)")
        spec, com, params = model
        if isinstance(spec, str):
            spec = QuantSpec.from_json(spec)
    else:
        if not all(hasattr(model, a) for a in ("spec", "weights", "params")):  # a ModelCommitment
            raise TypeError(f"model must be a ModelCommitment or (spec, weight commitment, parameters), "
                            f"got {type(model).__name__}")
        spec, com, params = model.spec, model.weights, model.params
    if not isinstance(spec, QuantSpec) or not isinstance(com, pcs.Commitment) or not isinstance(params, pcs.PcsParams):
        raise TypeError("model must be a ModelCommitment or (QuantSpec, pcs.Commitment, pcs.PcsParams)")
    return spec, com, params


def _check_aux_layout(plan: _Plan, aux: pcs.Commitment, weights: pcs.Commitment) -> int:
    """ValueError unless the aux commitment is a companion of the weight commitment holding exactly
    the expected columns at their sizes plus masks ``zk~mask.0 …``; returns the number of masks."""
    lay = aux.layout
    got = dict(zip(lay.names, lay.log_sizes))
    pcs.check_companion_layout(lay, weights.layout, got, "the aux commitment")
    for name, shape in plan.checks.columns().items():
        if got.pop(name, None) != LAY.n_vars(shape):
            raise ValueError(f"the aux commitment lacks column {name!r} or holds it at another size")
    for r in blind_rules(plan).values():
        if got.pop(r.table, None) != r.r_vars:
            raise ValueError(f"the aux commitment lacks randomizer {r.table!r} or holds it at another size")
    masks = sorted(got)
    if masks != sorted(M.mask_name(i) for i in range(len(masks))):
        raise ValueError(f"the aux commitment holds unexpected tensors ({', '.join(masks[:3])})")
    return len(masks)


def verify_wellformed(model, proof: bytes) -> WellformedResult:
    """Accept iff ``proof`` shows that every weight committed in ``model`` (a
    :class:`~blindproof.zk.proof.commitment.ModelCommitment`, or ``(spec, weight commitment, parameters)``)
    lies in its dtype's range with zero padding, with at least ``PROOF_FLOOR_BITS`` provable bits.
    The code parameters come from ``model`` alone. Never raises."""
    res = guarded(lambda: _verify(model, proof), "wellformed")
    if isinstance(res, WellformedResult):
        return res
    return WellformedResult(False, res.reason or "rejected")


def require_wellformed(model, proof: bytes) -> WellformedResult:
    """:func:`verify_wellformed`, raising :class:`WellformedError` with the reason on rejection."""
    res = verify_wellformed(model, proof)
    if not res.ok:
        raise WellformedError(f"the weights' well-formedness proof does not verify: {res.reason}")
    return res


def _reject(reason: str) -> WellformedResult:
    return WellformedResult(False, f"wellformed: {reason}")


def _verify(model, data) -> WellformedResult:
    from blindproof.zk.proof.soundness import PROOF_FLOOR_BITS
    from blindproof.zk.proof.statement import CountingTranscript, soundness_figures  # the verifier imports commitment

    try:
        spec, wcom, params = _parts(model)
        plan = _plan(spec)
        _check_weight_commitment(spec, wcom, params)
    except (TypeError, ValueError) as exc:
        return _reject(f"bad statement: {exc}")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return _reject("the proof must be bytes")
    try:
        proof = WellformedProof.from_bytes(bytes(data))
        aux = pcs.Commitment.from_bytes(proof.aux_commitment)
    except ProofFormatError as exc:
        return _reject(f"malformed proof: {exc}")
    try:
        n_masks = _check_aux_layout(plan, aux, wcom)
    except ValueError as exc:
        return _reject(str(exc))
    shapes = dict(plan.shapes) | plan.checks.columns() | {f: plan.shapes[w] for f, w in plan.flags.items()}
    tr = CountingTranscript(DOMAIN, statement_bytes(spec, wcom, params))
    tr.absorb_digest(AUX_COMMITMENT_LABEL, aux.digest())
    rules = blind_rules(plan)
    shapes |= {r.table: (1 << r.r_vars,) for r in rules.values()}
    ctx = B.VerifierContext(tr, spec, shapes, lookups=B.LookupBatch(), masks=M.VerifierMasks(), blind=rules,
                            one_opening=True)
    try:
        rd = B.ProofReader(proof.checks)
        claims: list[CL.Claim] = []
        for name in plan.padded:
            tr.absorb_bytes(PADDING_LABEL, name.encode("utf-8"))
            n = LAY.n_vars(plan.shapes[name])
            try:
                point, vals = B.verify_zero_check(ctx, rd, n, 2, _PAD_TERMS, names=[None, name])
            except CL.Reject as exc:
                raise CL.Reject(f"padding check of {name!r}: {exc}") from None
            if not np.array_equal(vals[0], F.esub(F.eone(), LAY.indicator_eval(plan.real[name], point))):
                raise CL.Reject(f"padding check of {name!r}: wrong indicator value")
            claims.append(CL.Claim(name, point, vals[1]))
        claims += plan.checks.verify(ctx, rd)
        rd.done()
        claims += ctx.lookups.verify(ctx, proof.lookups) + ctx.masks.claims + ctx.blind_claims
        opened = settle_form(rules, _without_indicators(plan, claims))
    except CL.Reject as exc:
        return _reject(str(exc))
    if ctx.masks.used != n_masks:
        return _reject(f"the aux commitment holds {n_masks} masks, the proof uses {ctx.masks.used}")
    res = pcs.verify([wcom, aux], opened, proof.weight_opening, tr)
    if not res.ok:
        return _reject(f"weight opening: {res.reason}")
    try:
        figs = soundness_figures(tr.counts, tr.lookups, None, 0, wcom.layout, len(opened), tr.lambda_degrees(),
                                 tr.extra_degree)
    except CL.Reject as exc:
        return _reject(str(exc))
    if not figs.provable_bits >= PROOF_FLOOR_BITS:
        return WellformedResult(False, f"wellformed: {figs.provable_bits:.1f} provable bits, below the floor of "
                                f"{PROOF_FLOOR_BITS}", (), figs.provable_bits, figs.conjectured_bits)
    return WellformedResult(True, "", (), figs.provable_bits, figs.conjectured_bits)


__all__: Sequence[str] = ("DOMAIN", "DTYPE_BOUNDS", "WellformedError", "WellformedProof", "WellformedResult",
                          "dtype_bound", "prove_wellformed", "require_wellformed", "statement_bytes",
                          "verify_wellformed")
