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
randomized claim is settled as plain. The lookups' leaf claims are still plain (docs/proofs.md §5):
they are counted, not hidden.
"""

from __future__ import annotations

import numpy as np
import pytest

from blindproof.zk import field as F
from blindproof.zk import mle
from blindproof.zk import program as P
from blindproof.zk.commitment import CommitmentKey
from blindproof.zk.ops import base as B
from blindproof.zk.ops import blind as BL
from blindproof.zk.prover import ModelProver, example_input, quantized_workload
from blindproof.zk.verifier import verify_model_proof

KEY = CommitmentKey(b"\x0c" * 32)


def _settled(name: str, monkeypatch) -> tuple[list, set[str]]:
    """The claims a real proof settles (prover side) and the blinded tensors."""
    seen: list = []
    rules_seen: dict = {}
    real = P.settle_form

    def spy(rules, claims):
        out = real(rules, claims)
        if not seen:
            seen.extend(out)
            rules_seen.update(rules or {})
        return out

    monkeypatch.setattr(P, "settle_form", spy)
    prover = ModelProver.create(quantized_workload(name), KEY)
    inputs = prover.model.encode(example_input(name))
    proof = prover.prove(inputs)
    assert verify_model_proof(prover.commitment, proof.to_bytes()).ok
    return seen, set(rules_seen)


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


@pytest.mark.parametrize("name", ["mlp-784-56-10", "tiny-llama"])
def test_every_revealed_evaluation_is_hidden_by_its_randomizer(name, monkeypatch):
    settled, blinded = _settled(name, monkeypatch)
    tables = {BL.blind_name(t): 0 for t in blinded}
    forms, plain_on_blinded, randomized, deltas = [], 0, 0, 0
    for c in settled:
        if isinstance(c, B.LinearClaim) or hasattr(c, "terms"):
            f = _form_rows(c.terms, tables)
            assert f, f"a linear claim with no randomizer: {[t for t, _, _ in c.terms]}"
            if not any(t in blinded for t, _, _ in c.terms):
                # a relation's δ: with the values it corrects it reveals Σ c·T̃(p), which the relation
                # fixes to a public value anyway — nothing new, so it is left out of the rank
                deltas += 1
                continue
            randomized += 1
            forms.append(f)
        elif c.tensor in tables:
            forms.append(_form_rows([(c.tensor, c.point, F.eone())], tables))
        elif c.tensor in blinded:
            plain_on_blinded += 1
    assert randomized > 50 and deltas > 0
    for comp in _components(forms):
        names = sorted({n for i in comp for n in forms[i]})
        offs, at = {}, 0
        for n in names:
            offs[n] = at
            at += next(forms[i][n].shape[1] for i in comp if n in forms[i])
        m = np.zeros((4 * len(comp), at), dtype=np.int64)
        for r, i in enumerate(comp):
            for n, rows in forms[i].items():
                m[4 * r:4 * r + 4, offs[n]:offs[n] + rows.shape[1]] = rows
        assert _rank_mod_p(m) == m.shape[0], \
            f"{len(comp)} revealed forms on {names[:3]}… are not independent: an evaluation leaks"
    # the lookups' leaf claims (and the multiplicities at the leaf point) are the plain ones left
    assert plain_on_blinded > 0


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
