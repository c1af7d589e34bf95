"""Configuration of model commitments and proofs: the parameter rule (security target,
opening budget) and the checks a spec and its weight layout must pass.
"""

from __future__ import annotations

from blindproof.zk.commit import pcs
from blindproof.zk.iop.layout import n_vars, weight_name
from blindproof.quant.spec import QuantSpec
from blindproof.zk.proof.soundness import PROOF_FLOOR_BITS


DEFAULT_SECURITY = 104.0  # commitment target: the whole proof (union bound) stays ≥ 100 provable bits
# openings per key (proofs and rotation certificates; the last is kept for a rotation) whose opened
# weight columns stay uniform. Each unit adds t hiding symbols per row:
# 16·(1 + P)·t bytes per proof (~5 KB at t ≈ 155) and, past C + t_h − t > C, a longer code (commit
# time ×2): 8 keeps tiny-llama's proof within a few per cent of the once-opened size, gpt2-block's
# commit at ×2; a spent key is rotated (:mod:`blindproof.zk.proof.rotation`) for the cost of one commitment.
DEFAULT_BUDGET = 8
MAX_BUDGET = pcs.MAX_OPENINGS - 1


def default_params() -> pcs.PcsParams:
    """The code parameters of a commitment made without explicit ones."""
    return pcs.PcsParams.for_security(DEFAULT_SECURITY)


def rotation_reserve(com: pcs.Commitment) -> int:
    """Positions of ``com`` a proof may not take: one opening's worth (``t``), kept so that a spent key
    can still certify its successor (a rotation opens ``t`` positions of the old commitment)."""
    return com.layout.n_queries


def expected_weight_layout(spec: QuantSpec) -> dict[str, int]:
    """Committed name -> log2 of the canonical size, for every weight of a spec (in spec order)."""
    return {weight_name(n): n_vars(ws.shape) for n, ws in spec.weights.items()}


def zero_padded_tensors(spec: QuantSpec) -> set[str]:
    """Tensors whose padded entries every accepted proof pins to zero: public inputs (the verifier builds
    their tables), ``rescale`` outputs (on padding the rounding relation reads ``q + r = 0``),
    ``lookup`` outputs of such a tensor through a table with ``T(0) = 0`` (SiLU, GELU: the pair ``(0, y)``
    forces ``y = 0``), head splits / merges of such a tensor (a relabelling of entries), and ``max_pool``
    outputs (its zero-check pins their padding)."""
    from blindproof.quant.functions import table_values

    zero = set(spec.inputs)
    for op in spec.ops:
        if op.kind in ("rescale", "max_pool") or (op.kind in ("split_heads", "merge_heads") and op.inputs[0] in zero):
            zero.add(op.output)
        elif op.kind == "lookup" and op.inputs[0] in zero:
            ts = spec.tables[op.params["table"]]
            if ts.lo <= 0 <= ts.hi and int(table_values(ts)[-ts.lo]) == 0:
                zero.add(op.output)
    return zero


