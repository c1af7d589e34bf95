"""Prove and verify a whole integer program trace, op by op, with the claims settled at the end.

Protocol ("commit everything"):

1. Shapes. Every tensor's shape follows from the public input shapes through the ops' ``shapes``
   (:func:`infer_shapes`); the verifier never takes a shape from the prover.
2. Commit. The transcript already holds the statement (the caller's). Every canonical table (trace
   tensors, witnesses, weights ``"w:<name>"``, aux columns) goes to ``settler.commit`` before any
   challenge; the settler decides what to commit (public tensors and weights are bound elsewhere).
3. Outputs. For each program output a random point is drawn and the claim ``Y(r) = Ỹ(r)`` is computed
   from the public output by both sides.
4. Ops, last to first. Each op whose output carries claims proves them (``ops.protocol(kind)``); the
   claims it returns go to the op that produced their tensor (if that op comes earlier) or to the final
   set. An op whose output has no claim is not needed for the outputs and is skipped.
   Merge first: a tensor read by several ops (or read twice by one) carries several claims; they are
   merged into ONE claim (``base.prove_reduce``: a degree-2 sumcheck against ``eq(r_0, ·) + Σ_{i≥1} α_i eq(r_i, ·)``,
   its proof in ``ProgramProof.merges``) and the op is handed only that claim. So every claim on a
   computed tensor is reduced by the op that computed it (or opened by it, for the ops that prove
   their relation on the committed output): none reaches the settler past its op, and a prover
   cannot commit an output that is right at one reader's point and wrong at another's.
   The range checks and table lookups of all ops are deferred (``base.LookupBatch``) and proved
   together after the last op: one logUp-GKR lookup per table and pack of ≤ 14 groups.
   Their claims are settled by the commitment, after every op has had its turn, so a deferred lookup
   may read only tensors of its own op (output, witnesses, aux columns) or public ones: a tensor
   computed by an EARLIER op must be tied to it at op time (``lookup_ops``: ``index = x`` at a fresh
   point, before the deferral), else that op might never be proved (a SwiGLU gate read only by its
   SiLU lookup once was not). Both sides refuse a program that breaks this rule (:meth:`_Run.check_deferred`).
5. Settle. Every claim left goes to ``settler.settle``; the verifier also evaluates the claims on
   public tensors itself.
"""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from blindproof.zk.field import babybear as F
from blindproof.zk.field.encoding import ProofFormatError, Reader, Writer
from blindproof.zk.ops import base as B
from blindproof.zk.iop import claims as CL
from blindproof.zk.iop import layout as LAY
from blindproof.zk.iop import blind as BL
from blindproof.zk.ops import protocol
from blindproof.zk.iop import masks as M
from blindproof.quant.reference import Trace
from blindproof.quant.spec import Op, QuantSpec
from blindproof.zk.iop.transcript import Transcript
from blindproof.zk.verdict import VerifyResult, guarded

_MAGIC = b"BPPG"
_VERSION = 4  # 4: extension-coefficient masks opened by linear claims (no reduction sumcheck); 3: randomized extensions (δ parts); 2: merges of multi-claim outputs
MAX_PROOF = 1 << 30
_DOMAIN = b"blindproof/zk/program/v4"


def infer_shapes(spec: QuantSpec, input_shapes: Mapping[str, Sequence[int]]) -> dict[str, tuple[int, ...]]:
    """Shapes of every tensor, witness, weight and aux column, from the input shapes alone."""
    shapes: dict[str, tuple[int, ...]] = {}
    for name in spec.inputs:
        if name not in input_shapes:
            raise ValueError(f"input {name!r} missing")
        shapes[name] = tuple(int(d) for d in input_shapes[name])
    for name, ws in spec.weights.items():
        if LAY.weight_name(name) in shapes:
            raise ValueError(f"weight {name!r}: {LAY.weight_name(name)!r} is also a public tensor")
        shapes[LAY.weight_name(name)] = tuple(ws.shape)
    for op in spec.ops:
        got = protocol(op.kind).shapes(op, [shapes[n] for n in op.inputs], spec)
        for k, v in got.items():
            if k in shapes:
                raise ValueError(f"op {op.kind} -> {op.output}: tensor {k!r} is defined twice")
            shapes[k] = tuple(int(d) for d in v)
    return shapes


