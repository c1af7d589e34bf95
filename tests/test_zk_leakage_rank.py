"""What a proof reveals about the committed tensors, counted: every randomized evaluation is hidden.

A whole-model proof's settled claims are the only values it reveals about committed tensors beyond
masked sumcheck messages: randomized claims ``T̃(p) + z·2^b·R̃_T(p_A, ½) = v`` (linear claims), the
randomizer values the sums pay back (plain claims on ``R_T``) and the relations' δ (linear claims on
several ``R``). Over the base field each ext value is four linear forms. The evaluations ``T̃(p)``
are hidden when the randomizer parts of the claims and payback values are linearly independent:
then for ANY values of the tensors some randomizer tables give the same revealed values (a δ only
adds the combination its relation makes public anyway). The test computes
that rank per group of randomizer tables that appear together, for real proofs; it fails if one
more claim shares a randomizer point, if a randomizer table is too small for its claims, or if a
randomized claim is settled as plain. The lookups' leaf checks are linear claims hidden by the
lookups' own layer randomizers (their rank is counted in ``tests/test_zk_lookup_masks.py``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from blindproof.zk.field import babybear as F
from blindproof.zk.iop import mle
from blindproof.zk.proof import program as P
from blindproof.zk.proof.keys import CommitmentKey
from blindproof.zk.ops import base as B
from blindproof.zk.iop import claims as CL
from blindproof.zk.iop import layout as LAY
from blindproof.zk.iop import blind as BL
from blindproof.zk.proof.prover import ModelProver, example_input, quantized_workload
from blindproof.zk.proof.verifier import verify_model_proof

KEY = CommitmentKey(b"\x0c" * 32)


BINARY = "mlp-784-56-2"
_WARNED: dict[str, str] = {}  # workload -> the prover's NotHiddenWarning text


def _binary_classifier():
    """MLP 784 → 56 → 2 through the project's quantizer (seeded), and one input."""
    import torch

    from blindproof.models.workloads import MLP, init_weights
    from blindproof.quant import quantize

    torch.manual_seed(0)
    qm = quantize(init_weights(MLP((784, 56, 2)), 3), torch.randn(64, 784))
    return qm, torch.randn(1, 784)


def _revealed(name: str, monkeypatch) -> tuple[list, list, dict]:
    """Everything a verifier of a real proof sees about blinded tensors: the value of every blinded
    read (a sumcheck's final value), every claim handed to an op or settled (each as (tensor, point)),
    the randomizer values the sums pay back (plain claims on randomizer tables); and the rules."""
    reads: dict = {}
    payback: list = []
    rules: dict = {}
    real_vs, real_take, real_sf = B.verify_sum, P._Run.take, P.settle_form

    def note(ctx, tensor, point):
        r = ctx.rule(tensor)
        if r is not None:
            rules.update(ctx.blind)
            reads.setdefault((tensor, np.asarray(point, dtype=np.uint32).tobytes()), (tensor, np.asarray(point)))

    def vs(ctx, rd, n, n_tables, terms, claim, reads=(), libra=()):
        point, finals = real_vs(ctx, rd, n, n_tables, terms, claim, reads, libra)
        full = point if point.shape[0] == n else np.zeros((0, 4), dtype=np.uint32)
        for _, tensor, view in reads:
            if ctx.rule(tensor) is not None and n:
                note(ctx, tensor, np.stack([full[int(v)] if isinstance(v, (int, np.integer)) else v for v in view]))
        return point, finals

    def take(run, ctx, op):
        out = real_take(run, ctx, op)
        for c in out:
            if not c.plain:
                note(ctx, c.tensor, c.point)
        return out

    def sf(rules_, claims):
        if rules_ is not None and not payback:
            for c in claims:
                if isinstance(c, CL.Claim) and BL.is_blind_table(c.tensor):
                    payback.append(c)
                elif isinstance(c, CL.Claim) and not c.plain and c.tensor in rules_:
                    reads.setdefault((c.tensor, c.point.tobytes()), (c.tensor, c.point))
            payback.append(None)  # marks the verifier's pass as recorded
        return real_sf(rules_, claims)

    if name == BINARY:  # a binary classifier: a 2-entry bias and 2-entry output tensors (one variable)
        qm, x = _binary_classifier()
        prover = ModelProver.create(qm, KEY)
        inputs = prover.model.encode(x)
    else:
        prover = ModelProver.create(quantized_workload(name), KEY)
        inputs = prover.model.encode(example_input(name))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        proof = prover.prove(inputs)
    _WARNED[name] = " ".join(str(w.message) for w in caught if issubclass(w.category, P.NotHiddenWarning))
    monkeypatch.setattr(B, "verify_sum", vs)
    monkeypatch.setattr(P._Run, "take", take)
    monkeypatch.setattr(P, "settle_form", sf)
    assert verify_model_proof(prover.commitment, proof.to_bytes()).ok
    shapes = P.infer_shapes(prover.model.spec, {n: np.shape(v) for n, v in inputs.items()})
    return list(reads.values()), [c for c in payback if c is not None], rules, prover.model.spec, shapes


