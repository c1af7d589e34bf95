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
   included) and commits, in a fresh hiding PCS commitment under the model commitment's parameters
   (the *aux* commitment), every limb column, every multiplicity column and the zero-knowledge masks
   of every sumcheck (:mod:`blindproof.zk.ops.zkmask`); its digest is absorbed before any challenge.
2. The int32 padding zero-checks, by weight name (label ``wellformed/padding``).
3. The checks of :class:`~blindproof.zk.ops.base.Checks` (the int32 windows' limb recompositions);
   every lookup is deferred and all are proved together
   (:class:`~blindproof.zk.ops.base.LookupBatch`, logUp-GKR with masked layers).
4. The claims left are settled: the indicator columns' by the verifier, aux columns and masks by one
   batched opening of the aux commitment, weights by one of the model's weight commitment.

The verifier derives every shape, column and table from the spec; it accepts the aux commitment only
with the layout the model commitment's parameters give (:func:`blindproof.zk.pcs.make_layout`), and
recomputes the soundness (union bound over every challenge and both openings) from what it saw;
below ``PROOF_FLOOR_BITS`` provable bits it rejects.

What it reveals: the claimed values of the weight tables at the lookup leaf points (and, for int32
vectors, at the windows' and zero-checks' points), once per commitment; the lookup roots and GKR layer
values; the sumcheck rounds are masked and the openings hiding. It opens the weight commitment once,
like one more model proof.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from blindproof.zk import field as F
from blindproof.zk import lookup as L
from blindproof.zk import pcs
from blindproof.zk.encoding import ProofFormatError, Reader, Writer
from blindproof.zk.ops import base as B
from blindproof.zk.ops import zkmask as M
from blindproof.zk.quant.spec import DTYPE_MAX, QuantSpec
from blindproof.zk.transcript import Transcript
from blindproof.zk.verdict import SoundnessResult, guarded

DOMAIN = b"blindproof/weights-wellformed/v2"
AUX_COMMITMENT_LABEL = "wellformed/aux-commitment"
PADDING_LABEL = "wellformed/padding"
DTYPE_BOUNDS: dict[str, int] = DTYPE_MAX  # the reference's bounds (quant.spec), one table for both
_MAGIC = b"BPWF"
_VERSION = 2  # 2: extension-coefficient masks opened by linear claims
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
        wname = B.weight_name(name)
        pshape = B.padded_shape(shape)
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


def _padding_table(shape: Sequence[int]) -> np.ndarray:
    """``1 − ind`` as a canonical base table: 1 on padding entries, 0 on real ones."""
    return F.sub(np.ones(1 << B.n_vars(shape), dtype=np.uint32), B.indicator_table(shape))


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
    from blindproof.zk.commitment import expected_weight_layout  # commitment imports this module

    got = dict(zip(com.layout.names, com.layout.log_sizes))
    if got != expected_weight_layout(spec):
        raise ValueError("the weight commitment does not hold exactly the spec's weights at their sizes")
    pcs.check_layout_rule(com.layout, params, "the weight commitment")


# --- the proof container -------------------------------------------------------------------------------

@dataclass
class WellformedProof:
    """The aux commitment, the padding and range checks, the batched lookups and the two openings."""

    aux_commitment: bytes
    checks: B.OpProof
    lookups: B.OpProof
    aux_opening: bytes
    weight_opening: bytes

    def to_bytes(self) -> bytes:
        """Self-describing bytes (magic ``BPWF``, format version 1)."""
        w = Writer()
        w.header(_MAGIC, _VERSION)
        w.bytes_(self.aux_commitment)
        self.checks.write(w)
        self.lookups.write(w)
        w.bytes_(self.aux_opening)
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
        aux_opening = r.bytes_(B.MAX_PART_BYTES)
        weight_opening = r.bytes_(B.MAX_PART_BYTES)
        r.finish()
        return WellformedProof(aux, checks, lookups, aux_opening, weight_opening)


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


def _prove_checks(ctx: B.ProverContext, plan: _Plan) -> tuple[B.OpProof, list[B.Claim]]:
    """Padding zero-checks, then the range checks (lookups deferred to ``ctx.lookups``)."""
    proof, claims = B.OpProof(), []
    for name in plan.padded:
        ctx.transcript.absorb_bytes(PADDING_LABEL, name.encode("utf-8"))
        pad = _padding_table(plan.real[name])
        point, vals = B.prove_zero_check(ctx, proof, B.n_vars(plan.shapes[name]), [pad, ctx.table(name)], _PAD_TERMS)
        claims.append(B.Claim(name, point, vals[1]))
    claims += plan.checks.prove(ctx, proof)
    return proof, claims


def prove_wellformed(spec: QuantSpec, weights: pcs.ProverState, params: pcs.PcsParams, *,
                     rng: np.random.Generator | None = None, strict: bool = True) -> bytes:
    """Prove that the weights committed in ``weights`` (the opening state of a model's weight
    commitment for ``spec``, made under ``params``) respect their declared dtypes and have zero padding.

    ``rng`` draws the masks and the aux commitment's hiding randomness (a
    :class:`~blindproof.zk.commitment.KeyedFieldRng` makes the proof reproducible from the model key);
    by default they come from the OS CSPRNG. Raises ValueError if a committed weight is outside its
    range or its padding is not zero; ``strict=False`` (tests of cheating provers) proves anyway."""
    plan = _plan(spec)
    if not isinstance(weights, pcs.ProverState):
        raise TypeError(f"weights must be the weight commitment's pcs.ProverState, got {type(weights).__name__}")
    _check_weight_commitment(spec, weights.commitment, params)
    values = _committed_values(plan, weights)
    if strict:  # say what is wrong in the owner's terms before the checks would
        for name, ws in spec.weights.items():
            wname, bound = B.weight_name(name), dtype_bound(ws.dtype)
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
    vals = values | flags | aux
    mask_rng = rng if rng is not None else _os_rng()

    # the masks' sizes follow from the spec: a dry run of the checks under a throwaway transcript,
    # then the batched lookups' GKR layers
    rec = M.MaskRecorder()
    dry = B.ProverContext(Transcript(DOMAIN + b"/mask-plan"), spec, shapes, values=vals, strict=strict,
                          lookups=B.LookupBatch(), masks=rec)
    _prove_checks(dry, plan)
    masks = M.ProverMasks.sample(rec.plan + dry.lookups.mask_sizes(), mask_rng)

    aux_tables = {n: B.canonical(v) for n, v in aux.items()} | masks.tables()
    aux_com, aux_state = pcs.commit(aux_tables, params, rng=rng)
    tr = Transcript(DOMAIN, statement_bytes(spec, weights.commitment, params))
    tr.absorb_digest(AUX_COMMITMENT_LABEL, aux_com.digest())
    ctx = B.ProverContext(tr, spec, shapes, values=vals, strict=strict, lookups=B.LookupBatch(), masks=masks)
    checks, claims = _prove_checks(ctx, plan)
    lookups, lclaims = ctx.lookups.prove(ctx)
    masks.check_all_used()
    claims += lclaims + masks.claims
    w_claims = [c for c in claims if _tensor(c) in plan.shapes]
    a_claims = [c for c in claims if _tensor(c) not in plan.shapes and _tensor(c) not in plan.flags]
    aux_opening = pcs.open_claims(aux_state, a_claims, tr).to_bytes()
    # the weight commitment keeps no mask rows: the opening brings a companion drawn from ``mask_rng``
    weight_opening = pcs.open_claims(weights, w_claims, tr, rng=mask_rng).to_bytes()
    return WellformedProof(aux_com.to_bytes(), checks, lookups, aux_opening, weight_opening).to_bytes()


def _tensor(claim) -> str:
    """The tensor a claim is on (a linear claim's terms, a mask's, are all on one table)."""
    return claim.terms[0][0] if hasattr(claim, "terms") else claim.tensor


def _os_rng():
    from blindproof.zk.commitment import KeyedFieldRng  # commitment imports this module

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
        from blindproof.zk.commitment import ModelCommitment  # commitment imports this module

        if not isinstance(model, ModelCommitment):
            raise TypeError(f"model must be a ModelCommitment or (spec, weight commitment, parameters), "
                            f"got {type(model).__name__}")
        spec, com, params = model.spec, model.weights, model.params
    if not isinstance(spec, QuantSpec) or not isinstance(com, pcs.Commitment) or not isinstance(params, pcs.PcsParams):
        raise TypeError("model must be a ModelCommitment or (QuantSpec, pcs.Commitment, pcs.PcsParams)")
    return spec, com, params


def _check_aux_layout(plan: _Plan, aux: pcs.Commitment, params: pcs.PcsParams) -> int:
    """ValueError unless the aux commitment holds exactly the expected columns at their sizes plus
    masks ``zk~mask.0 …``, under the layout the parameters give; returns the number of masks."""
    lay = aux.layout
    pcs.check_layout_rule(lay, params, "the aux commitment")
    got = dict(zip(lay.names, lay.log_sizes))
    for name, shape in plan.checks.columns().items():
        if got.pop(name, None) != B.n_vars(shape):
            raise ValueError(f"the aux commitment lacks column {name!r} or holds it at another size")
    masks = sorted(got)
    if masks != sorted(M.mask_name(i) for i in range(len(masks))):
        raise ValueError(f"the aux commitment holds unexpected tensors ({', '.join(masks[:3])})")
    return len(masks)


def verify_wellformed(model, proof: bytes) -> WellformedResult:
    """Accept iff ``proof`` shows that every weight committed in ``model`` (a
    :class:`~blindproof.zk.commitment.ModelCommitment`, or ``(spec, weight commitment, parameters)``)
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
    from blindproof.zk.soundness import PROOF_FLOOR_BITS
    from blindproof.zk.verifier import CountingTranscript, soundness_figures  # the verifier imports commitment

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
        n_masks = _check_aux_layout(plan, aux, params)
    except ValueError as exc:
        return _reject(str(exc))
    shapes = dict(plan.shapes) | plan.checks.columns() | {f: plan.shapes[w] for f, w in plan.flags.items()}
    tr = CountingTranscript(DOMAIN, statement_bytes(spec, wcom, params))
    tr.absorb_digest(AUX_COMMITMENT_LABEL, aux.digest())
    ctx = B.VerifierContext(tr, spec, shapes, lookups=B.LookupBatch(), masks=M.VerifierMasks())
    try:
        rd = B.ProofReader(proof.checks)
        claims: list[B.Claim] = []
        for name in plan.padded:
            tr.absorb_bytes(PADDING_LABEL, name.encode("utf-8"))
            n = B.n_vars(plan.shapes[name])
            try:
                point, vals = B.verify_zero_check(ctx, rd, n, 2, _PAD_TERMS)
            except B.Reject as exc:
                raise B.Reject(f"padding check of {name!r}: {exc}") from None
            if not np.array_equal(vals[0], F.esub(F.eone(), B.indicator_eval(plan.real[name], point))):
                raise B.Reject(f"padding check of {name!r}: wrong indicator value")
            claims.append(B.Claim(name, point, vals[1]))
        claims += plan.checks.verify(ctx, rd)
        rd.done()
        claims += ctx.lookups.verify(ctx, proof.lookups) + ctx.masks.claims
        for c in claims:  # the indicator columns are public: evaluated here, never opened
            if _tensor(c) in plan.flags:
                real = plan.real[plan.flags[c.tensor]]
                if c.point.shape[0] != B.n_vars(real) or not np.array_equal(c.value, B.indicator_eval(real, c.point)):
                    raise B.Reject(f"the indicator column {c.tensor!r} has a wrong value")
    except B.Reject as exc:
        return _reject(str(exc))
    if ctx.masks.used != n_masks:
        return _reject(f"the aux commitment holds {n_masks} masks, the proof uses {ctx.masks.used}")
    w_claims = [c for c in claims if _tensor(c) in plan.shapes]
    a_claims = [c for c in claims if _tensor(c) not in plan.shapes and _tensor(c) not in plan.flags]
    res = pcs.verify(aux, a_claims, proof.aux_opening, tr)
    if not res.ok:
        return _reject(f"aux opening: {res.reason}")
    res = pcs.verify(wcom, w_claims, proof.weight_opening, tr)
    if not res.ok:
        return _reject(f"weight opening: {res.reason}")
    try:
        figs = soundness_figures(tr.counts, tr.lookups, aux.layout, len(a_claims), wcom.layout, len(w_claims),
                                 tr.lambda_degrees())
    except B.Reject as exc:
        return _reject(str(exc))
    if not figs.provable_bits >= PROOF_FLOOR_BITS:
        return WellformedResult(False, f"wellformed: {figs.provable_bits:.1f} provable bits, below the floor of "
                                f"{PROOF_FLOOR_BITS}", (), figs.provable_bits, figs.conjectured_bits)
    return WellformedResult(True, "", (), figs.provable_bits, figs.conjectured_bits)


__all__: Sequence[str] = ("DOMAIN", "DTYPE_BOUNDS", "WellformedError", "WellformedProof", "WellformedResult",
                          "dtype_bound", "prove_wellformed", "require_wellformed", "statement_bytes",
                          "verify_wellformed")