def blind_rules(spec: QuantSpec, shapes: Mapping[str, tuple[int, ...]],
                public: Mapping[str, np.ndarray], lengths: Mapping[str, int] | None = None) -> dict[str, BL.Rule]:
    """The randomizer of every committed tensor: trace tensors, witnesses, aux columns and weights
    (not the public tensors or tensors without a variable). The blinding variable is the tensor's
    last one unless a reader needs another (an op's ``blind_vars``; None: a reader that sums none of
    its variables, or two readers that need different ones — the tensor then stays unblinded, which
    :func:`unblinded` lists); a relabelling (``relabel``: the heads ops) shares its source's
    randomizer, its requirements carried back to the source. A weight's randomizer table lives in the
    weight opening's companion, every other one in the trace commitment. ``lengths`` (randomizer
    table -> coordinates) sizes the trace tensors' randomizers to what a proof reveals about them
    (:func:`reveal_counts`); the weights' by the spec's count of their readers (:func:`companion_tensors`)."""
    req = _requirements(spec, shapes)
    reads = weight_reads(spec)
    relabelled = {out for out, _, _ in _relabels(spec, shapes)}
    rules: dict[str, BL.Rule] = {}
    for name, shape in shapes.items():
        if name in public or name in relabelled or BL.is_blind_table(name):
            continue
        n = LAY.n_vars(shape)
        if n and not (name in req and req[name] is None):
            s = req.get(name, n - 1)
            if name.startswith("w:"):  # sized by the spec, as the companion is (companion_tensors)
                coords = _weight_coordinates(s, reads.get(name, 0))
            elif lengths is None or BL.blind_name(name) not in lengths:  # as for a tensor never revealed
                coords = BL.coordinates_for(s, BL.dims_needed(s, 0))
            else:
                coords = BL.coordinates_of(s, lengths[BL.blind_name(name)])
            rules[name] = BL.make_rule(name, n, s, coords)
    for out, src, perm in _relabels(spec, shapes):
        if src in rules:
            rules[out] = rules[src].permuted(out, perm)
    return rules


def _relabels(spec: QuantSpec, shapes) -> list[tuple[str, str, list[int]]]:
    return [protocol(op.kind).relabel(op, shapes) for op in spec.ops if hasattr(protocol(op.kind), "relabel")]


def _requirements(spec: QuantSpec, shapes) -> dict[str, int | None]:
    """Per tensor, the blinding variable its readers need (None: none works)."""
    req: dict[str, int | None] = {}

    def need(name: str, i: int | None) -> None:
        req[name] = i if req.get(name, i) == i else None

    for op in spec.ops:
        for name, i in getattr(protocol(op.kind), "blind_vars", lambda *_: {})(op, shapes).items():
            need(name, i)
    for out, src, perm in reversed(_relabels(spec, shapes)):
        if out in req:
            need(src, None if req[out] is None else perm[req[out]])
    return req


def unblinded(spec: QuantSpec, shapes: Mapping[str, tuple[int, ...]], public: Mapping[str, np.ndarray]) -> list[str]:
    """Committed tensors left without a randomizer (their claims reveal evaluations)."""
    rules = blind_rules(spec, shapes, public)
    return sorted(n for n in shapes if n not in public and n not in rules and not BL.is_blind_table(n)
                  and LAY.n_vars(shapes[n]))


_WEIGHT_READERS = ("linear", "conv", "embed", "mul_weight", "add_weight")  # their blind_vars need only weight shapes


def companion_tensors(spec: QuantSpec) -> dict[str, int]:
    """The per-proof data tensors of the weight opening's companion: the weights' randomizer tables
    (name -> log size). They depend on the spec alone: a weight's readers need only its shape, and
    each op that reads a weight makes one claim on it (:func:`weight_reads`), so its randomizer is
    sized for that many revealed values."""
    shapes = {LAY.weight_name(k): tuple(w.shape) for k, w in spec.weights.items()}
    req = {}
    for op in spec.ops:
        if op.kind not in _WEIGHT_READERS:
            continue
        got = getattr(protocol(op.kind), "blind_vars", lambda *_: {})(op, shapes)
        for name, i in got.items():
            if name in shapes:
                req[name] = i if req.get(name, i) == i else None
    reads = weight_reads(spec)
    out = {}
    for name, shape in shapes.items():
        n = LAY.n_vars(shape)
        if n and not (name in req and req[name] is None):
            s = req.get(name, n - 1)
            r = BL.make_rule(name, n, s, _weight_coordinates(s, reads.get(name, 0)))
            out[r.table] = r.r_vars
    return dict(sorted(out.items()))


def _weight_coordinates(s: int, reads: int) -> int:
    """Randomizer coordinates of a weight with blinding variable ``s`` that ``reads`` ops read."""
    return BL.coordinates_for(s, BL.dims_needed(s, max(1, reads)))


def weight_reads(spec: QuantSpec) -> dict[str, int]:
    """Per weight (``"w:<name>"``), the values a proof reveals about it: one claim per op that reads it
    (an op is handed one merged claim on its output and reads each of its weights once), and for a
    linear layer's bias also the payback of its randomizer in the layer's sum."""
    out: dict[str, int] = {}
    for op in spec.ops:
        if op.kind in _WEIGHT_READERS:
            for key, k in (("weight", 1), ("bias", 2)):
                if op.params.get(key):
                    name = LAY.weight_name(op.params[key])
                    out[name] = out.get(name, 0) + k
    return out