def _form_rows(terms, tables: dict[str, int]) -> dict[str, np.ndarray]:
    """The base-field coefficient rows (4, 2^k) of one ext-valued form on each randomizer table it
    names: ``Σ coef·R̃(q)`` has coefficient ``coef·eq(q, y)`` on ``R[y]``."""
    out: dict[str, np.ndarray] = {}
    for name, point, coef in terms:
        if name not in tables:
            continue
        w = F.emul(mle.eq_table(point), np.asarray(coef, dtype=np.uint32)[None, :])  # (2^k, 4)
        rows = np.ascontiguousarray(w.T).astype(np.int64)
        out[name] = (out[name] + rows) % F.P if name in out else rows
    return out


def _rank_mod_p(m: np.ndarray) -> int:
    m = m.copy() % F.P
    rank, rows, cols = 0, m.shape[0], m.shape[1]
    for c in range(cols):
        piv = next((r for r in range(rank, rows) if m[r, c]), None)
        if piv is None:
            continue
        m[[rank, piv]] = m[[piv, rank]]
        m[rank] = m[rank] * pow(int(m[rank, c]), F.P - 2, F.P) % F.P
        others = np.nonzero(m[:, c])[0]
        others = others[others != rank]
        if others.size:
            m[others] = (m[others] - m[others, c:c + 1] * m[rank]) % F.P
        rank += 1
        if rank == rows:
            break
    return rank


def _components(forms: list[dict[str, np.ndarray]]) -> list[list[int]]:
    """Forms grouped by the randomizer tables they share (union-find over tables)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for f in forms:
        names = list(f)
        for a in names[1:]:
            parent[find(a)] = find(names[0])
    groups: dict[str, list[int]] = {}
    for i, f in enumerate(forms):
        groups.setdefault(find(next(iter(f))), []).append(i)
    return list(groups.values())


def _source_points(spec, shapes):
    """Relabelled tensor -> function mapping its points to its source's (the heads ops)."""
    out = {}
    for o, src, perm in P._relabels(spec, shapes):  # noqa: SLF001
        def to_src(p, perm=perm):
            q = np.empty_like(p)
            q[perm] = p
            return q
        out[o] = (src, to_src)
    return out


def leaks(revealed, payback, rules, spec, shapes) -> dict[str, tuple[str, int, int]]:
    """Per randomizer table whose revealed values leak: (tensor, values revealed, base functionals of
    the tensor that leak) — rank([R | T]) − rank(R) (values derived from others, such as rope's
    μ-combination of its two half reads or a relabelled claim, cancel in both and cost nothing)."""
    src = _source_points(spec, shapes)
    by_table: dict = {}
    for t, p in revealed:
        r = rules[t]
        tensor, point = (src[t][0], src[t][1](p)) if t in src else (t, p)
        by_table.setdefault(r.table, []).append((r.settle_terms(p)[1], tensor, point))
    for c in payback:
        by_table.setdefault(c.tensor, []).append(((c.tensor, c.point, F.eone()), None, None))
    out = {}
    for table, items in by_table.items():
        rrows = np.concatenate([_form_rows([term], {table: 0})[table] for term, _, _ in items])
        rank_r = _rank_mod_p(rrows)
        if rank_r == rrows.shape[0]:
            continue  # independent randomizer parts: nothing cancels
        tensor = next(t for _, t, _ in items if t is not None)
        n = LAY.n_vars(shapes[tensor])
        trows = np.concatenate([np.zeros((4, 1 << n), dtype=np.int64) if t is None else
                                np.ascontiguousarray(mle.eq_table(pt).T).astype(np.int64) for _, t, pt in items])
        leak = _rank_mod_p(np.concatenate([rrows, trows], axis=1)) - rank_r
        if leak:
            out[table] = (tensor, len(items), leak)
    return out


