"""Hiding, polylogarithmic commitment to one multilinear polynomial (WHIR-style, ePrint 2024/1586).

The polynomial ``f`` in ``m`` variables is given by its ``2^m`` base-field values on the hypercube
(MSB-first, as :mod:`blindproof.zk.iop.mle`); one opening proves a batch of claims ``f(z_j) = v_j`` at
extension points, and linear claims ``Σ_i c_i f(z_i) = v``.

Conventions. A multilinear ``P`` in ``n`` variables has coefficients ``c`` (MSB-first monomial index)
and the univariate form ``P_u(x) = Σ_i c_i x^{rev_n(i)} = P(x, x^2, x^4, …, x^{2^{n-1}})`` (the first
variable carries ``x``: binding it folds ``P_u(x) = P_e(x^2) + x P_o(x^2)`` into ``P_e + r P_o``, which
is also what the sumcheck binds first). Oracle ``i`` is ``P_u`` evaluated on the ``N_i``-th roots of
unity in natural order; read as a ``(2^k, N_i/2^k)`` matrix, column ``b`` holds the ``2^k`` points
``y_b·ζ^t`` that fold into ``y_b^{2^k}``: one Merkle leaf.

Hiding (for ONE opening; see docs/whir.md for the argument and what is not hidden):

* ``P_f(X, Y) = f(X) + Y·s(X)`` in ``n = m' + 1`` variables (``m' ≥ m`` pads small polynomials with
  leading zero variables), where ``s`` has ``t_h = t_0·2^k + 4·ood`` random univariate coefficients
  (``P_{f,u}(x) = f_u(x) + x^{2^{m'}} s_u(x)``): any ``t_h`` base-field evaluations of ``P_f`` off the
  claims are uniform, so the first oracle's opened blocks and initial out-of-domain answers reveal
  nothing (Ligero's hiding symbols, moved into a variable the folding reaches last).
* ``M = Σ_g b_g·P_g``: ONE mask with values in the challenge field, from ``d = ext_degree`` uniformly
  random base-field multilinears ``P_g`` in the same ``n`` variables (``b_g`` = ``x^g`` or ``y^g``, a
  basis over F_p), committed as ``d`` codewords in the same Merkle leaves. The prover sends
  ``μ = ⟨M, w⟩`` for the claims' weight ``w``, the verifier draws ``ρ``, and WHIR runs on
  ``F = P_f + ρ·M`` with claim ``σ + ρ·μ``. ``M`` is uniform over challenge-field tables, so ``F`` is
  uniform given ``μ`` and ``σ`` whatever subfield the weights lie in (base-field masks were not: their
  part of a sumcheck message is ``ρ_g·span_Fp(w)``, which misses the field when ``w`` lies in a
  subfield), and every later message (sumcheck rounds, folded oracles, their OOD answers and opened
  blocks, the final polynomial) is a function of a uniform polynomial subject to the public claim.
* Claims live at ``Y = 0``: ``f(z) = P_f(0^{m'-m}, z, 0)``.

Protocol (transcript order): parameters, commitment, claims; initial OOD points ``ζ`` and answers
``(P_f(ζ), M(ζ))``; claim weights ``α``; ``μ``; ``ρ``; then per oracle ``i``: ``k`` sumcheck rounds
``(s(0), s(2))`` with folding challenges, then either the next oracle's root and its OOD answers, or
the final polynomial (coefficients, sent in the clear); shift-query positions; combination
challenges ``γ`` for the new constraints. The final polynomial's remaining variables are summed by a
last sumcheck, and the verifier checks ``claim = f_final(r)·w(r)``. The verifier takes
:class:`WhirParams` from its caller, never from the proof.

The claim weights ``α``, ``ρ``, the folding challenges and everything computed from them live
in the degree-4 extension, or in the degree-8 extension ``y^8 − 11`` (``params.ext_degree = 8``,
:class:`_Ext`) where the degree-4 field would cap the provable soundness (``N/|F|`` per fold); claim
points and values, OOD points and the combination challenges ``γ`` stay in the degree-4 field and are
embedded by ``x ↦ y^2``.
"""

from __future__ import annotations

import os
import struct
import threading
from dataclasses import dataclass, field
from typing import Sequence

import blake3
import numpy as np

from blindproof.zk.commit import _whir_kernels as K
from blindproof.zk.commit import merkle
from blindproof.zk.commit.whir_soundness import WhirParams, WhirSoundness, analyze
from blindproof.zk.field import babybear as F
from blindproof.zk.field.encoding import ProofFormatError, Reader, Writer
from blindproof.zk.field.ntt import _twiddles
from blindproof.zk.iop import mle
from blindproof.zk.iop.transcript import Transcript
from blindproof.zk.verdict import VerifyResult, guarded

__all__ = ["WhirParams", "WhirSoundness", "Claim", "LinearClaim", "Commitment", "ProverState", "Proof",
           "RoundProof", "commit", "open_claims", "verify", "analyze", "max_proof_bytes", "params_digest",
           "ProofFormatError"]

COMMITMENT_MAGIC = b"BPWC"
PROOF_MAGIC = b"BPWP"
FORMAT_VERSION = 2  # 2: one extension-valued mask (d base rows), one ρ, μ in the challenge field
MAX_CLAIMS = 1 << 14
MAX_TERMS = 512


# --- claims ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    """``f(point) = value``: point (m, 4) extension (or (m,) base), value (4,) extension (or int)."""

    point: np.ndarray
    value: np.ndarray


@dataclass(frozen=True)
class LinearClaim:
    """``Σ_i coef_i · f(point_i) = value``; ``terms`` = ((point, coef), ...), nonzero coefficients."""

    terms: tuple
    value: np.ndarray