def settle_form(rules: Mapping[str, BL.Rule] | None, claims: Sequence) -> list:
    """The claims a settler proves: a randomized claim becomes the linear claim on its tensor and its
    randomizer table; plain claims and linear claims pass unchanged."""
    out: list = []
    for c in claims:
        r = None if rules is None or not isinstance(c, CL.Claim) or c.plain else rules.get(c.tensor)
        out.append(c if r is None else CL.LinearClaim(tuple(r.settle_terms(c.point)), c.value))
    return out


_RULES: dict[tuple, dict[str, BL.Rule]] = {}
_RULES_MAX = 64


def _cached_rules(spec: QuantSpec, shapes: Mapping[str, tuple[int, ...]], public: Mapping[str, np.ndarray],
                  lengths: Mapping[str, int] | None) -> dict[str, BL.Rule]:
    """:func:`blind_rules`, cached: they depend on the spec, the input shapes (which fix every other
    shape), which tensors are public and the randomizer sizes — never on values (rules are frozen)."""
    key = (spec.digest(), tuple((n, tuple(shapes[n])) for n in spec.inputs), tuple(sorted(public)),
           None if lengths is None else tuple(sorted(lengths.items())))
    got = _RULES.get(key)
    if got is None:
        if len(_RULES) >= _RULES_MAX:
            _RULES.clear()
        got = _RULES[key] = blind_rules(spec, shapes, public, lengths)
    return dict(got)


def _blind_setup(spec: QuantSpec, shapes: dict[str, tuple[int, ...]], public: Mapping[str, np.ndarray],
                 settler: CL.Settler, lengths: Mapping[str, int] | None = None) -> dict[str, BL.Rule] | None:
    """The rules when the settler proves linear claims (else None: nothing is blinded); the
    randomizer tables' shapes are set in ``shapes``. The verifier takes the trace tensors'
    randomizer sizes from the settler (the trace commitment's layout: they only protect the prover,
    so the prover picks them); the prover passes its own."""
    if not getattr(settler, "linear_claims", False):
        return None
    if lengths is None and hasattr(settler, "randomizer_lengths"):
        lengths = settler.randomizer_lengths()
    rules = _cached_rules(spec, shapes, public, lengths)
    for r in rules.values():
        shapes[r.table] = (1 << r.r_vars,)
    return rules