@pytest.mark.parametrize("name", ["mlp-784-56-10", "tiny-llama", BINARY])
def test_every_revealed_evaluation_is_hidden_by_its_randomizer(name, monkeypatch):
    """Leak = combinations of revealed values whose randomizer parts cancel but whose tensor parts do
    not, per randomizer table (:func:`leaks`)."""
    revealed, payback, rules, spec, shapes = _revealed(name, monkeypatch)
    assert len(revealed) + len(payback) > 50 and payback
    leaking = leaks(revealed, payback, rules, spec, shapes)
    assert not leaking, {t: f"{n} revealed values, {k} base functionals of {tensor} leak"
                         for t, (tensor, n, k) in leaking.items()}
    # the binary classifier's two-entry tensors are read 2–3 times each: their randomizers have degree
    # in the blinding variable itself (blind._coordinates), so they hide it all and nothing is warned
    assert not _WARNED[name], _WARNED[name]
    assert any(r.self_degree >= 1 for r in rules.values()) == (name == BINARY)


def test_the_rank_test_can_fail():
    """Two randomized claims at one randomizer point (same A coordinates and blinding coordinate):
    their forms are proportional, so their difference reveals T̃(p₁) − T̃(p₂)."""
    rule = BL.make_rule("t", 8, 7)
    rng = np.random.default_rng(1)
    p1 = F.random(rng, (8, 4))
    p2 = p1.copy()
    p2[0] = F.random(rng, 4)  # a coordinate outside A and s: the randomizer point is the same
    tables = {rule.table: 0}
    forms = [_form_rows(rule.settle_terms(p), tables) for p in (p1, p2)]
    m = np.concatenate([np.concatenate([f[rule.table]]) for f in forms])
    assert _rank_mod_p(m) < m.shape[0]
    p2[rule.A[0]] = F.random(rng, 4)
    forms = [_form_rows(rule.settle_terms(p), tables) for p in (p1, p2)]
    m = np.concatenate([f[rule.table] for f in forms])
    assert _rank_mod_p(m) == m.shape[0]


def test_randomizers_sized_for_four_values_leak_on_tiny_llama(monkeypatch):
    """Sized for four values per tensor whatever the proof reveals (as before the dry run counted):
    a tensor read at more points than that (a merged residual stream) leaks linear functionals."""
    P._MASK_PLANS.clear()  # noqa: SLF001
    monkeypatch.setattr(BL, "coordinates_for", lambda s, dims: min(BL.A_VARS, s))
    with pytest.raises(AssertionError, match="leak"):
        test_every_revealed_evaluation_is_hidden_by_its_randomizer("tiny-llama", monkeypatch)
    P._MASK_PLANS.clear()  # noqa: SLF001


def test_a_one_entry_tensor_is_named_as_not_hidden():
    """A regressor (one output): its head's accumulator, rescale and bias have one entry, no variable
    to randomize in; the proof still verifies and the prover names them."""
    import torch

    from blindproof.models.workloads import MLP, init_weights
    from blindproof.quant import quantize

    torch.manual_seed(1)
    qm = quantize(init_weights(MLP((16, 8, 1)), 3), torch.randn(64, 16))
    prover = ModelProver.create(qm, KEY)
    with pytest.warns(P.NotHiddenWarning, match=r"one entry") as caught:
        proof = prover.prove(prover.model.encode(torch.randn(1, 16)))
    text = " ".join(str(w.message) for w in caught)
    assert "l1.acc (one entry)" in text and "w:l1.acc.bias" in text, text
    assert verify_model_proof(prover.commitment, proof.to_bytes()).ok


def test_a_weight_no_reader_sums_over_is_named_as_not_hidden():
    """A linear layer with one input column sums none of its weight's variables: the weight (and the
    input) get no randomizer, every claim reveals ``W̃`` at a point (8 entries from two proofs, by
    script from public bytes). The prover names them."""
    from blindproof.quant.quantizer import QuantizedModel
    from blindproof.quant.spec import Op, QuantSpec, TensorSpec, WeightSpec

    spec = QuantSpec(arch={"family": "test"}, inputs=("x",), outputs=("y",),
                     ops=(Op("linear", ("x",), "a", {"weight": "W"}), Op("rescale", ("a",), "y", {"shift": 5})),
                     tensors={"x": TensorSpec("x", 0, -100, 100, "input"),
                              "a": TensorSpec("a", 0, -20000, 20000, "accumulator"),
                              "y": TensorSpec("y", -5, -1000, 1000, "activation")},
                     weights={"W": WeightSpec("W", (8, 1), "int8", 0)}, tables={})
    qm = QuantizedModel(spec, {"W": np.random.default_rng(5).integers(-127, 128, size=(8, 1))})
    prover = ModelProver.create(qm, KEY)
    with pytest.warns(P.NotHiddenWarning, match=r"w:W \(no variable its readers sum\)"):
        proof = prover.prove({"x": np.array([[7]])})
    assert verify_model_proof(prover.commitment, proof.to_bytes()).ok