def check_padding_sound(spec: QuantSpec) -> None:
    """ValueError unless no junk in the padding of a committed weight table can reach a real output.

    A verifier cannot see a third party's weight padding. Weights enter real entries only through sums
    over a padded axis: ``linear`` over its input width (``Σ_j x[·, j]·W[c, j]``, junk columns of ``W``
    times the padded columns of ``x``), ``conv`` over its input channels likewise (its public selector
    reads real kernel offsets and real input positions only). Every other weight read (``embed`` rows by public one-hot
    indices, ``mul_weight`` / ``add_weight`` / bias vectors broadcast over the last axis) puts junk only on
    padded output entries, and no op carries a padded entry into a real one: norms, softmax and
    mean_pool sum real columns only (public indicators; mean_pool zero-checks its padded rows),
    rescale zeroes its output's padding, pv meets padded keys with a probability pinned to 0. So a
    linear whose input width (any contracted axis) is not a power of two must read a tensor whose padding is pinned to zero
    (:func:`zero_padded_tensors`); so must both operands of ``qk`` (a sum over the head width, for trace
    padding). Every workload's program meets this (docs/proofs.md §4)."""
    zero = zero_padded_tensors(spec)
    pow2 = lambda n: n & (n - 1) == 0  # noqa: E731
    for op in spec.ops:
        if op.kind in ("linear", "conv"):
            ws = spec.weights[op.params["weight"]].shape
            summed = ws[1:] if op.kind == "linear" else ws[-1:]  # every contracted axis / the channels
            k = next((n for n in summed if not pow2(n)), None)
            if k is not None and op.inputs[0] not in zero:
                raise ValueError(f"{op.kind} {op.output}: input {op.inputs[0]!r} (width {k}, padded) is not pinned "
                                 "to zero on its padding, so junk weight padding could reach the output")
        elif op.kind == "qk":
            bad = [n for n in op.inputs if n not in zero]
            if bad:
                raise ValueError(f"qk {op.output}: operand {bad[0]!r} is not pinned to zero on its padding "
                                 "(the sum over the head width would count it)")


def check_spec_sound(spec: QuantSpec) -> None:
    """ValueError unless the spec keeps weight padding away from real outputs
    (:func:`check_padding_sound`) and every relation whose uniqueness needs the spec's declared
    ranges to cover the proven ones has them (an op protocol's ``check_bounds``: ``mean_pool``,
    ``max_pool``). A third party's commitment is hostile input: it is refused when loaded, not when a
    proof fails."""
    from blindproof.zk.ops import protocol

    check_padding_sound(spec)
    for op in spec.ops:
        check = getattr(protocol(op.kind), "check_bounds", None)
        if check is not None:
            check(op, spec)


def check_floor(params: pcs.PcsParams) -> None:
    """ValueError unless ``params`` target at least the protocol's floor of provable bits."""
    if params.security_bits < PROOF_FLOOR_BITS:
        raise ValueError(f"the commitment targets {params.security_bits} bits, below the floor of "
                         f"{PROOF_FLOOR_BITS} provable bits")


def check_params(params: pcs.PcsParams, layout: pcs.Layout) -> None:
    """ValueError unless ``params`` reach the protocol's floor and ``layout`` is the one the parameter
    rule gives for its tensors (:func:`pcs.check_layout_rule`): query count, columns, blowup and
    proximity tests are never a committer's or a prover's choice. The weight commitment is a reused
    one (no mask rows; each proof brings a companion) with hiding symbols for ``budget + 1``
    openings, ``1 ≤ budget ≤ MAX_BUDGET``."""
    check_floor(params)
    if layout.masks:
        raise ValueError("the weight commitment holds its own mask rows: it would be opened with the same masks "
                         "by every proof (a commitment of format 1); commit the model again")
    if not 1 <= layout.openings - 1 <= MAX_BUDGET or layout.hiding_symbols != layout.openings * layout.n_queries:
        raise ValueError(f"the weight commitment's hiding symbols ({layout.hiding_symbols} for {layout.n_queries} "
                         f"queries) do not encode an opening budget in [1, {MAX_BUDGET}]")
    pcs.check_layout_rule(layout, params, "the weight commitment")


def check_layout(spec: QuantSpec, com: pcs.Commitment) -> None:
    """ValueError unless the weight commitment holds exactly the spec's weights at their sizes and the
    spec is sound (:func:`check_spec_sound`)."""
    check_spec_sound(spec)
    want = expected_weight_layout(spec)
    got = dict(zip(com.layout.names, com.layout.log_sizes))
    if set(got) != set(want):
        extra, missing = sorted(set(got) - set(want)), sorted(set(want) - set(got))
        raise ValueError(f"weight commitment does not match the spec (extra {extra[:3]}, missing {missing[:3]})")
    bad = [n for n in want if got[n] != want[n]]
    if bad:
        raise ValueError(f"weight {bad[0]!r} committed with 2^{got[bad[0]]} entries, the spec needs 2^{want[bad[0]]}")