def _ext_value(v, what: str) -> np.ndarray:
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        if not 0 <= int(v) < F.P:  # canonical only, as for arrays: v + p is not v
            raise ValueError(f"{what} {int(v)} is not a canonical field element (0 ≤ v < p)")
        return F.embed(np.uint32(int(v)))
    a = np.asarray(v)
    if a.ndim == 0:
        return F.embed(F._check(a.reshape(()), what))
    return np.ascontiguousarray(F._check_ext(a, what).reshape(4), dtype=np.uint32)


def _ext_point(p, m: int) -> np.ndarray:
    a = np.asarray(p)
    pt = F.embed(F._check(a, "claim point")) if a.ndim == 1 else F._check_ext(a, "claim point")
    if pt.shape != (m, 4):
        raise ValueError(f"claim point must have {m} coordinates, got shape {pt.shape}")
    return np.ascontiguousarray(pt, dtype=np.uint32)


def _normalize(claims: Sequence, m: int) -> list[tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]]:
    """Each claim as ([(point (m,4), coef (4,)), ...], value (4,)); ValueError/TypeError if malformed."""
    if not isinstance(claims, (list, tuple)) or not 1 <= len(claims) <= MAX_CLAIMS:
        raise ValueError(f"need 1..{MAX_CLAIMS} claims")
    out = []
    one = F.eone()
    for cl in claims:
        if isinstance(cl, LinearClaim):
            if not isinstance(cl.terms, (tuple, list)) or not 1 <= len(cl.terms) <= MAX_TERMS:
                raise ValueError(f"a linear claim has 1..{MAX_TERMS} terms")
            terms = []
            for t in cl.terms:
                if not isinstance(t, (tuple, list)) or len(t) != 2:
                    raise TypeError("a linear claim's terms are (point, coefficient)")
                coef = _ext_value(t[1], "claim coefficient")
                if not coef.any():
                    raise ValueError("a linear claim's coefficient is zero")
                terms.append((_ext_point(t[0], m), coef))
            out.append((terms, _ext_value(cl.value, "claim value")))
        elif isinstance(cl, Claim):
            out.append(([(_ext_point(cl.point, m), one)], _ext_value(cl.value, "claim value")))
        else:
            raise TypeError(f"claims are Claim or LinearClaim, got {type(cl).__name__}")
    return out


def _absorb_claims(tr: Transcript, params: WhirParams, com: "Commitment", claims) -> None:
    tr.absorb_bytes("whir/params", params.encode())
    tr.absorb_digest("whir/commitment", com.digest())
    chunks = [struct.pack("<I", len(claims))]
    for terms, val in claims:
        chunks.append(struct.pack("<I", len(terms)))
        for pt, coef in terms:
            chunks += [pt.astype("<u4").tobytes(), coef.astype("<u4").tobytes()]
        chunks.append(val.astype("<u4").tobytes())
    tr.absorb_bytes("whir/claims", b"".join(chunks))


# --- small field helpers -----------------------------------------------------------------------------