def _public(spec: QuantSpec, inputs: Mapping[str, np.ndarray],
            outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    public: dict[str, np.ndarray] = {}
    for group, names, src in (("input", spec.inputs, inputs), ("output", spec.outputs, outputs)):
        for n in names:
            if n in public:  # one name, two statement values: never let the second win silently
                raise CL.Reject(f"public {group} {n!r} is also an input")
            if n not in src:
                raise CL.Reject(f"public {group} {n!r} missing")
            v = np.asarray(src[n])
            if v.dtype.kind not in "iu":
                raise CL.Reject(f"public {group} {n!r} must be integers")
            public[n] = v.astype(np.int64)
    return public


@dataclass
class ProgramProof:
    """Per op: the merge of its output's claims (None unless it carries more than one) and the op's
    proof (None for an op whose output carries no claim); then the batched lookups."""

    op_proofs: list[B.OpProof | None]
    lookups: B.OpProof = field(default_factory=B.OpProof)
    merges: list[B.OpProof | None] | None = None

    def __post_init__(self) -> None:
        if self.merges is None:
            self.merges = [None] * len(self.op_proofs)
        if len(self.merges) != len(self.op_proofs):
            raise ValueError(f"{len(self.merges)} merges for {len(self.op_proofs)} op proofs")

    def to_bytes(self) -> bytes:
        """Serialized proof (format version 2): per op a flag byte (bit 0: op proof, bit 1: merge),
        the merge, the op proof; then the lookups."""
        w = Writer()
        w.header(_MAGIC, _VERSION)
        w.u32(len(self.op_proofs))
        for p, m in zip(self.op_proofs, self.merges):
            w.u8((p is not None) | (m is not None) << 1)
            if m is not None:
                m.write(w)
            if p is not None:
                p.write(w)
        self.lookups.write(w)
        return w.getvalue()

    @staticmethod
    def from_bytes(data: bytes, n_ops: int) -> "ProgramProof":
        """Parse for a program of ``n_ops`` ops; ProofFormatError on malformed input (other versions
        included)."""
        r = Reader(data, max_total=MAX_PROOF)
        r.header(_MAGIC, (_VERSION,))
        n = r.u32()
        if n != n_ops:
            raise ProofFormatError(f"proof has {n} op proofs, the program {n_ops} ops")
        ops: list[B.OpProof | None] = []
        merges: list[B.OpProof | None] = []
        for _ in range(n):
            flags = r.u8(max_value=3)
            merges.append(B.OpProof.read(r) if flags & 2 else None)
            ops.append(B.OpProof.read(r) if flags & 1 else None)
        lookups = B.OpProof.read(r)
        r.finish()
        return ProgramProof(ops, lookups, merges)

    def size_bytes(self) -> int:
        return len(self.to_bytes())


@dataclass
class _Run:
    """Claim bookkeeping shared by prover and verifier."""

    spec: QuantSpec
    public: Mapping[str, np.ndarray]
    producer: dict[str, int] = field(default_factory=dict)
    pending: CL.ClaimSet = field(default_factory=CL.ClaimSet)
    final: list[CL.Claim] = field(default_factory=list)
    reveals: dict[str, int] = field(default_factory=dict)  # randomizer table -> randomized values revealed
    seen: set = field(default_factory=set)  # (tensor, point, value) of every value counted
    points: dict[str, dict] = field(default_factory=dict)  # randomizer table -> the revealed claims' points

    def __post_init__(self) -> None:
        self.producer = {op.output: i for i, op in enumerate(self.spec.ops)}

    def output_claims(self, ctx: B.VerifierContext) -> None:
        for name in self.spec.outputs:
            n = ctx.vars(name)
            r = ctx.transcript.challenge_exts("program/output_point", n)
            self.pending.add(CL.Claim(name, r, LAY.public_eval(self.public[name], r)))

    def reveal(self, ctx: B.VerifierContext, claims: Sequence[CL.Claim]) -> None:
        """Count the randomized values a proof reveals, per randomizer table (each one once: by content —
        an object's ``id`` is reused once it is freed, which once undercounted a tensor now and then)."""
        for c in claims:
            r = ctx.rule(c.tensor) if isinstance(c, CL.Claim) and not c.plain else None
            if r is None:
                continue
            key = (c.tensor, c.point.tobytes(), c.value.tobytes())
            if key not in self.seen:
                self.seen.add(key)
                self.reveals[r.table] = self.reveals.get(r.table, 0) + 1
                self.points.setdefault(r.table, {})[c.point.tobytes()] = c.point

    def shares_phi(self, table: str, coords: Sequence[int]) -> bool:
        """Whether two revealed values of ``table``'s tensor read ``Φ`` at one point (they agree on every
        randomizer coordinate ``coords``): their randomizer parts are known multiples of one value, so a
        combination cancels it and shows the tensor (a width-2 tensor whose coordinates above its
        blinding variable are rows two readers fix alike, e.g. two linears whose outputs are added)."""
        keys = [pt[sorted(set(coords))].tobytes() for pt in self.points.get(table, {}).values()]
        return len(set(keys)) < len(keys)

    def route(self, i: int, claims: Sequence[CL.Claim]) -> None:
        for c in claims:
            j = self.producer.get(c.tensor)
            if j is not None and j < i:
                self.pending.add(c)
            elif j is not None and j > i:
                raise CL.Reject(f"op {i} made a claim on the later tensor {c.tensor!r}")
            else:
                self.final.append(c)

    def take(self, ctx: B.VerifierContext, op: Op) -> list[CL.Claim]:
        """Every claim on the op's output (possibly none); each must have the tensor's number of
        coordinates (the merge and the op rely on it)."""
        claims = self.pending.pop(op.output)
        n = ctx.vars(op.output)
        for c in claims:
            if c.point.shape[0] != n:
                raise CL.Reject(f"a claim on {op.output!r} has {c.point.shape[0]} coordinates, the tensor {n}")
        return claims

    def check_deferred(self, ctx: B.VerifierContext, i: int, first_entry: int) -> None:
        """Reject if a lookup op ``i`` deferred (entries from ``first_entry`` on) reads a tensor
        computed by an earlier op (see the module docstring)."""
        for _, groups, _ in ctx.lookups.entries[first_entry:]:
            for names, _ in groups:
                for name in names:
                    j = self.producer.get(name)
                    if j is not None and j < i:
                        op = self.spec.ops[i]
                        raise CL.Reject(f"op {op.kind} -> {op.output} defers a lookup on {name!r}, computed by "
                                       f"an earlier op: such a read must be tied to that op when it is proved")

    def check_done(self) -> None:
        """Every claim on a computed tensor went to its op."""
        if len(self.pending):
            raise CL.Reject(f"claims left on {', '.join(self.pending.tensors())} after every op")

    def check_public(self, ctx: B.VerifierContext) -> None:
        for c in self.final:
            if isinstance(c, CL.Claim) and c.tensor in self.public:
                v = self.public[c.tensor]
                if c.point.shape[0] != LAY.n_vars(v.shape) or not np.array_equal(LAY.public_eval(v, c.point), c.value):
                    raise CL.Reject(f"claim on the public tensor {c.tensor!r} is false")


def with_aux(spec: QuantSpec, values: Mapping[str, np.ndarray], public: Mapping[str, np.ndarray],
             start: int = 0, strict: bool = True) -> tuple[dict[str, np.ndarray], dict[str, tuple[int, ...]]]:
    """The prover's values (trace tensors and ``"w:"`` weights) plus every op's aux columns, and the
    shapes of everything. Shapes come from the input shapes; a value of another shape is an error."""
    shapes = infer_shapes(spec, {n: np.shape(values[n]) for n in spec.inputs})
    vals: dict[str, np.ndarray] = {n: np.asarray(v, dtype=np.int64) for n, v in values.items()}
    ctx = B.ProverContext(Transcript(_DOMAIN), spec, shapes, public=dict(public), start=start, values=vals,
                          strict=strict)
    for op in spec.ops:
        vals.update(protocol(op.kind).aux(ctx, op))
    for name, v in vals.items():
        if name in shapes and tuple(np.shape(v)) != shapes[name]:
            raise ValueError(f"tensor {name!r} has shape {np.shape(v)}, the protocol expects {shapes[name]}")
    return vals, shapes


class _NullSettler(CL.Settler):
    """The dry run's settler: commits and settles nothing."""

    def commit(self, tables, transcript: Transcript) -> None:
        pass

    def settle(self, claims, transcript: Transcript) -> None:
        pass


_MASK_PLANS: dict[tuple, list] = {}
_MASK_PLANS_MAX = 64


def _prove_ops(ctx: B.ProverContext, run: "_Run") -> tuple[list[B.OpProof | None], list[B.OpProof | None]]:
    """The op proofs and the merges of multi-claim outputs, last op first (the claims they leave go
    to ``run``). The mask plan's dry run calls this too, so the merges' masks are planned alike."""
    spec = ctx.spec
    run.output_claims(ctx)
    proofs: list[B.OpProof | None] = [None] * len(spec.ops)
    merges: list[B.OpProof | None] = [None] * len(spec.ops)
    for i in range(len(spec.ops) - 1, -1, -1):
        op = spec.ops[i]
        claims = run.take(ctx, op)
        if not claims:
            continue
        B.op_label(ctx, op)
        if len(claims) > 1:
            merges[i] = B.OpProof()
            claims = [B.prove_reduce(ctx, merges[i], claims)]
            run.reveal(ctx, claims)
        first = len(ctx.lookups.entries) if ctx.lookups is not None else 0
        proofs[i], new = protocol(op.kind).prove(ctx, op, claims)
        run.reveal(ctx, new)
        run.route(i, new)
        if ctx.lookups is not None:
            run.check_deferred(ctx, i, first)
    run.check_done()
    return proofs, merges


def mask_plan(spec: QuantSpec, vals: Mapping[str, np.ndarray], shapes: Mapping[str, tuple[int, ...]],
              public: Mapping[str, np.ndarray], start: int = 0, strict: bool = True,
              rules: Mapping[str, BL.Rule] | None = None) -> tuple[list, dict[str, int]]:
    """(n_vars, round degrees) of every masked sumcheck of a proof, in order, and the randomizer
    coordinates each trace tensor needs: from a dry run of the op proofs under a throwaway transcript
    (sizes and counts depend only on the program, the input shapes and the blinding, never on
    challenges) — the op sumchecks, then the layer sumchecks of the deferred lookups' GKRs — cached
    per (spec digest, input shapes, start, blinding). A tensor needs four base dimensions of ``Φ``
    per randomized value a proof reveals about it (the claims its readers make, its merged claim) and
    per randomizer value a sum pays back."""
    key = (spec.digest(), tuple((n, shapes[n]) for n in spec.inputs), int(start), rules is not None,
           _self_degrees(rules))
    got = _MASK_PLANS.get(key)
    if got is None:
        rec = M.MaskRecorder()
        ctx = B.ProverContext(Transcript(_DOMAIN + b"/mask-plan"), spec, shapes, public=dict(public), start=start,
                              values=vals, strict=strict, lookups=B.LookupBatch(), masks=rec, blind=rules)
        run = _Run(spec, public)
        _prove_ops(ctx, run)
        plan = rec.plan + ctx.lookups.mask_sizes()  # the lookups are proved after the op proofs
        counts = reveal_counts(run, ctx)
        lengths, short = {}, {}
        own = {r.table: r for r in (rules or {}).values() if r.table == BL.blind_name(r.tensor)}
        for table, r in own.items():  # every randomizer, the unrevealed ones too (s = 0: no coordinates)
            k = counts.get(table, 0)
            coords = r.A
            if not r.tensor.startswith("w:"):
                # as a commitment's layout gives it back (lengths_from_layout): coordinates, plus the
                # coordinate variables of an extension-valued randomizer
                n_coords = BL.coordinates_for(r.s, BL.dims_needed(r.s, k))
                lengths[table] = n_coords + (BL.EXT_VARS if BL.is_ext(r.s) else 0)
                coords = BL._coordinates(r.s, n_coords)
            if BL.span(r.s, coords) < 4 * k or run.shares_phi(table, coords):  # more revealed forms than
                short[r.tensor] = k                                       # randomizer dimensions, or one Φ twice
        if len(_MASK_PLANS) >= _MASK_PLANS_MAX:
            _MASK_PLANS.clear()
        got = _MASK_PLANS[key] = (plan, lengths, short)
    return list(got[0]), dict(got[1]), dict(got[2])


def reveal_counts(run: "_Run", ctx: B.VerifierContext) -> dict[str, int]:
    """Per randomizer table, the values a proof reveals about its tensor: the randomized claims (each
    once) and the paybacks (claims on the randomizer table itself)."""
    counts = dict(run.reveals)
    for c in ctx.blind_claims:
        if isinstance(c, CL.Claim):
            counts[c.tensor] = counts.get(c.tensor, 0) + 1
    return counts


def _self_degrees(rules: Mapping[str, BL.Rule] | None) -> tuple:
    """The randomizers whose degree in their own blinding variable raises their readers' round degrees
    (so the sumchecks' shapes, and the mask plan, depend on them)."""
    return tuple(sorted((r.table, r.self_degree) for r in (rules or {}).values() if r.self_degree))


class NotHiddenWarning(UserWarning):
    """A proof reveals values of some committed tensors: more than their randomizers can hide (a
    tensor of two entries read at more than four points), or all of it (a one-entry tensor, or one
    whose readers sum none of its variables, which therefore has no randomizer)."""


def not_hidden(short: Mapping[str, int], shapes: Mapping[str, tuple[int, ...]],
               public: Mapping[str, np.ndarray], rules: Mapping[str, BL.Rule]) -> list[str]:
    """Committed tensors whose values a proof does not hide: those revealed more often than their
    randomizer spans (``short``, from :func:`mask_plan`), the one-entry ones (no variable to randomize
    in) and those without a randomizer (a reader sums none of their variables: a linear layer with one
    input column, an embedding table of one row), weights included; each described."""
    committed = [t for t in sorted(shapes) if t not in public and not BL.is_blind_table(t)
                 and not t.startswith(("zk~", "wf~"))]
    out = [f"{t} (revealed {k}×, {LAY.n_vars(shapes[t])} variable(s))" for t, k in sorted(short.items())]
    out += [f"{t} (one entry)" for t in committed if LAY.n_vars(shapes[t]) == 0]
    out += [f"{t} (no variable its readers sum)" for t in committed if LAY.n_vars(shapes[t]) and t not in rules]
    return out


def prove_program(spec: QuantSpec, values: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray],
                  outputs: Mapping[str, np.ndarray], transcript: Transcript, settler: CL.Settler,
                  start: int = 0, strict: bool = True, rng: np.random.Generator | None = None) -> bytes:
    """Prove that ``values`` (every trace tensor and witness, and the weights as ``"w:<name>"``) is a
    run of ``spec`` from ``inputs`` to ``outputs``. The transcript must already hold the statement.
    Calls ``settler.commit`` (every canonical table, the zero-knowledge masks of the op sumchecks and
    of the lookups' GKR layers, :mod:`blindproof.zk.iop.masks`, and — when the settler proves linear
    claims — the randomizer tables of :mod:`blindproof.zk.iop.blind`) before any challenge and
    ``settler.settle`` (every claim left, public ones and the mask claims included) at the end.
    Returns the op proofs' bytes.
    ``strict=False`` lets tests build proofs from cheating values; ``rng`` draws the masks (tests)."""
    public = _public(spec, inputs, outputs)
    vals, shapes = with_aux(spec, values, public, start, strict)
    rules = _blind_setup(spec, shapes, public, settler)
    if rules is not None:  # a dry run with default randomizers counts what the proof reveals
        dry = dict(vals) | BL.sample_tables(rules, np.random.default_rng(0))
        plan, lengths, short = mask_plan(spec, dry, shapes, public, start, strict, rules)
        sized = _blind_setup(spec, shapes, public, settler, lengths)
        if _self_degrees(sized) != _self_degrees(rules):  # round degrees changed: plan the masks again
            dry = dict(vals) | BL.sample_tables(sized, np.random.default_rng(0))
            plan, _, _ = mask_plan(spec, dry, shapes, public, start, strict, sized)
        rules = sized
        vals.update(BL.sample_tables(rules, rng if rng is not None else F.SecureRng()))
        gaps = not_hidden(short, shapes, public, rules)
        if gaps:
            warnings.warn(NotHiddenWarning(
                "this proof does not hide the values of " + ", ".join(gaps) + ": a one-entry tensor has no "
                "variable to randomize, nor has a tensor whose readers sum none of its variables, a "
                "two-entry one hides at most four values, and two reads of one randomizer point cancel it "
                "(docs/proofs.md §5)"), stacklevel=2)
    else:
        plan, _, _ = mask_plan(spec, vals, shapes, public, start, strict, rules)
    masks = M.ProverMasks.sample(plan, rng)
    ctx = B.ProverContext(transcript, spec, shapes, public=public, start=start, values=vals, strict=strict,
                          lookups=B.LookupBatch(), masks=masks, blind=rules)
    settler.commit({n: ctx.table(n) for n in vals if n in shapes} | masks.tables(), transcript)
    run = _Run(spec, public)
    proofs, merges = _prove_ops(ctx, run)
    lookups, new = ctx.lookups.prove(ctx)
    masks.check_all_used()
    run.final += new + masks.claims + ctx.blind_claims
    settler.settle(settle_form(rules, run.final), transcript)
    return ProgramProof(proofs, lookups, merges).to_bytes()


def verify_program(spec: QuantSpec, inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray],
                   proof: bytes | ProgramProof, transcript: Transcript, settler: CL.Settler,
                   start: int = 0) -> None:
    """Check op proofs made by :func:`prove_program` (same transcript state, same settler protocol).
    Raises :class:`~blindproof.zk.iop.claims.Reject` on any failure (malformed bytes included)."""
    public = _public(spec, inputs, outputs)
    try:
        shapes = infer_shapes(spec, {n: public[n].shape for n in spec.inputs})
        rules = _blind_setup(spec, shapes, public, settler)
    except ValueError as exc:
        raise CL.Reject(f"the inputs do not fit the program: {exc}") from None
    for n in spec.outputs:
        if public[n].shape != shapes[n]:
            raise CL.Reject(f"output {n!r} has shape {public[n].shape}, the program gives {shapes[n]}")
    if not isinstance(proof, ProgramProof):
        try:
            proof = ProgramProof.from_bytes(bytes(proof), len(spec.ops))
        except ProofFormatError as exc:
            raise CL.Reject(f"malformed program proof: {exc}") from None
    if len(proof.op_proofs) != len(spec.ops) or len(proof.merges) != len(spec.ops):
        raise CL.Reject("wrong number of op proofs")
    ctx = B.VerifierContext(transcript, spec, shapes, public=public, start=start, lookups=B.LookupBatch(),
                            masks=M.VerifierMasks(), blind=rules)
    settler.commit(None, transcript)
    run = _Run(spec, public)
    run.output_claims(ctx)
    for i in range(len(spec.ops) - 1, -1, -1):
        op = spec.ops[i]
        claims = run.take(ctx, op)
        if not claims:
            if proof.op_proofs[i] is not None or proof.merges[i] is not None:
                raise CL.Reject(f"unexpected proof for op {op.kind} -> {op.output}")
            continue
        if proof.op_proofs[i] is None:
            raise CL.Reject(f"missing proof for op {op.kind} -> {op.output}")
        B.op_label(ctx, op)
        claims = _verify_merge(ctx, op, claims, proof.merges[i])
        first = len(ctx.lookups.entries)
        try:
            new = protocol(op.kind).verify(ctx, op, claims, proof.op_proofs[i])
        except CL.Reject as exc:
            raise CL.Reject(f"op {op.kind} -> {op.output}: {exc}") from None
        run.route(i, new)
        run.check_deferred(ctx, i, first)
    run.check_done()
    run.final += ctx.lookups.verify(ctx, proof.lookups) + ctx.masks.claims + ctx.blind_claims
    run.check_public(ctx)
    settler.settle(settle_form(rules, run.final), transcript)