class _Ext:
    """Arithmetic of the field that ``ρ`` and the folding challenges come from: the degree-4
    extension (``x^4 = 11``, elements (…, 4)) or the degree-8 one (``y^8 = 11``, elements (…, 8)),
    which holds the degree-4 one by ``x ↦ y^2`` (:meth:`embed`). Everything the prover computes after
    ``ρ`` lives here; claims, ``α``, ``γ`` and OOD points stay in the degree-4 extension."""

    def __init__(self, d: int) -> None:
        self.d = d
        if d == 4:
            self.round_s02, self.fold_table, self.fold_coefs = K.round_s02, K.fold_table, K.fold_coefs
            self.fold_blocks, self.fold2_s02 = K.fold_blocks, K.fold2_s02
        else:
            self.round_s02, self.fold_table, self.fold_coefs = K.round_s02_8, K.fold_table_8, K.fold_coefs_8
            self.fold_blocks, self.fold2_s02 = K.fold_blocks_8, K.fold2_s02_8

    def zero(self, shape=()) -> np.ndarray:
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        return np.zeros(shape + (self.d,), dtype=np.uint32)

    def one(self, shape=()) -> np.ndarray:
        out = self.zero(shape)
        out[..., 0] = 1
        return out

    def embed(self, a4: np.ndarray) -> np.ndarray:
        """Degree-4 elements into this field (identity for d = 4; coefficient i to y^{2i} for d = 8)."""
        a4 = np.asarray(a4, dtype=np.uint32)
        if self.d == 4:
            return a4
        out = np.zeros(a4.shape[:-1] + (8,), dtype=np.uint32)
        out[..., 0::2] = a4
        return out

    def mul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self.d == 4:
            return F.emul(a, b)
        a, b = np.broadcast_arrays(np.asarray(a, dtype=np.uint32), np.asarray(b, dtype=np.uint32))
        shape = a.shape
        return K.e8_mul_flat(np.ascontiguousarray(a).reshape(-1, 8), np.ascontiguousarray(b).reshape(-1, 8)).reshape(shape)

    add = staticmethod(lambda a, b: F.add(a, b))
    sub = staticmethod(lambda a, b: F.sub(a, b))

    def sum(self, x: np.ndarray) -> np.ndarray:
        return (x.reshape(-1, self.d).astype(np.uint64).sum(axis=0) % np.uint64(F.P)).astype(np.uint32)

    def challenge(self, tr: Transcript, label: str, n: int | None = None) -> np.ndarray:
        """``n`` uniform elements (n, d), or one (d,) when n is None."""
        k = 1 if n is None else n
        out = tr.challenge_exts(label, k * self.d // 4).reshape(k, self.d)
        return out[0] if n is None else out

    def add_eq(self, w: np.ndarray, stride: int, offset: int, point4: np.ndarray, coef: np.ndarray) -> None:
        """``w[offset + stride·x] += coef·eq(point4, x)`` for a degree-4 point and a coefficient of this
        field. Degree 8 is F4 ⊕ y·F4 (even and odd coefficients), and eq(point4, ·) lies in F4, so the
        two halves of the coefficient go to the even and the odd limbs."""
        if self.d == 4:
            K.add_eq(w, stride, offset, point4, np.ascontiguousarray(coef))
        else:
            K.add_eq(w[:, 0::2], stride, offset, point4, np.ascontiguousarray(coef[0::2]))
            K.add_eq(w[:, 1::2], stride, offset, point4, np.ascontiguousarray(coef[1::2]))

    @staticmethod
    def absorb(tr: Transcript, label: str, arr: np.ndarray) -> None:
        tr.absorb_ext(label, np.ascontiguousarray(arr).reshape(-1, 4))

    def quad_at(self, s0: np.ndarray, s1: np.ndarray, s2: np.ndarray, r: np.ndarray) -> np.ndarray:
        """Value at r of the quadratic with values s0, s1, s2 at 0, 1, 2 (Lagrange)."""
        one, two = self.one(), self.embed(F.ext(2))
        inv2 = self.embed(F.ext((F.P + 1) // 2))
        rm1, rm2 = self.sub(r, one), self.sub(r, two)
        l0 = self.mul(self.mul(rm1, rm2), inv2)
        l1 = self.sub(self.zero(), self.mul(r, rm2))
        l2 = self.mul(self.mul(r, rm1), inv2)
        return self.add(self.add(self.mul(s0, l0), self.mul(s1, l1)), self.mul(s2, l2))

    def evaluate(self, table: np.ndarray, point: np.ndarray) -> np.ndarray:
        """The multilinear with hypercube values ``table`` (2^n, d) at ``point`` (n, d)."""
        t = table.copy()
        length = t.shape[0]
        for i in range(point.shape[0]):
            self.fold_table(t, length, np.ascontiguousarray(point[i]))
            length //= 2
        return t[0].copy()

    def eq_many(self, points: np.ndarray, r: np.ndarray) -> np.ndarray:
        """eq(points[l], r) for points (L, n, d) against r (n, d): (L, d)."""
        L, n = points.shape[0], points.shape[1]
        out = self.one(L)
        if n == 0:
            return out
        rr = np.broadcast_to(r[None], points.shape)
        pr = self.mul(points, rr)
        t = self.add(self.sub(self.sub(self.add(pr, pr), points), rr), self.one((L, n)))
        for i in range(n):
            out = self.mul(out, t[:, i])
        return out

    def coef_eval(self, c: np.ndarray, point: np.ndarray) -> np.ndarray:
        """A multilinear given by coefficients c (2^n, d) at points (L, n, d): (L, d)."""
        L, n = point.shape[0], point.shape[1]
        cur = np.broadcast_to(c[None], (L,) + c.shape).copy()
        for i in range(n):
            h = cur.shape[1] // 2
            cur = self.add(cur[:, :h], self.mul(cur[:, h:], np.broadcast_to(point[:, i][:, None, :], cur[:, h:].shape)))
        return cur[:, 0]


def _pow_point_ext(x: np.ndarray, n: int) -> np.ndarray:
    """(x, x^2, x^4, …) with n coordinates for an extension x (4,): (n, 4)."""
    out = np.empty((n, 4), dtype=np.uint32)
    cur = np.asarray(x, dtype=np.uint32)
    for i in range(n):
        out[i] = cur
        cur = F.emul(cur, cur)
    return out


def _pow_points_base(xs: np.ndarray, n: int) -> np.ndarray:
    """(x, x^2, …) for base points xs (L,): (L, n) base."""
    out = np.empty((xs.size, n), dtype=np.uint32)
    cur = xs.astype(np.uint32)
    for i in range(n):
        out[:, i] = cur
        cur = F.mul(cur, cur)
    return out


def _random_field(n: int, rng: np.random.Generator | None) -> np.ndarray:
    """Uniform base-field elements: ``rng`` for reproducible tests, else the OS CSPRNG through BLAKE3."""
    if rng is not None:
        return F.random(rng, n)
    xof = blake3.blake3(key=os.urandom(32))
    pos = [0]

    def read(k: int) -> bytes:
        out = xof.digest(length=k, seek=pos[0])
        pos[0] += k
        return out
    return F.uniform_from_bytes(read, n)


def _rev(idx: np.ndarray, bits: int) -> np.ndarray:
    """Bit reversal of each index over ``bits`` bits."""
    out = np.zeros_like(idx)
    for b in range(bits):
        out |= ((idx >> b) & 1) << (bits - 1 - b)
    return out


def _block_points(log_n: int, k: int, blocks: np.ndarray) -> np.ndarray:
    """``y_b`` (base) of each block: a codeword on 2^log_n points in natural order, read as a
    (2^k, 2^log_n / 2^k) matrix, has in column b the coset ``y_b·ζ^t`` (row t) with ``y_b = ω^b`` and
    ``ζ = ω^{2^{log_n − k}}`` of order 2^k: the points that fold into ``y_b^{2^k}``."""
    om = F.two_adic_generator(log_n)
    return F.pow_(np.full(blocks.shape, om, dtype=np.uint32), blocks.astype(np.int64))


def _encode(coefs: np.ndarray, log_n: int) -> np.ndarray:
    """Codewords (R, 2^log_n), natural order, of multilinear coefficient rows (R, 2^m)
    (:func:`_whir_kernels.encode_natural`)."""
    return K.encode_natural(np.ascontiguousarray(coefs, dtype=np.uint32), log_n, _twiddles(log_n))


# --- commitment --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Commitment:
    """The Merkle root of the first oracle, the polynomial's size, and a digest of the parameters
    it was made under (a verifier with other parameters rejects)."""

    root: bytes
    log_size: int
    params_digest: bytes

    def to_bytes(self) -> bytes:
        w = Writer()
        w.header(COMMITMENT_MAGIC, FORMAT_VERSION)
        w.bytes_(self.root)
        w.u8(self.log_size)
        w.bytes_(self.params_digest)
        return w.getvalue()

    @staticmethod
    def from_bytes(data: bytes) -> "Commitment":
        """Parse :meth:`to_bytes`; :class:`ProofFormatError` on anything malformed."""
        r = Reader(data, max_total=6 + 4 + 32 + 1 + 4 + 32)
        r.header(COMMITMENT_MAGIC, (FORMAT_VERSION,))
        root = r.bytes_(32, exact=32)
        m = r.u8(26)
        pd = r.bytes_(32, exact=32)
        r.finish()
        return Commitment(root, m, pd)

    def digest(self) -> bytes:
        """BLAKE3 of the encoding: what transcripts absorb."""
        return blake3.blake3(self.to_bytes()).digest()


def params_digest(params: WhirParams) -> bytes:
    """The digest a commitment records of the parameters it was made under."""
    return blake3.blake3(b"blindproof whir params v2" + params.encode()).digest()


@dataclass
class ProverState:
    """The committer's secrets: hypercube tables and coefficients of ``P_f`` and ``P_g`` (base field,
    ``2^n`` each), the first oracle's leaves and tree. One opening only (hiding budget)."""

    params: WhirParams
    commitment: Commitment
    pf_table: np.ndarray  # (2^n,)
    pg_table: np.ndarray  # (G, 2^n): the base rows P_g of the mask M = Σ_g b_g·P_g (G = ext_degree)
    pf_coefs: np.ndarray
    pg_coefs: np.ndarray
    leaves: np.ndarray  # ((1 + G)·2^k, N_0 / 2^k): block of P_f, then the blocks of M's rows, per leaf
    tree: merkle.MerkleTree
    opened: bool = False
    # test-and-set of ``opened`` is atomic: concurrent openings would together reveal more positions of
    # the first oracle than its hiding coefficients cover
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)


def commit(table: np.ndarray, params: WhirParams, rng: np.random.Generator | None = None
           ) -> tuple[Commitment, ProverState]:
    """Commit to the multilinear polynomial with hypercube values ``table`` (2^m base-field entries,
    MSB-first). Randomness from the OS CSPRNG unless ``rng`` is given (tests only)."""
    t = F._check(np.asarray(table), "table").reshape(-1)
    m = params.log_size
    if t.size != 1 << m:
        raise ValueError(f"table has {t.size} entries, the parameters are for 2^{m}")
    mp, n = params.padded_log, params.n_vars
    k0, log_n0 = params.folds[0], params.domain_logs[0]
    th = params.hiding_symbols
    G = params.masks
    rand = _random_field(th + G * (1 << n), rng)
    s_u, pg_table = rand[:th], rand[th:].reshape(G, 1 << n)
    # P_f: f padded with leading zero variables, then the hiding variable Y as the last one
    fpad = np.zeros(1 << mp, dtype=np.uint32)
    fpad[:t.size] = t
    cf = fpad.copy()
    K.mobius_base(cf)
    s_c = np.zeros(1 << mp, dtype=np.uint32)
    s_c[_rev(np.arange(th, dtype=np.int64), mp)] = s_u  # univariate coefficient e' of s is the multilinear coefficient rev(e')
    s_tab = s_c.copy()
    K.zeta_base(s_tab)
    pf_coefs = np.empty(1 << n, dtype=np.uint32)
    pf_coefs[0::2], pf_coefs[1::2] = cf, s_c
    pf_table = np.empty(1 << n, dtype=np.uint32)
    pf_table[0::2], pf_table[1::2] = fpad, F.add(fpad, s_tab)
    pg_coefs = pg_table.copy()
    for g in range(G):
        K.mobius_base(pg_coefs[g])
    code = _encode(np.concatenate([pf_coefs[None], pg_coefs]), log_n0)  # (1 + G, N_0), natural order
    blocks = (1 << log_n0) >> k0
    leaves = code.reshape((1 + G) << k0, blocks)  # row (polynomial, t), column b: the coset of block b
    tree = merkle.MerkleTree(leaves)
    com = Commitment(tree.root, m, params_digest(params))
    return com, ProverState(params, com, pf_table, pg_table, pf_coefs, pg_coefs, leaves, tree)


# --- proof -------------------------------------------------------------------------------------------

@dataclass
class RoundProof:
    """One oracle's round: the sumcheck messages that fold it, the next oracle (root and OOD answers;
    empty for the last), and the opened blocks of this oracle with their Merkle multiproof."""

    sumcheck: np.ndarray  # (k, 2, 4)
    root: bytes  # next oracle's root (b"" for the last round)
    ood: np.ndarray  # (ood, 4) next oracle's out-of-domain answers ((0, 4) for the last round)
    values: np.ndarray  # round 0: (q, (1 + G)·2^k) base; later: (q, 2^k, d) extension
    siblings: np.ndarray  # (s, 8) multiproof digests


@dataclass
class Proof:
    """A batched opening; see the module docstring for the order of its parts."""

    ood0: np.ndarray  # (ood, 1 + d/4, 4): P_f, then M (d limbs in d/4 pieces), at the initial OOD points
    mu: np.ndarray  # (d,): ⟨M, w⟩, in the challenge field
    rounds: list
    final: np.ndarray  # (2^final_vars, 4) coefficients
    final_sumcheck: np.ndarray  # (final_vars, 2, 4)
    provable_tenths: int = 0
    conjectured_tenths: int = 0

    def to_bytes(self) -> bytes:
        """Versioned encoding; every count is implied by the verifier's parameters except the number
        of distinct query positions per round (checked against the transcript)."""
        w = Writer()
        w.header(PROOF_MAGIC, FORMAT_VERSION)
        w.u32(self.provable_tenths)
        w.u32(self.conjectured_tenths)
        w.ext_fixed(self.ood0.reshape(-1, 4))
        w.field_fixed(self.mu)
        for i, rd in enumerate(self.rounds):
            w.field_fixed(rd.sumcheck)
            if i + 1 < len(self.rounds):
                w.bytes_(rd.root)
                w.field_fixed(rd.ood)
            else:
                w.field_fixed(self.final)
            w.u32(rd.values.shape[0])
            w.field_fixed(rd.values)
            w.bytes_(np.ascontiguousarray(rd.siblings, dtype="<u4").tobytes())
        w.field_fixed(self.final_sumcheck)
        return w.getvalue()

    @staticmethod
    def from_bytes(data: bytes, params: WhirParams) -> "Proof":
        """Parse bytes under the verifier's ``params``; every count and size is checked against them,
        and the whole input against a size bound computed from them."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ProofFormatError("proof must be bytes")
        limit = max_proof_bytes(params)
        r = Reader(bytes(data), max_total=limit)
        r.header(PROOF_MAGIC, (FORMAT_VERSION,))
        prov, conj = r.u32(), r.u32()
        s, D = params.ood, params.ext_degree
        G = params.masks
        ood0 = r.ext_fixed((1 + D // 4) * s).reshape(s, 1 + D // 4, 4)
        mu = r.field_fixed(D)
        rounds = []
        final = None
        nr = len(params.folds)
        for i, (k, ld, t) in enumerate(zip(params.folds, params.domain_logs, params.queries)):
            sc = r.field_fixed(2 * k * D).reshape(k, 2, D)
            if i + 1 < nr:
                root = r.bytes_(32, exact=32)
                ood = r.field_fixed(s * D).reshape(s, D)
            else:
                root, ood = b"", np.zeros((0, D), dtype=np.uint32)
                final = r.field_fixed(D << params.final_vars).reshape(1 << params.final_vars, D)
            q = r.u32(t)
            if q == 0:
                raise ProofFormatError(f"round {i} opens no blocks")
            vals = r.field_fixed(q * ((1 + G) << k)).reshape(q, (1 + G) << k) if i == 0 else \
                r.field_fixed((q << k) * D).reshape(q, 1 << k, D)
            depth = ld - k
            sib = r.bytes_(32 * q * max(depth, 1))
            if len(sib) % 32:
                raise ProofFormatError("Merkle siblings are not a whole number of digests")
            rounds.append(RoundProof(sc, bytes(root), ood, vals,
                                     np.frombuffer(sib, dtype="<u4").astype(np.uint32).reshape(-1, 8)))
        fs = r.field_fixed(2 * params.final_vars * D).reshape(params.final_vars, 2, D)
        r.finish()
        return Proof(ood0, mu, rounds, final, fs, prov, conj)


def max_proof_bytes(params: WhirParams) -> int:
    """The size of the largest well-formed proof under ``params``, field by field as
    :meth:`Proof.to_bytes` writes it (only the number of opened blocks per round varies, at most
    ``queries[i]``, and a multiproof holds at most ``depth`` digests per opened block)."""
    D, s, G = params.ext_degree, params.ood, params.masks
    d = 4 * D  # bytes per element of the challenge field
    nr = len(params.folds)
    total = 6 + 4 + 4  # magic and version, the two soundness figures
    total += 16 * s * (1 + D // 4) + d  # initial OOD answers (P_f, then M in D/4 pieces), μ
    for i, (k, ld, t) in enumerate(zip(params.folds, params.domain_logs, params.queries)):
        total += 2 * d * k  # sumcheck (s(0), s(2)) per round
        total += (4 + 32 + d * s) if i + 1 < nr else d * (1 << params.final_vars)  # next root + OOD, or final
        total += 4  # number of opened blocks
        total += t * (4 * ((1 + G) << k) if i == 0 else d << k)  # opened blocks
        total += 4 + 32 * t * max(ld - k, 1)  # siblings (length-prefixed)
    total += 2 * d * params.final_vars
    return total


def _soundness_tenths(params: WhirParams, n_claims: int) -> tuple[int, int]:
    rep = analyze(params, n_claims)
    return int(rep.provable_bits * 10), int(rep.conjectured_bits * 10)


# --- opening -----------------------------------------------------------------------------------------

def _mask_scalars(E: "_Ext", rho: np.ndarray) -> np.ndarray:
    """``ρ·b_g`` (G, d) for the basis ``b_g = x^g`` (degree 4) or ``y^g`` (degree 8) of the challenge
    field over F_p: the coefficients of the mask's base rows in ``F = P_f + ρ·M``."""
    return E.mul(np.broadcast_to(rho, (E.d, E.d)), np.eye(E.d, dtype=np.uint32))


def _mask_combine(E: "_Ext", parts) -> np.ndarray:
    """``Σ_g b_g·parts[g]`` for challenge-field values (d,) each: the mask ``M = Σ_g b_g P_g``'s value
    from its base rows' values."""
    return E.sum(E.mul(np.stack(parts), np.eye(E.d, dtype=np.uint32)))


def _claim_weights(params: WhirParams, claims, alpha: np.ndarray, E: "_Ext") -> np.ndarray:
    """Hypercube weight table (2^n, d) of the batched claims (``α_j`` per claim, in the challenge
    field). The hiding does not rely on the weights spanning any field: the mask ``M`` has values in
    the challenge field, so ``ρ·⟨M, w⟩`` covers it for any nonzero ``w``."""
    w = E.zero(1 << params.n_vars)
    for j, (terms, _) in enumerate(claims):
        for pt, coef in terms:  # f(z) = P_f(0^pad, z, 0): even entries of the first 2^{m+1}
            E.add_eq(w, 2, 0, pt, E.mul(alpha[j], E.embed(coef)))
    return w


def _positions(tr: Transcript, params: WhirParams, i: int) -> np.ndarray:
    blocks = 1 << (params.domain_logs[i] - params.folds[i])
    return np.unique(tr.challenge_indices("whir/queries", params.queries[i], blocks))


def open_claims(state: ProverState, claims: Sequence, transcript: Transcript) -> Proof:
    """Prove every claim (:class:`Claim` or :class:`LinearClaim`) about the committed polynomial with
    one opening. The transcript should already hold whatever the claims were derived from. A state
    may be opened once: a second opening would reveal further positions of the first oracle, beyond
    what its hiding coefficients cover (RuntimeError)."""
    once = "this commitment was already opened once; its hiding covers one opening"
    if state.opened:
        raise RuntimeError(once)
    p = state.params
    E = _Ext(p.ext_degree)
    D = E.d
    norm = _normalize(claims, p.log_size)  # malformed claims: an error, and the state stays unopened
    with state._lock:
        if state.opened:
            raise RuntimeError(once)
        state.opened = True
    n, s = p.n_vars, p.ood
    _absorb_claims(transcript, p, state.commitment, norm)
    ood_pts = transcript.challenge_exts("whir/ood0", s)
    G = p.masks
    ood0 = np.empty((s, 1 + D // 4, 4), dtype=np.uint32)
    for o in range(s):  # P_f(ζ) (degree 4), then M(ζ) = Σ_g b_g·P_g(ζ) (challenge field, in D/4 pieces)
        pt = _pow_point_ext(ood_pts[o], n)
        ood0[o, 0] = mle.evaluate(state.pf_table, pt)
        mz = _mask_combine(E, [E.embed(mle.evaluate(state.pg_table[g], pt)) for g in range(G)])
        ood0[o, 1:] = mz.reshape(D // 4, 4)
    transcript.absorb_ext("whir/ood0_answers", ood0)
    alpha = E.challenge(transcript, "whir/alpha", len(norm) + s)
    w = _claim_weights(p, norm, alpha, E)
    mu = _mask_combine(E, [K.edot_base_d(w, state.pg_table[g]) for g in range(G)])  # ⟨M, w⟩: uniform, as M is
    E.absorb(transcript, "whir/mu", mu)
    rho = _mask_scalars(E, E.challenge(transcript, "whir/rho"))  # ρ·b_g: F = P_f + ρ·M
    for o in range(s):  # the OOD constraints F(ζ) = P_f(ζ) + ρ·M(ζ)
        E.add_eq(w, 1, 0, _pow_point_ext(ood_pts[o], n), alpha[len(norm) + o])
    wv = w if D == 4 else w[:, 0::2]  # the degree-4 part, where weights with degree-4 coefficients land
    ftab = K.combine_many(state.pf_table, state.pg_table, rho)  # F = P_f + ρ·M: uniform given μ, σ
    fco = K.combine_many(state.pf_coefs, state.pg_coefs, rho)
    length = 1 << n
    rounds = []
    tree, leaves = state.tree, None
    nr = len(p.folds)
    final = None
    s02 = E.round_s02(ftab, w, length)
    for i, k in enumerate(p.folds):
        sc = np.empty((k, 2, D), dtype=np.uint32)
        for l in range(k):
            sc[l] = s02
            E.absorb(transcript, "whir/sumcheck", sc[l])
            r = E.challenge(transcript, "whir/fold")
            if E.fold2_s02 is not None and l + 1 < k and length >= 4:  # fold and next message in one pass
                s02 = E.fold2_s02(ftab, w, length, r)
            else:
                E.fold_table(ftab, length, r)
                E.fold_table(w, length, r)
                if l + 1 < k:
                    s02 = E.round_s02(ftab, w, length // 2)
            E.fold_coefs(fco, length, r)
            length //= 2
        ftab, w, fco = ftab[:length], w[:length], fco[:length]
        wv = w if D == 4 else w[:, 0::2]
        m_next = n - sum(p.folds[:i + 1])
        root, ood, ood_pts = b"", E.zero((0,)), None
        if i + 1 < nr:
            log_next, k_next = p.domain_logs[i + 1], p.folds[i + 1]
            code = _encode(np.ascontiguousarray(fco.T), log_next)  # (D, N): one codeword per limb
            nb = (1 << log_next) >> k_next
            next_leaves = code.reshape(D << k_next, nb)  # row (limb, t), column b
            next_tree = merkle.MerkleTree(next_leaves)
            root = next_tree.root
            transcript.absorb_digest("whir/root", root)
            ood_pts = transcript.challenge_exts("whir/ood", s)
            ood = np.stack([E.evaluate(ftab, E.embed(_pow_point_ext(ood_pts[o], m_next))) for o in range(s)]) \
                if s else E.zero((0,))
            E.absorb(transcript, "whir/ood_answers", ood)
        else:
            final = np.ascontiguousarray(fco)
            E.absorb(transcript, "whir/final", final)
        pos = _positions(transcript, p, i)
        if i == 0:
            values = np.ascontiguousarray(state.leaves[:, pos].T)
        else:
            values = np.ascontiguousarray(leaves[:, pos].T.reshape(pos.size, D, 1 << k).transpose(0, 2, 1))
        siblings = tree.open(pos)
        rounds.append(RoundProof(sc, root, ood, values, siblings))
        if i + 1 < nr:
            gam = transcript.challenge_exts("whir/gamma", s + pos.size)
            for o in range(s):
                K.add_eq(wv, 1, 0, _pow_point_ext(ood_pts[o], m_next), gam[o])
            ys = F.pow_(_block_points(p.domain_logs[i], k, pos), np.int64(1 << k))
            K.add_pow_eqs_split(wv, ys, np.ascontiguousarray(gam[s:]))
            tree, leaves = next_tree, next_leaves
        if length >= 2:
            s02 = E.round_s02(ftab, w, length)
    fv = p.final_vars
    fs = np.empty((fv, 2, D), dtype=np.uint32)
    for l in range(fv):
        fs[l] = E.round_s02(ftab, w, length) if l else s02
        E.absorb(transcript, "whir/final_sumcheck", fs[l])
        r = E.challenge(transcript, "whir/final_fold")
        E.fold_table(ftab, length, r)
        E.fold_table(w, length, r)
        length //= 2
    prov, conj = _soundness_tenths(p, len(norm))
    return Proof(ood0, mu, rounds, final, fs, prov, conj)


# --- verification ------------------------------------------------------------------------------------

def verify(commitment: Commitment, claims: Sequence, proof: "Proof | bytes", transcript: Transcript,
           params: WhirParams) -> VerifyResult:
    """Accept iff ``proof`` proves every claim against ``commitment`` under the verifier's own
    ``params`` (never read from the proof). Never raises."""
    return guarded(lambda: _verify(commitment, claims, proof, transcript, params), "whir.verify")


def _fold_blocks(vals: np.ndarray, ys: np.ndarray, rs: np.ndarray, E: "_Ext | None" = None) -> np.ndarray:
    """Fold opened blocks (q, 2^k, d) whose entry t sits at ``y·ζ^t`` with the challenges rs (k, d):
    the folded values at ``y^{2^k}`` (q, d); see :func:`_whir_kernels.fold_blocks`."""
    E = E or _Ext(vals.shape[-1])
    k = vals.shape[1].bit_length() - 1
    roots = np.array([F.two_adic_generator(k - l) for l in range(k)], dtype=np.uint32)
    return E.fold_blocks(np.ascontiguousarray(vals, dtype=np.uint32), ys.astype(np.uint32),
                         np.ascontiguousarray(rs), roots)


def _fold_blocks_reference(vals: np.ndarray, ys: np.ndarray, rs: np.ndarray) -> np.ndarray:
    """The same fold in numpy over the degree-4 field (tests compare the two)."""
    k = vals.shape[1].bit_length() - 1
    cur = vals
    y = ys.astype(np.uint32)
    inv2 = np.uint32((F.P + 1) // 2)
    for l in range(k):
        half = cur.shape[1] // 2
        zp = F.pow_(np.full(half, np.uint32(F.two_adic_generator(k - l)), dtype=np.uint32),
                    np.arange(half, dtype=np.int64))  # ζ^i, ζ of order 2^{k−l}
        x = F.mul(y[:, None], zp[None, :])  # (q, half): entry i is at x, entry i + half at −x
        inv2x = F.batch_inv(F.add(x, x))
        a, b = cur[:, :half], cur[:, half:]
        even = F.escale(F.eadd(a, b), np.broadcast_to(inv2, a.shape[:-1]))
        odd = F.escale(F.esub(a, b), inv2x)
        cur = F.eadd(even, F.emul(odd, np.broadcast_to(rs[l], odd.shape)))
        y = F.mul(y, y)
    return cur[:, 0]


def _verify(commitment, claims, proof, transcript: Transcript, params) -> VerifyResult:
    if not isinstance(params, WhirParams):
        return VerifyResult.reject("verify needs the verifier's WhirParams")
    if not isinstance(commitment, Commitment):
        return VerifyResult.reject("verify needs a whir Commitment")
    if commitment.log_size != params.log_size or commitment.params_digest != params_digest(params):
        return VerifyResult.reject("the commitment was made under other parameters than the verifier's")
    if not isinstance(transcript, Transcript):
        return VerifyResult.reject("verify needs a Transcript")
    if isinstance(proof, (bytes, bytearray, memoryview)):
        try:
            proof = Proof.from_bytes(bytes(proof), params)
        except ProofFormatError as exc:
            return VerifyResult.reject(f"malformed proof: {exc}")
    if not isinstance(proof, Proof):
        return VerifyResult.reject("proof must be a Proof or its bytes")
    try:
        norm = _normalize(claims, params.log_size)
    except (TypeError, ValueError) as exc:
        return VerifyResult.reject(f"bad claim: {exc}")
    shape_err = _check_shapes(proof, params)
    if shape_err:
        return VerifyResult.reject(shape_err)
    if (proof.provable_tenths, proof.conjectured_tenths) != _soundness_tenths(params, len(norm)):
        return VerifyResult.reject("stated soundness figures do not match the parameters")

    E = _Ext(params.ext_degree)
    n, s = params.n_vars, params.ood
    pad = params.padded_log - params.log_size
    _absorb_claims(transcript, params, commitment, norm)
    ood_pts = transcript.challenge_exts("whir/ood0", s)
    transcript.absorb_ext("whir/ood0_answers", proof.ood0)
    alpha = E.challenge(transcript, "whir/alpha", len(norm) + s)
    E.absorb(transcript, "whir/mu", proof.mu)
    G = params.masks
    rho1 = E.challenge(transcript, "whir/rho")
    rho = _mask_scalars(E, rho1)  # (G, d): ρ·b_g for the mask's base rows
    # Σ α_j v_j + Σ α_o P_f(ζ_o)  +  ρ·(μ + Σ α_o M(ζ_o)): the P_f part and the mask's part
    vals = E.embed(np.stack([v for _, v in norm]))
    part_f = E.sum(E.mul(alpha[:len(norm)], vals))
    claim = part_f
    part_m = proof.mu
    if s:
        claim = E.add(claim, E.sum(E.mul(alpha[len(norm):], E.embed(proof.ood0[:, 0]))))
        part_m = E.add(part_m, E.sum(E.mul(alpha[len(norm):], proof.ood0[:, 1:].reshape(s, E.d))))
    claim = E.add(claim, E.mul(rho1, part_m))
    # constraints, for w(r) at the end: (points (L, vars, d), coefficients (L, d), first variable)
    cons: list[tuple[np.ndarray, np.ndarray, int]] = []
    pts, cfs = [], []
    for j, (terms, _) in enumerate(norm):
        for pt, coef in terms:
            pts.append(np.concatenate([F.ezero(pad), pt, F.ezero(1)]))
            cfs.append(E.mul(alpha[j], E.embed(coef)))
    cons.append((E.embed(np.stack(pts)), np.stack(cfs), 0))
    if s:
        cons.append((E.embed(np.stack([_pow_point_ext(z, n) for z in ood_pts])), alpha[len(norm):], 0))

    rs_all: list[np.ndarray] = []
    nr = len(params.folds)
    root = commitment.root
    for i, (k, ld) in enumerate(zip(params.folds, params.domain_logs)):
        rd = proof.rounds[i]
        rs = np.empty((k, E.d), dtype=np.uint32)
        for l in range(k):
            s0, s2 = rd.sumcheck[l]
            E.absorb(transcript, "whir/sumcheck", rd.sumcheck[l])
            r = E.challenge(transcript, "whir/fold")
            rs[l] = r
            claim = E.quad_at(s0, E.sub(claim, s0), s2, r)
        rs_all.append(rs)
        start = sum(params.folds[:i + 1])
        m_next = n - start
        if i + 1 < nr:
            transcript.absorb_digest("whir/root", rd.root)
            ood_pts = transcript.challenge_exts("whir/ood", s)
            E.absorb(transcript, "whir/ood_answers", rd.ood)
        else:
            E.absorb(transcript, "whir/final", proof.final)
        pos = _positions(transcript, params, i)
        if rd.values.shape[0] != pos.size:
            return VerifyResult.reject(f"round {i}: {rd.values.shape[0]} opened blocks, the transcript asks {pos.size}")
        if i == 0:
            leaf_rows = rd.values  # (q, (1 + G)·2^k) base: the P_f block, then the mask rows' blocks
            half = 1 << k
            masks = np.ascontiguousarray(leaf_rows[:, half:].reshape(pos.size, G, half).transpose(1, 0, 2)).reshape(G, -1)
            blockv = K.combine_many(np.ascontiguousarray(leaf_rows[:, :half]).reshape(-1), masks,
                                    rho).reshape(pos.size, half, E.d)
        else:
            leaf_rows = np.ascontiguousarray(rd.values.transpose(0, 2, 1).reshape(pos.size, -1))  # (limb, t)
            blockv = rd.values
        if not merkle.verify(root, 1 << (ld - k), pos, merkle.hash_columns(np.ascontiguousarray(leaf_rows)),
                             rd.siblings):
            return VerifyResult.reject(f"round {i}: Merkle multiproof does not match the oracle's root")
        ybase = _block_points(ld, k, pos)
        folded = _fold_blocks(blockv, ybase, rs, E)
        ys = F.pow_(ybase, np.int64(1 << k))
        if i + 1 < nr:
            gam = transcript.challenge_exts("whir/gamma", s + pos.size)
            g = E.embed(gam)
            if s:
                claim = E.add(claim, E.sum(E.mul(g[:s], rd.ood)))
                cons.append((E.embed(np.stack([_pow_point_ext(z, m_next) for z in ood_pts])), g[:s], start))
            claim = E.add(claim, E.sum(E.mul(g[s:], folded)))
            cons.append((E.embed(F.embed(_pow_points_base(ys, m_next))), g[s:], start))
            root = rd.root
        else:
            want = E.coef_eval(proof.final, E.embed(F.embed(_pow_points_base(ys, m_next))))
            if not np.array_equal(want, folded):
                return VerifyResult.reject("the final polynomial does not match the last oracle's folded blocks")
    fv = params.final_vars
    rf = np.empty((fv, E.d), dtype=np.uint32)
    for l in range(fv):
        s0, s2 = proof.final_sumcheck[l]
        E.absorb(transcript, "whir/final_sumcheck", proof.final_sumcheck[l])
        r = E.challenge(transcript, "whir/final_fold")
        rf[l] = r
        claim = E.quad_at(s0, E.sub(claim, s0), s2, r)
    r_all = np.concatenate(rs_all + [rf])
    w_r = E.zero()
    for pts_c, cf, start in cons:
        w_r = E.add(w_r, E.sum(E.mul(cf, E.eq_many(pts_c, r_all[start:]))))
    f_r = E.coef_eval(proof.final, rf[None])[0]
    if not np.array_equal(E.mul(f_r, w_r), claim):
        return VerifyResult.reject("the final sumcheck claim does not match the final polynomial and the weights")
    return VerifyResult.accept()


def _check_shapes(proof: Proof, params: WhirParams) -> str:
    s, nr, D = params.ood, len(params.folds), params.ext_degree
    G = params.masks
    if not isinstance(proof.ood0, np.ndarray) or proof.ood0.shape != (s, 1 + D // 4, 4) or \
            not isinstance(proof.mu, np.ndarray) or proof.mu.shape != (D,) or len(proof.rounds) != nr:
        return "proof shape does not match the parameters (initial part or round count)"
    if not isinstance(proof.final, np.ndarray) or proof.final.shape != (1 << params.final_vars, D):
        return "final polynomial has the wrong size"
    if not isinstance(proof.final_sumcheck, np.ndarray) or proof.final_sumcheck.shape != (params.final_vars, 2, D):
        return "final sumcheck has the wrong number of rounds"
    for i, (rd, k, t) in enumerate(zip(proof.rounds, params.folds, params.queries)):
        if not isinstance(rd, RoundProof) or rd.sumcheck.shape != (k, 2, D):
            return f"round {i}: sumcheck has the wrong shape"
        if i + 1 < nr and (len(rd.root) != 32 or rd.ood.shape != (s, D)):
            return f"round {i}: next oracle root or OOD answers malformed"
        want = ((1 + G) << k,) if i == 0 else (1 << k, D)
        if rd.values.ndim != 1 + len(want) or rd.values.shape[1:] != want or not 1 <= rd.values.shape[0] <= t:
            return f"round {i}: opened blocks have the wrong shape"
        for arr in (rd.sumcheck, rd.ood, rd.values):
            if arr.dtype != np.uint32 or (arr.size and int(arr.max()) >= F.P):
                return f"round {i}: non-canonical field element"
    for arr in (proof.ood0, proof.mu, proof.final, proof.final_sumcheck):
        if arr.dtype != np.uint32 or (arr.size and int(arr.max()) >= F.P):
            return "non-canonical field element"
    return ""