def _verify_merge(ctx: B.VerifierContext, op: Op, claims: list[CL.Claim],
                  merge: B.OpProof | None) -> list[CL.Claim]:
    """The one claim the op is handed: the claims on its output merged (a merge proof exactly when
    there are several). Reject otherwise."""
    if len(claims) == 1:
        if merge is not None:
            raise CL.Reject(f"unexpected merge for op {op.kind} -> {op.output}: its output carries one claim")
    elif merge is None:
        raise CL.Reject(f"missing merge of the {len(claims)} claims on {op.output!r}")
    else:
        rd = B.ProofReader(merge)
        try:
            merged = B.verify_reduce(ctx, rd, claims)
            rd.done()
        except CL.Reject as exc:
            raise CL.Reject(f"merge of the {len(claims)} claims on {op.output!r}: {exc}") from None
        claims = [merged]
    if len(claims) != 1 or claims[0].tensor != op.output:
        raise CL.Reject(f"op {op.kind} -> {op.output} must be handed one claim on its output, got {len(claims)}")
    return claims


def prove_trace(spec: QuantSpec, weights: Mapping[str, np.ndarray], trace: Trace, settler: CL.Settler,
                start: int = 0, strict: bool = True) -> bytes:
    """Convenience: prove a reference trace under a transcript bound to :func:`statement_bytes`."""
    values = dict(trace.tensors)
    values.update({LAY.weight_name(k): v for k, v in weights.items()})
    inputs = {n: trace.tensors[n] for n in spec.inputs}
    outputs = {n: trace.tensors[n] for n in spec.outputs}
    tr = Transcript(_DOMAIN, statement_bytes(spec, _public(spec, inputs, outputs), start))
    return prove_program(spec, values, inputs, outputs, tr, settler, start, strict)


def verify_trace(spec: QuantSpec, inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray],
                 proof: bytes, settler: CL.Settler, start: int = 0) -> VerifyResult:
    """Convenience counterpart of :func:`prove_trace`. Never raises."""
    def run_() -> VerifyResult:
        try:
            tr = Transcript(_DOMAIN, statement_bytes(spec, _public(spec, inputs, outputs), start))
            verify_program(spec, inputs, outputs, proof, tr, settler, start)
        except CL.Reject as exc:
            return VerifyResult.reject(str(exc))
        return VerifyResult.accept()

    return guarded(run_, "program")


def statement_bytes(spec: QuantSpec, public: Mapping[str, np.ndarray], start: int) -> bytes:
    """A statement for :func:`prove_trace`: spec digest, start, public tensors (name, shape, values)."""
    parts = [spec.digest().encode(), struct.pack("<Q", start)]
    for name in sorted(public):
        v = np.asarray(public[name], dtype=np.int64)
        nb = name.encode()
        parts.append(struct.pack("<I", len(nb)) + nb + struct.pack("<I", v.ndim)
                     + b"".join(struct.pack("<Q", d) for d in v.shape) + v.astype("<i8").tobytes())
    return b"".join(parts)


# --- single ops (tests and benchmarks) ---------------------------------------------------------------

def prove_op(spec: QuantSpec, op_index: int, values: Mapping[str, np.ndarray],
             shapes: Mapping[str, tuple[int, ...]], public: Mapping[str, np.ndarray] | None = None,
             start: int = 0, strict: bool = True) -> tuple[B.OpProof, list[CL.Claim], CL.Claim]:
    """Prove one op against a random claim on its output (the claim is honest for ``values``).
    Returns the proof, the claims it leaves, and the output claim."""
    op = spec.ops[op_index]
    ctx = B.ProverContext(Transcript(b"blindproof/zk/op"), spec, shapes, public=dict(public or {}),
                          start=start, values=values, strict=strict)
    r = ctx.transcript.challenge_exts("op/output_point", ctx.vars(op.output))
    out = B.claim_of(ctx, op.output, r)
    B.op_label(ctx, op)
    proof, claims = protocol(op.kind).prove(ctx, op, [out])
    return proof, claims, out


def verify_op(spec: QuantSpec, op_index: int, out_value: np.ndarray, proof: B.OpProof,
              shapes: Mapping[str, tuple[int, ...]], public: Mapping[str, np.ndarray] | None = None,
              start: int = 0) -> list[CL.Claim]:
    """Verify one op proof for the claim ``output(r) = out_value`` at the same random point as
    :func:`prove_op`; returns the claims to settle. Raises Reject."""
    op = spec.ops[op_index]
    ctx = B.VerifierContext(Transcript(b"blindproof/zk/op"), spec, shapes, public=dict(public or {}),
                            start=start)
    r = ctx.transcript.challenge_exts("op/output_point", ctx.vars(op.output))
    B.op_label(ctx, op)
    return protocol(op.kind).verify(ctx, op, [CL.Claim(op.output, r, out_value)], proof)


def oracle_for(values: Mapping[str, np.ndarray]) -> CL.OracleSettler:
    """An oracle settler over integer values (canonical tables)."""
    return CL.OracleSettler({n: LAY.canonical(v) for n, v in values.items()})


def field_value(arr: np.ndarray) -> np.ndarray:
    """Integer array -> field elements (convenience for tests)."""
    return F.from_signed(np.asarray(arr, dtype=np.int64))
