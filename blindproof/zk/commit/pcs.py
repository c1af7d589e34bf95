"""Hash-based, transparent, hiding commitment to multilinear polynomials (Ligero/Brakedown style).

Commit. Named tensors (base-field vectors, zero-padded to powers of two) are packed, largest first,
into the rows of one matrix ``M`` with ``C`` columns: a tensor of ``s ≥ C`` entries fills ``s/C``
rows, a smaller one a ``s``-aligned segment of a row. Under the MSB-first convention of
:mod:`blindproof.zk.iop.mle`, a tensor's MLE at ``z`` is ``rw(z)ᵀ M cw(z)`` for a row-weight vector
``rw`` (an eq table on the tensor's rows) and a column-weight vector ``cw`` (an eq table on its
columns). Mask rows (random) are appended. Each row's message (``C`` coefficients) is extended by ``t``
random coefficients (``t`` = number of column queries) and Reed–Solomon encoded by one NTT onto
the ``N = C · blowup`` roots of unity (in bit-reversed order, :mod:`blindproof.zk.commit.reed_solomon`); the columns of the encoded matrix are the leaves of one BLAKE3 Merkle tree.

Open (many claims ``tensor_j(z_j) = v_j`` at once, one opening). Claims in general have different
column points, and a Ligero opening proves one row combination per column point. So a short sumcheck
over the ``log2 C`` column variables first moves every claim to one shared random column point ``ζ``:

    Σ_j α_j v_j + ρ μ  =  Σ_x [ Σ_j α_j cw_j(x) U_j(x) + ρ (eq(τ,x) G1(x) + eq(τ',x) G2(x)) ],

where ``U_j = rw_jᵀ M`` (the prover computes it, it is never sent), ``G1, G2`` are committed random
mask rows and ``μ = G1(τ) + G2(τ')`` is sent before ``ρ`` is drawn. After the sumcheck the final claim
is ``u · eq(ζ)`` for the single row combination ``u = wᵀ M`` with ``w = Σ_j α_j cw_j(ζ) rw_j +
ρ eq(τ,ζ) e_G1 + ρ eq(τ',ζ) e_G2 + κ Σ_k X^k e_Hk``, which one Ligero opening proves. The prover work
is one pass over the claimed tensors plus ``O(#claims · C)`` for the sumcheck; the proof holds one
evaluation row whatever the number of claims. (The alternative, one row combination per distinct
column point, costs ``16·C`` bytes per claim: 64 KiB at ``C = 4096``.) A proximity test (a random
combination of all rows, repeated ``proximity_tests`` times) binds the rows that no claim touches.

Hiding. (1) Any ``t`` evaluations of ``m(x) + x^C s(x)`` with random ``s`` of degree < t are uniform,
so opened columns reveal nothing. (2) Every revealed row combination includes ``X^k``-weighted
random mask rows (``k = 0..3``, so the mask is uniform over the extension field). (3) The sumcheck
messages are masked by ``ρ (eq(τ,x) G1(x) + eq(τ',x) G2(x))``: for generic ``τ ≠ τ'`` each round
adds two fresh uniformly random directions, which span every round polynomial with the given sum.
What a verifier learns beyond the claimed values is uniformly random.

Transcript order: commitment digest, claims, proximity weights ``γ``, ``α``, ``τ, τ'``, ``μ``, ``ρ``,
per round (``s(0), s(2)``, ``r_i``), mask values ``v_H``, ``κ``, rows, query positions.
"""

from __future__ import annotations

import dataclasses
import math
import os
import struct
from dataclasses import dataclass
from functools import cached_property
from typing import Mapping, Sequence

import blake3
import numpy as np

from blindproof.zk.field import babybear as F
from blindproof.zk.commit import merkle
from blindproof.zk.iop import mle
from blindproof.zk.commit import _pcs_kernels as K
from blindproof.zk.commit import reed_solomon as _rs
from blindproof.zk.proof import soundness
from blindproof.zk.field.encoding import ProofFormatError, Reader, Writer
from blindproof.zk.iop.transcript import Transcript
from blindproof.zk.verdict import VerifyResult, guarded

COMMITMENT_MAGIC = b"BPCM"
OPENING_MAGIC = b"BPOP"
FORMAT_VERSION = 2  # 2: hiding symbols apart from queries, stacked openings with companions, linear claims
OPENING_VERSION = 3  # 3: the evaluation masks' value sent as one extension element (not its four rows')
EVAL_MASKS = 4  # X^k-weighted rows: an extension-field mask from base-field rows
MAX_LOG_TENSOR = 26
MAX_TENSORS = 1 << 14  # gpt2-small's trace commits 3,451 tensors
MAX_LOG_COLS = 16
MAX_ROWS = 1 << 16
MAX_QUERIES = 1024
MAX_OPENINGS = 64  # openings a reused commitment's hiding symbols may cover
MAX_HIDING = MAX_QUERIES * MAX_OPENINGS
MAX_STACK = 4  # commitments opened together (weights, companion; a rotation adds one)
MAX_TERMS = 512  # terms of one linear claim (a lookup layer's payback: two per tree, plus four)
MAX_CLAIMS = 1 << 16  # gpt2-small's trace opening settles 4,396 claims; bounds the verifier's work


# --- parameters and layout ---------------------------------------------------------------------------

@dataclass(frozen=True)
class PcsParams:
    """Security target and code parameters. The query count follows from the layout (see
    :func:`soundness.queries_for`); the default reaches ≥ 100 provable bits."""

    security_bits: float = 100.0
    blowup: int = 4
    proximity_tests: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.security_bits, (int, float)) and 0 < self.security_bits <= 256):
            raise ValueError(f"security_bits must be in (0, 256], got {self.security_bits!r}")
        if self.blowup not in (2, 4, 8, 16):
            raise ValueError(f"blowup must be 2, 4, 8 or 16, got {self.blowup!r}")
        if not isinstance(self.proximity_tests, int) or not 1 <= self.proximity_tests <= 4:
            raise ValueError(f"proximity_tests must be an int in [1, 4], got {self.proximity_tests!r}")

    @classmethod
    def for_security(cls, bits: float) -> "PcsParams":
        """Parameters whose query and proximity terms each reach ``bits``. Above ~110 bits a single
        proximity test is capped by the extension field (N/|F_ext|), so the test is repeated; the
        reported provable figure stays capped near 119 bits by the sumcheck's field-size term."""
        tests = 1 if bits <= 105 else 2
        return cls(security_bits=float(bits), blowup=4, proximity_tests=tests)


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


@dataclass(frozen=True)
class Layout:
    """Where each tensor lives in the committed matrix, and the code's shape.

    ``hiding_symbols`` (``t_h``, 0 = the query count ``t``) random symbols extend every row's message:
    any ``t_h`` opened positions of a row are uniform. A commitment opened once (a proof's trace)
    keeps ``t_h = t``; a reused one (the model's weights) gets ``t_h = openings · t`` and its own
    mask rows are left out (``masks=False``): each opening of it is stacked with a fresh companion
    commitment (:func:`commit_companion`) that holds the mask rows. ``stretch`` multiplies the
    codeword length ``N = C · blowup · stretch``, so that extra hiding symbols do not raise the rate
    above that of a once-opened commitment (:func:`make_layout`)."""

    names: tuple[str, ...]
    log_sizes: tuple[int, ...]  # padded tensor sizes, in commit order
    log_cols: int
    n_queries: int
    blowup: int
    proximity_tests: int
    hiding_symbols: int = 0  # t_h; 0 means t (normalised on construction)
    stretch: int = 1
    masks: bool = True  # this matrix holds the opening's mask rows (else a companion does)

    def __post_init__(self) -> None:
        if self.hiding_symbols == 0:
            object.__setattr__(self, "hiding_symbols", self.n_queries)
        if len(self.names) != len(self.log_sizes) or len(self.names) > MAX_TENSORS:
            raise ValueError("layout: one log size per tensor name, at most MAX_TENSORS tensors")
        if not self.names and not self.masks:
            raise ValueError("layout: a matrix without mask rows must hold at least one tensor")
        if len(set(self.names)) != len(self.names):
            raise ValueError("layout: tensor names must be unique")
        if not 1 <= self.log_cols <= MAX_LOG_COLS or not 1 <= self.n_queries <= MAX_QUERIES:
            raise ValueError("layout: column count or query count out of range")
        if self.blowup not in (2, 4, 8, 16) or not 1 <= self.proximity_tests <= 4:
            raise ValueError("layout: blowup must be 2, 4, 8 or 16 and proximity tests 1..4")
        if self.stretch not in (1, 2, 4, 8, 16) or not isinstance(self.masks, bool):
            raise ValueError("layout: stretch must be 1, 2, 4, 8 or 16")
        if not self.n_queries <= self.hiding_symbols <= MAX_HIDING:
            raise ValueError(f"layout: hiding symbols must be in [queries, {MAX_HIDING}]")
        if any(not 0 <= s <= MAX_LOG_TENSOR for s in self.log_sizes):
            raise ValueError(f"layout: tensor sizes must be at most 2^{MAX_LOG_TENSOR}")
        if self.n_cols + self.hiding_symbols >= self.codeword_len:
            raise ValueError("layout: message plus hiding symbols must be shorter than the codeword")
        if self.n_rows > MAX_ROWS:
            raise ValueError(f"layout: {self.n_rows} rows exceed {MAX_ROWS}")

    @property
    def n_cols(self) -> int:
        return 1 << self.log_cols

    @property
    def codeword_len(self) -> int:
        return self.n_cols * self.blowup * self.stretch

    @property
    def openings(self) -> int:
        """How many openings the hiding symbols cover (``t_h / t``, rounded down)."""
        return self.hiding_symbols // self.n_queries

    def same_code(self, other: "Layout") -> bool:
        """Whether two matrices can be opened together (same columns, code, queries, tests)."""
        return ((self.log_cols, self.n_queries, self.blowup, self.proximity_tests, self.hiding_symbols, self.stretch)
                == (other.log_cols, other.n_queries, other.blowup, other.proximity_tests, other.hiding_symbols,
                    other.stretch))

    @cached_property
    def offsets(self) -> tuple[int, ...]:
        """Flat offset of each tensor: packed largest first, so each offset is aligned to its size."""
        order = sorted(range(len(self.log_sizes)), key=lambda i: (-self.log_sizes[i], i))
        out = [0] * len(self.log_sizes)
        pos = 0
        for i in order:
            out[i] = pos
            pos += 1 << self.log_sizes[i]
        return tuple(out)

    @cached_property
    def n_data_rows(self) -> int:
        total = sum(1 << s for s in self.log_sizes)
        return -(-total // self.n_cols)

    @property
    def n_mask_rows(self) -> int:
        return EVAL_MASKS + 2 + EVAL_MASKS * self.proximity_tests if self.masks else 0

    @property
    def eval_mask_row(self) -> int:
        return self.n_data_rows

    @property
    def g_rows(self) -> tuple[int, int]:
        return self.n_data_rows + EVAL_MASKS, self.n_data_rows + EVAL_MASKS + 1

    def prox_mask_row(self, test: int) -> int:
        return self.n_data_rows + EVAL_MASKS + 2 + EVAL_MASKS * test

    @property
    def n_rows(self) -> int:
        return self.n_data_rows + self.n_mask_rows

    @cached_property
    def _index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    def index(self, name: str) -> int:
        """Position of a tensor in commit order; ValueError if there is none of that name."""
        if name not in self._index:
            raise ValueError(f"no committed tensor named {name!r}")
        return self._index[name]

    def soundness(self, n_claims: int = 1) -> soundness.SoundnessReport:
        """Provable and conjectured bits of an opening of ``n_claims`` claims (the code's dimension
        counts every hiding symbol)."""
        return soundness.analyze(n_cols=self.n_cols, blowup=self.blowup * self.stretch, n_queries=self.n_queries,
                                 hiding=self.hiding_symbols, proximity_tests=self.proximity_tests,
                                 n_claims=max(1, n_claims))

    def estimated_proof_bytes(self) -> int:
        t, n = self.n_queries, self.codeword_len
        distinct = n * (1 - (1 - 1 / n) ** t)
        path = max(0.0, math.log2(n) - math.log2(max(distinct, 1))) + 1
        rows = (1 + self.proximity_tests) * (self.n_cols + self.hiding_symbols) * 16
        return int(distinct * (4 * self.n_rows + 32 * path) + rows + 16 * (2 * self.log_cols + 6))


def _layout_at(names, log_sizes, params: PcsParams, log_c: int, openings: int, masks: bool) -> Layout | None:
    """The layout with ``2^log_c`` columns, or None where none reaches the target. The codeword
    length is the smallest ``C · blowup · stretch`` at which some query count reaches the target:
    the soundness analysis prices the code's true rate ``(C + t_h)/N`` (more hiding symbols, more
    queries), and the prover's memory and time grow with ``N`` (gpt2-block: a stretch of 2 doubled
    its 2.4 GB encoded weight matrix and the prover ran out of a 24 GB host)."""
    c = 1 << log_c
    for stretch in (1, 2, 4, 8, 16) if openings > 1 else (1,):  # once-opened: today's code, N = blowup · C
        try:
            blow = params.blowup * stretch
            t = soundness.queries_for(params.security_bits, n_cols=c, blowup=blow, openings=openings)
            mk = lambda q: Layout(tuple(names), tuple(log_sizes), log_c, q, params.blowup,  # noqa: E731
                                  params.proximity_tests, openings * q, stretch, masks)
            lay = mk(t)
            # a few more queries so that the total (field terms included, for up to 64 claims)
            # also reaches the target where the field size allows it
            for extra in range(1, 9):
                if lay.soundness(64).provable_bits >= params.security_bits:
                    break
                lay = mk(t + extra)
            else:
                lay = mk(t)
        except ValueError:
            continue
        return lay  # the smallest stretch whose code reaches the target (its rate is priced by the analysis)
    return None


def make_layout(names: Sequence[str], log_sizes: Sequence[int], params: PcsParams, *, openings: int = 1,
                masks: bool = True) -> Layout:
    """The column count with the smallest estimated proof, its query count ``t``, and ``openings · t``
    hiding symbols (``openings > 1``: a reused commitment, opened with companions, ``masks=False``)."""
    if not isinstance(openings, int) or not 1 <= openings <= MAX_OPENINGS:
        raise ValueError(f"openings must be an int in [1, {MAX_OPENINGS}], got {openings!r}")
    total = sum(1 << s for s in log_sizes)
    best: Layout | None = None
    for log_c in range(4, MAX_LOG_COLS + 1):
        c = 1 << log_c
        if c > 2 * _pow2_at_least(total) and best is not None:
            break
        lay = _layout_at(names, log_sizes, params, log_c, openings, masks)
        if lay is not None and (best is None or lay.estimated_proof_bytes() < best.estimated_proof_bytes()):
            best = lay
    if best is None:
        raise ValueError(f"no layout reaches {params.security_bits} bits for {total} elements")
    return best


def check_layout_rule(layout: Layout, params: PcsParams, what: str = "the commitment") -> None:
    """ValueError unless ``layout`` is the one :func:`make_layout` gives for its tensors under
    ``params``: a verifier takes query count, columns, blowup and proximity tests from the parameter
    rule, never from the committer or the prover. A matrix with its own masks is opened once
    (``t_h = t``); one without (a reused commitment) has ``openings · t`` hiding symbols for the
    ``openings`` its committer chose, which its hiding symbols encode (and which the rule then checks)."""
    openings = 1 if layout.masks else layout.openings
    if not layout.masks and openings < 2:
        raise ValueError(f"{what} has no mask rows but hiding symbols for only one opening")
    want = make_layout(layout.names, layout.log_sizes, params, openings=openings, masks=layout.masks)
    if layout != want:
        raise ValueError(f"{what}'s layout (2^{layout.log_cols} columns, {layout.n_queries} queries, "
                         f"{layout.hiding_symbols} hiding symbols, blowup {layout.blowup}×{layout.stretch}, "
                         f"{layout.proximity_tests} proximity tests) is not the one the parameters give (2^{want.log_cols}, "
                         f"{want.n_queries}, {want.hiding_symbols}, {want.blowup}×{want.stretch}, {want.proximity_tests})")


def companion_layout(base: Layout, tensors: Mapping[str, int] | None = None) -> Layout:
    """The layout of a companion of ``base`` (a reused commitment without mask rows): the same code,
    the mask rows, and the per-opening data tensors ``tensors`` (name -> log2 of the padded size)."""
    tensors = dict(tensors or {})
    return Layout(tuple(tensors), tuple(tensors.values()), base.log_cols, base.n_queries, base.blowup,
                  base.proximity_tests, base.hiding_symbols, base.stretch, True)


def check_companion_layout(companion: Layout, base: Layout, tensors: Mapping[str, int] | None = None,
                           what: str = "the companion commitment") -> None:
    """ValueError unless ``companion`` is :func:`companion_layout` of ``base`` with exactly ``tensors``."""
    want = companion_layout(base, tensors)
    if companion != want:
        raise ValueError(f"{what} does not have the layout its base commitment and the protocol fix "
                         f"(tensors {list(companion.names)[:4]} vs {list(want.names)[:4]}, "
                         f"{companion.n_rows} vs {want.n_rows} rows, or another code)")


# --- randomness -------------------------------------------------------------------------------------

def _random_field(n: int, rng: np.random.Generator | None) -> np.ndarray:
    """Uniform base-field elements: from ``rng`` when given (tests), else from the OS CSPRNG
    stretched by BLAKE3's XOF, by rejection of 31-bit words ≥ p."""
    if rng is not None:
        return F.random(rng, n)
    xof = blake3.blake3(key=os.urandom(32))
    out = np.empty(0, dtype=np.uint32)
    seek = 0
    while out.size < n:
        want = (n - out.size) * 17 // 16 + 16
        raw = np.frombuffer(xof.digest(length=4 * want, seek=seek), dtype="<u4") & np.uint32(0x7FFFFFFF)
        seek += 4 * want
        out = np.concatenate([out, raw[raw < F.P]])
    return out[:n].astype(np.uint32)


# --- kernels -----------------------------------------------------------------------------------------

def _quadratic_at(s0: np.ndarray, s1: np.ndarray, s2: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Value at r of the degree-2 polynomial with values s0, s1, s2 at 0, 1, 2 (Lagrange)."""
    one, two = F.ext(1), F.ext(2)
    rm1, rm2 = F.esub(r, one), F.esub(r, two)
    inv2 = F.ext((F.P + 1) // 2)
    l0 = F.emul(F.emul(rm1, rm2), inv2)
    l1 = F.eneg(F.emul(r, rm2))
    l2 = F.emul(F.emul(r, rm1), inv2)
    return F.eadd(F.eadd(F.emul(s0, l0), F.emul(s1, l1)), F.emul(s2, l2))


def _x_powers() -> np.ndarray:
    """1, X, X^2, X^3 as extension elements (4, 4)."""
    return np.eye(4, dtype=np.uint32)


def _encode_ext_rows(msg: np.ndarray, hid: np.ndarray, n: int) -> np.ndarray:
    """Codewords of extension rows: message (k, C, 4) and hiding (k, t, 4) -> (k, n, 4)."""
    k = msg.shape[0]
    coeffs = np.concatenate([np.swapaxes(msg, 1, 2), np.swapaxes(hid, 1, 2)], axis=2)  # (k, 4, C + t)
    code = _rs.encode_rows(coeffs.reshape(k * 4, -1), n)
    return np.swapaxes(code.reshape(k, 4, n), 1, 2)


# --- commitment --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Commitment:
    """What a verifier needs: the Merkle root and the layout."""

    root: bytes
    layout: Layout

    def to_bytes(self) -> bytes:
        """Versioned, self-describing encoding."""
        w = Writer()
        w.header(COMMITMENT_MAGIC, FORMAT_VERSION)
        w.bytes_(self.root)
        lay = self.layout
        w.u8(lay.log_cols)
        w.u32(lay.n_queries)
        w.u8(lay.blowup)
        w.u8(lay.proximity_tests)
        w.u32(lay.hiding_symbols)
        w.u8(lay.stretch)
        w.u8(int(lay.masks))
        w.u32(len(lay.names))
        for name, s in zip(lay.names, lay.log_sizes):
            w.bytes_(name.encode("utf-8"))
            w.u8(s)
        return w.getvalue()

    @staticmethod
    def from_bytes(data: bytes) -> "Commitment":
        """Parse :meth:`to_bytes` output; raises :class:`ProofFormatError` on anything malformed."""
        r = Reader(data, max_total=64 + MAX_TENSORS * 300)
        r.header(COMMITMENT_MAGIC, (FORMAT_VERSION,))
        root = r.bytes_(32, exact=32)
        log_cols = r.u8(MAX_LOG_COLS)
        n_queries = r.u32(MAX_QUERIES)
        blowup = r.u8(16)
        tests = r.u8(4)
        hiding = r.u32(MAX_HIDING)
        stretch = r.u8(16)
        masks = r.u8(1)
        n = r.u32(MAX_TENSORS)
        names, sizes = [], []
        for _ in range(n):
            try:
                names.append(r.bytes_(256).decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise ProofFormatError(f"tensor name is not UTF-8: {exc}") from None
            sizes.append(r.u8(MAX_LOG_TENSOR))
        r.finish()
        try:
            if hiding == 0:
                raise ValueError("zero hiding symbols")
            lay = Layout(tuple(names), tuple(sizes), log_cols, n_queries, blowup, tests, hiding, stretch, bool(masks))
        except ValueError as exc:
            raise ProofFormatError(f"invalid layout: {exc}") from None
        return Commitment(root, lay)

    def digest(self) -> bytes:
        """BLAKE3 of the encoding: what transcripts absorb."""
        return blake3.blake3(self.to_bytes()).digest()


@dataclass
class ProverState:
    """The prover's side of a commitment: messages, hiding coefficients, Merkle tree, and the
    codewords (or None when they were not kept; the opened columns are then encoded again)."""

    commitment: Commitment
    messages: np.ndarray  # (n_rows, C) base
    hiding: np.ndarray  # (n_rows, t) base
    codewords: np.ndarray | None  # (n_rows, N) base
    tree: merkle.MerkleTree
    # where a reused commitment's openings are counted (duck-typed: ``charge(commitment, positions)``
    # raises once the distinct opened positions would exceed the hiding symbols); None: not counted
    ledger: object | None = None

    def columns(self, positions: np.ndarray) -> np.ndarray:
        """The codeword columns at ``positions``, as rows (q, n_rows)."""
        if self.codewords is not None:
            return np.ascontiguousarray(self.codewords[:, positions].T)
        n = self.commitment.layout.codeword_len
        rows = self.messages.shape[0]
        out = np.empty((positions.size, rows), dtype=np.uint32)
        step = max(1, (1 << 22) // n)  # blocks of about 16 MiB of codewords
        for r0 in range(0, rows, step):
            r1 = min(rows, r0 + step)
            code = _rs.encode_rows(np.concatenate([self.messages[r0:r1], self.hiding[r0:r1]], axis=1), n)  # C + t_h
            out[:, r0:r1] = code[:, positions].T
        return out


def _as_tensor(name: str, arr: np.ndarray) -> np.ndarray:
    """The tensor flattened; TypeError unless uint32, ValueError if empty (the range is checked
    once over all packed tensors, see :func:`commit`)."""
    a = np.asarray(arr)
    if a.dtype != np.uint32:
        raise TypeError(f"tensor {name!r}: expected uint32 field elements, got {a.dtype} "
                        "(convert signed integers with field.from_signed)")
    if a.size == 0:
        raise ValueError(f"tensor {name!r} is empty")
    return a.reshape(-1)


def commit(tensors: Mapping[str, np.ndarray], params: PcsParams = PcsParams(),
           rng: np.random.Generator | None = None, keep_codewords: bool = True, *, openings: int = 1,
           ) -> tuple[Commitment, ProverState]:
    """Commit to named tensors (flattened, zero-padded to a power of two) in one Merkle tree.

    ``rng`` is for reproducible tests only; by default hiding randomness comes from the OS CSPRNG.
    ``keep_codewords=False`` frees the encoded matrix (``blowup`` × the messages) once the tree is
    built; opening then encodes the rows again to read the queried columns (memory for time).
    ``openings > 1`` makes a reused commitment: ``openings · t`` hiding symbols and no mask rows; each
    of its openings is stacked with a fresh :func:`commit_companion` (and counted by a ledger).
    """
    flat = _check_tensors(tensors)
    names = list(flat)
    log_sizes = [max(0, (flat[n].size - 1).bit_length()) for n in names]
    if max(log_sizes) > MAX_LOG_TENSOR:
        raise ValueError(f"commit: a tensor exceeds 2^{MAX_LOG_TENSOR} elements")
    lay = make_layout(names, log_sizes, params, openings=openings, masks=openings == 1)
    return _commit_layout(lay, flat, rng, keep_codewords)


def commit_companion(base: Layout, tensors: Mapping[str, np.ndarray] | None = None,
                     rng: np.random.Generator | None = None) -> tuple[Commitment, ProverState]:
    """A fresh companion of the reused commitment with layout ``base``: the same columns and code,
    the opening's mask rows, and the per-opening data ``tensors`` (name -> base-field table; their
    names must differ from ``base``'s). Its randomness comes from the OS CSPRNG unless ``rng`` is
    given (tests; a key-derived stream for a proof that must be reproducible)."""
    if base.masks:
        raise ValueError("commit_companion: the base commitment holds its own mask rows")
    flat = _check_tensors(tensors, allow_empty=True) if tensors else {}
    clash = sorted(set(flat) & set(base.names))
    if clash:
        raise ValueError(f"commit_companion: {clash[0]!r} is a tensor of the base commitment too")
    lay = companion_layout(base, {n: max(0, (v.size - 1).bit_length()) for n, v in flat.items()})
    return _commit_layout(lay, flat, rng, True)


def _check_tensors(tensors, allow_empty: bool = False) -> dict[str, np.ndarray]:
    if not isinstance(tensors, Mapping) or (not tensors and not allow_empty):
        raise TypeError("commit: tensors must be a non-empty mapping of name -> uint32 array")
    if not all(isinstance(k, str) and k for k in tensors):
        raise TypeError("commit: tensor names must be non-empty strings")
    return {n: _as_tensor(n, tensors[n]) for n in tensors}


def _commit_layout(lay: Layout, flat: dict[str, np.ndarray], rng, keep_codewords: bool
                   ) -> tuple[Commitment, ProverState]:
    c, th, n = lay.n_cols, lay.hiding_symbols, lay.codeword_len
    names = list(lay.names)
    # the message matrix is written in place: data rows (zero padding), then the random mask rows
    messages = np.zeros((lay.n_rows, c), dtype=np.uint32)
    packed = messages.reshape(-1)
    for name, off in zip(names, lay.offsets):
        packed[off:off + flat[name].size] = flat[name]
    data = packed[:lay.n_data_rows * c]
    if data.size and int(np.maximum.reduce(data)) >= F.P:  # one range check; then name the culprit
        for name in names:
            F._check(flat[name], f"tensor {name!r}")
    del flat
    n_mask = lay.n_rows - lay.n_data_rows
    rand = _random_field(n_mask * c + lay.n_rows * th, rng)
    messages[lay.n_data_rows:] = rand[:n_mask * c].reshape(n_mask, c)
    hiding = rand[n_mask * c:].reshape(lay.n_rows, th)
    codewords = _rs.encode_rows(np.concatenate([messages, hiding], axis=1), n)
    tree = merkle.MerkleTree(codewords)
    com = Commitment(tree.root, lay)
    return com, ProverState(com, messages, hiding, codewords if keep_codewords else None, tree)


# --- claims ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    """``tensor(point) = value`` for the MLE of a committed tensor (zero-padded to 2^n entries);
    point (n, 4) in the extension (or (n,) in the base field), value (4,)."""

    tensor: str
    point: np.ndarray
    value: np.ndarray


@dataclass(frozen=True)
class LinearClaim:
    """``Σ_i coef_i · tensor_i(point_i) = value``: a public linear combination of MLE evaluations of
    committed tensors, which may live in different commitments of one stacked opening (a reused
    commitment and its companion). ``terms``: ``(tensor, point, coefficient)`` with points as in
    :class:`Claim` and nonzero coefficients (4,) in the extension (or base-field ints). Settled by
    the same batched opening as plain claims (a :class:`Claim` is the one-term case, coefficient 1)."""

    terms: tuple
    value: np.ndarray


def _claim_parts(claim) -> tuple[str, np.ndarray, np.ndarray]:
    """A one-term claim as (tensor, point, value). Accepts :class:`Claim` or any object with
    ``column``/``point``/``value`` (sumcheck's EvalClaim)."""
    name = getattr(claim, "tensor", None)
    if name is None:
        name = getattr(claim, "column", None)
    if not isinstance(name, str):
        raise TypeError(f"claim must name a tensor, got {type(claim).__name__}")
    return name, _point(claim.point), _value(claim.value, "claim value")


def _point(p) -> np.ndarray:
    pt = np.asarray(p)
    pt = F.embed(pt) if pt.ndim == 1 else F._check_ext(pt, "claim point")
    return np.ascontiguousarray(pt, dtype=np.uint32)


def _value(v, what: str) -> np.ndarray:
    if isinstance(v, (int, np.integer)):
        v = np.uint32(int(v) % F.P)
    val = np.asarray(v)
    val = F.embed(val.reshape(())) if val.ndim == 0 else F._check_ext(val, what).reshape(4)
    return np.asarray(val, dtype=np.uint32)


_ONE = F.embed(np.uint32(1))


def _linear_parts(claim) -> tuple[list[tuple[str, np.ndarray, np.ndarray]], np.ndarray, bool]:
    """(terms (tensor, point, coefficient), value, plain) of a claim; ``plain``: one term with
    coefficient 1 (absorbed as a plain claim)."""
    if isinstance(claim, LinearClaim) or hasattr(claim, "terms"):  # ops.base's LinearClaim too
        if not isinstance(claim.terms, (tuple, list)) or not 1 <= len(claim.terms) <= MAX_TERMS:
            raise ValueError(f"a linear claim has 1..{MAX_TERMS} terms")
        terms = []
        for term in claim.terms:
            if not isinstance(term, (tuple, list)) or len(term) != 3 or not isinstance(term[0], str):
                raise TypeError("a linear claim's terms are (tensor, point, coefficient)")
            pt, coef = term[1], term[2]
            # already uint32 extension arrays (ops' claims): shape-checked here, range-checked in bulk
            # by the caller (:func:`_checked_parts`); anything else goes through the full conversion
            if not (type(coef) is np.ndarray and coef.dtype == np.uint32 and coef.shape == (4,)):
                coef = _value(coef, "claim coefficient")
            if not (type(pt) is np.ndarray and pt.dtype == np.uint32 and pt.ndim == 2 and pt.shape[1:] == (4,)
                    and pt.flags.c_contiguous):
                pt = _point(pt)
            if not coef.any():
                raise ValueError(f"linear claim term on {term[0]!r} has coefficient 0")
            terms.append((term[0], pt, coef))
        val = _value(claim.value, "claim value")
        plain = len(terms) == 1 and np.array_equal(terms[0][2], _ONE)
        return terms, val, plain
    name, pt, val = _claim_parts(claim)
    return [(name, pt, _ONE)], val, True


@dataclass(frozen=True)
class _Geometry:
    """Where a batch of claim terms lives in the (stacked) matrix, one entry per term (int64 arrays).
    Term j reads rows ``[row0, row0 + 2^row_vars)`` with the eq table of its first ``row_vars``
    coordinates, and columns ``[col_start, col_start + 2^col_vars)`` with the eq table of the others (a
    small tensor fills an aligned segment of one row); ``pts`` holds every point, concatenated, from
    ``pt_off``; ``tensor`` is a tensor index unique over the stack."""

    tensor: np.ndarray
    row0: np.ndarray
    row_vars: np.ndarray
    col_vars: np.ndarray
    col_start: np.ndarray
    pt_off: np.ndarray
    pts: np.ndarray  # (Σ_j n_j, 4)


class _Stack:
    """Commitments opened together at the same positions: their matrices stacked row-wise, the last
    one holding the mask rows. Duck-types the parts of :class:`Layout` the opening reads."""

    def __init__(self, layouts: Sequence[Layout]) -> None:
        if not 1 <= len(layouts) <= MAX_STACK:
            raise ValueError(f"an opening stacks 1..{MAX_STACK} commitments, got {len(layouts)}")
        first = layouts[0]
        if any(not first.same_code(lay) for lay in layouts[1:]):
            raise ValueError("stacked commitments must share columns, code, queries and hiding symbols")
        if not layouts[-1].masks or any(lay.masks for lay in layouts[:-1]):
            raise ValueError("exactly one stacked commitment, the last, holds the mask rows")
        self.layouts = tuple(layouts)
        self.row_base = np.cumsum([0] + [lay.n_rows for lay in layouts]).tolist()
        self.n_rows = int(self.row_base[-1])
        if self.n_rows > MAX_ROWS:
            raise ValueError(f"the stacked matrix has {self.n_rows} rows, over {MAX_ROWS}")
        self._where: dict[str, tuple[int, int, int]] = {}
        gi = 0
        for k, lay in enumerate(layouts):
            for i, name in enumerate(lay.names):
                if name in self._where:
                    raise ValueError(f"tensor {name!r} is in two stacked commitments")
                self._where[name] = (gi, lay.log_sizes[i], self.row_base[k] * first.n_cols + lay.offsets[i])
                gi += 1
        hb = self.row_base[-2] if len(layouts) > 1 else 0
        self._hb, self._holder = int(hb), layouts[-1]
        self.log_cols, self.n_cols = first.log_cols, first.n_cols
        self.n_queries, self.hiding_symbols = first.n_queries, first.hiding_symbols
        self.codeword_len, self.proximity_tests = first.codeword_len, first.proximity_tests

    @property
    def eval_mask_row(self) -> int:
        return self._hb + self._holder.eval_mask_row

    @property
    def g_rows(self) -> tuple[int, int]:
        g1, g2 = self._holder.g_rows
        return self._hb + g1, self._hb + g2

    def prox_mask_row(self, test: int) -> int:
        return self._hb + self._holder.prox_mask_row(test)

    def locate(self, name: str) -> tuple[int, int, int]:
        """(tensor index over the stack, log size, flat offset in the stacked matrix)."""
        if name not in self._where:
            raise ValueError(f"no committed tensor named {name!r}")
        return self._where[name]

    def soundness(self, n_claims: int = 1) -> soundness.SoundnessReport:
        return self.layouts[0].soundness(n_claims)


def _geometry(stack: "_Stack | Layout", parts: Sequence[tuple]) -> _Geometry:
    """The geometry of claim terms given as (tensor, point, ...); ValueError on an unknown tensor or
    a point of the wrong length."""
    if isinstance(stack, Layout):
        stack = _Stack([stack])
    loc = [stack.locate(p[0]) for p in parts]
    idx = np.array([x[0] for x in loc], dtype=np.int64)
    n = np.array([x[1] for x in loc], dtype=np.int64)
    for (name, pt, *_), nj in zip(parts, n.tolist()):
        if pt.shape != (nj, 4):
            raise ValueError(f"claim on {name!r}: point must have shape ({nj}, 4), got {pt.shape}")
    off = np.array([x[2] for x in loc], dtype=np.int64)
    c = stack.log_cols
    pt_off = np.zeros(len(parts), dtype=np.int64)
    np.cumsum(n[:-1], out=pt_off[1:])
    pts = np.concatenate([p[1] for p in parts]) if int(n.sum()) else F.ezero(0)
    return _Geometry(idx, off >> c, np.maximum(n - c, 0), np.minimum(n, c), off & (stack.n_cols - 1), pt_off,
                     np.ascontiguousarray(pts, dtype=np.uint32))


def _flatten(parts) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
    """(terms, claim of each term, coefficient of each term (T, 4), values (J, 4)); every coordinate of
    every point and coefficient range-checked here at once (:func:`_linear_parts` leaves uint32 arrays
    to this check)."""
    terms = [t for ts, _, _ in parts for t in ts]
    owner = np.repeat(np.arange(len(parts)), [len(ts) for ts, _, _ in parts])
    coefs = F._check_ext(np.stack([t[2] for t in terms]), "claim coefficient")
    vals = np.stack([v for _, v, _ in parts])
    pts = [t[1] for t in terms if t[1].size]
    if pts:
        F._check_ext(np.concatenate(pts), "claim point")
    return terms, owner, coefs, vals


# --- opening -----------------------------------------------------------------------------------------

@dataclass
class Opening:
    """One batched opening of one or more stacked commitments; see the module docstring for what each
    part is. ``siblings`` holds one Merkle multiproof per commitment; ``companion`` the encoding of a
    companion commitment the opening brought itself (empty when the caller passed one)."""

    mask_sum: np.ndarray  # (4,)
    rounds: np.ndarray  # (log C, 2, 4): s(0), s(2)
    mask_value: np.ndarray  # (4,): Σ_k x^k·H_k(ζ), the only combination of the mask rows revealed
    u_eval: np.ndarray  # (C, 4)
    s_eval: np.ndarray  # (t_h, 4)
    u_prox: np.ndarray  # (P, C, 4)
    s_prox: np.ndarray  # (P, t_h, 4)
    positions: np.ndarray  # (q,) sorted unique
    columns: np.ndarray  # (q, n_rows of the stack) base
    siblings: list  # per commitment: (m, 8) uint32 digests
    provable_tenths: int = 0
    conjectured_tenths: int = 0
    companion: bytes = b""

    def to_bytes(self) -> bytes:
        """Versioned encoding (parameters and soundness figures first)."""
        w = Writer()
        w.header(OPENING_MAGIC, OPENING_VERSION)
        w.bytes_(self.companion)
        w.u32(self.u_eval.shape[0])
        w.u32(self.s_eval.shape[0])
        w.u32(self.columns.shape[1])
        w.u8(self.u_prox.shape[0])
        w.u8(len(self.siblings))
        w.u32(self.provable_tenths)
        w.u32(self.conjectured_tenths)
        w.ext_fixed(self.mask_sum.reshape(1, 4))
        w.ext_array(self.rounds.reshape(-1, 4))
        w.ext_fixed(self.mask_value.reshape(1, 4))
        w.ext_fixed(self.u_eval)
        w.ext_fixed(self.s_eval)
        w.ext_fixed(self.u_prox.reshape(-1, 4))
        w.ext_fixed(self.s_prox.reshape(-1, 4))
        w.u32(self.positions.size)
        for p in self.positions:
            w.u32(int(p))
        w.field_fixed(self.columns)
        for sib in self.siblings:
            w.bytes_(np.ascontiguousarray(sib, dtype="<u4").tobytes())
        return w.getvalue()

    @staticmethod
    def from_bytes(data: bytes, commitment: "Commitment | Sequence[Commitment]") -> "Opening":
        """Parse bytes for ``commitment``'s layout (or the stacked commitments'); every count is
        checked against it."""
        coms = [commitment] if isinstance(commitment, Commitment) else list(commitment)
        if not coms or not all(isinstance(c, Commitment) for c in coms):
            raise ProofFormatError("an opening is parsed against one or more commitments")
        lay = coms[0].layout
        c, t, th, tests = lay.n_cols, lay.n_queries, lay.hiding_symbols, lay.proximity_tests
        depth = lay.codeword_len.bit_length() - 1
        r = Reader(data, max_total=None)
        r.header(OPENING_MAGIC, (OPENING_VERSION,))
        comp = r.bytes_(64 + MAX_TENSORS * 300)
        coms = coms + ([_parse_companion(comp, lay)] if comp else [])
        try:
            stack = _Stack([x.layout for x in coms])
        except ValueError as exc:
            raise ProofFormatError(f"commitments cannot be opened together: {exc}") from None
        rows = stack.n_rows
        limit = (512 + len(comp) + 16 * (2 * lay.log_cols + 5 + (1 + tests) * (c + th))
                 + t * (4 + 4 * rows + 32 * depth * len(coms)))
        if len(data) > limit:
            raise ProofFormatError(f"opening of {len(data)} bytes exceeds the bound {limit} for its commitment")
        shape = (r.u32(), r.u32(), r.u32(), r.u8(), r.u8())
        if shape != (c, th, rows, tests, len(coms)):
            raise ProofFormatError(f"opening shape {shape} does not match the commitments {(c, th, rows, tests, len(coms))}")
        prov, conj = r.u32(), r.u32()
        mask_sum = r.ext_fixed(1)[0]
        rounds = r.ext_array(2 * lay.log_cols, exact=2 * lay.log_cols).reshape(lay.log_cols, 2, 4)
        mask_value = r.ext_fixed(1)[0]
        u_eval = r.ext_fixed(c)
        s_eval = r.ext_fixed(th)
        u_prox = r.ext_fixed(tests * c).reshape(tests, c, 4)
        s_prox = r.ext_fixed(tests * th).reshape(tests, th, 4)
        q = r.u32(t)
        if q == 0:
            raise ProofFormatError("opening has no column positions")
        positions = np.array([r.u32(lay.codeword_len - 1) for _ in range(q)], dtype=np.int64)
        columns = r.field_fixed(q * rows).reshape(q, rows)
        siblings = []
        for _ in coms:
            sib = r.bytes_(32 * q * depth)
            if len(sib) % 32:
                raise ProofFormatError("Merkle siblings are not a whole number of digests")
            siblings.append(np.frombuffer(sib, dtype="<u4").astype(np.uint32).reshape(-1, 8))
        r.finish()
        return Opening(mask_sum, rounds, mask_value, u_eval, s_eval, u_prox, s_prox, positions,
                       columns, siblings, prov, conj, bytes(comp))


def _parse_companion(data: bytes, base: Layout) -> Commitment:
    """A companion commitment an opening carries: masks only, the base's code."""
    comp = Commitment.from_bytes(bytes(data))
    try:
        check_companion_layout(comp.layout, base)
    except ValueError as exc:
        raise ProofFormatError(str(exc)) from None
    return comp


def _absorb_claims(tr: Transcript, coms: "Commitment | Sequence[Commitment]", parts) -> None:
    """The opened commitments (in stack order), then the claims as one message: per claim its term
    count, per term the tensor (length-prefixed UTF-8), the point (length-prefixed, ext little-endian)
    and the coefficient, then the value (an injective encoding: one absorb instead of three per term)."""
    for com in [coms] if isinstance(coms, Commitment) else coms:
        tr.absorb_digest("pcs/commitment", com.digest())
    tr.absorb_bytes("pcs/n_claims", struct.pack("<I", len(parts)))
    chunks = []
    for part in parts:
        if len(part) == 3 and isinstance(part[0], str):  # (tensor, point, value)
            part = ([(part[0], part[1], _ONE)], part[2], True)
        terms, val, _ = part
        chunks.append(struct.pack("<I", len(terms)))
        for name, pt, coef in terms:
            nb = name.encode("utf-8")
            pb = np.ascontiguousarray(pt, dtype="<u4").tobytes()
            chunks += [struct.pack("<I", len(nb)), nb, struct.pack("<I", len(pb) // 16), pb,
                       np.ascontiguousarray(coef, dtype="<u4").tobytes()]
        chunks.append(np.ascontiguousarray(val, dtype="<u4").tobytes())
    tr.absorb_bytes("pcs/claims", b"".join(chunks))


def _gammas(tr: Transcript, lay: Layout) -> np.ndarray:
    """Proximity weights (P, n_rows, 4); test p's own mask rows get γ_p·X^k so its mask is uniform."""
    g = tr.challenge_exts("pcs/gamma", lay.proximity_tests * lay.n_rows).reshape(
        lay.proximity_tests, lay.n_rows, 4).copy()
    scale = tr.challenge_exts("pcs/gamma_mask", lay.proximity_tests)
    for p in range(lay.proximity_tests):
        r0 = lay.prox_mask_row(p)
        g[p, r0:r0 + EVAL_MASKS] = F.emul(scale[p][None, :], _x_powers())
    return g


def _tau(tr: Transcript, lay: Layout) -> tuple[np.ndarray, np.ndarray]:
    t = tr.challenge_exts("pcs/tau", 2 * lay.log_cols)
    return t[: lay.log_cols], t[lay.log_cols:]


def _soundness_tenths(lay: Layout, n_claims: int) -> tuple[int, int]:
    rep = lay.soundness(n_claims)
    return int(rep.provable_bits * 10), int(rep.conjectured_bits * 10)


def open_claims(state: "ProverState | Sequence[ProverState]", claims: Sequence, transcript: Transcript, *,
                rng: np.random.Generator | None = None) -> Opening:
    """Prove every claim (:class:`Claim`, ``EvalClaim`` or :class:`LinearClaim`) about the tensors of
    ``state`` with one opening. ``state`` may be a list of states opened together at the same
    positions (a reused commitment and its companion, :func:`commit_companion`, last). A reused
    commitment passed without a companion gets a fresh one here (from ``rng``, else the OS CSPRNG),
    carried in the opening. The transcript should already hold whatever the claims were derived
    from; the commitments are absorbed again here. A state with a ``ledger`` is charged the opened
    positions before any column leaves (the ledger refuses past its budget)."""
    states = [state] if isinstance(state, ProverState) else list(state)
    if not states or not all(isinstance(x, ProverState) for x in states):
        raise TypeError("open_claims: state must be a ProverState or a list of them")
    implicit = b""
    if not states[-1].commitment.layout.masks:
        comp_com, comp_state = commit_companion(states[0].commitment.layout, rng=rng)
        states.append(comp_state)
        implicit = comp_com.to_bytes()
    lay = _Stack([x.commitment.layout for x in states])
    coms = [x.commitment for x in states]
    if not claims or len(claims) > MAX_CLAIMS:
        raise ValueError(f"open_claims: need 1..{MAX_CLAIMS} claims, got {len(claims)}")
    parts = [_linear_parts(cl) for cl in claims]
    terms, owner, coefs, _ = _flatten(parts)
    geo = _geometry(lay, terms)
    t, n = lay.n_queries, lay.codeword_len
    M = states[0].messages if len(states) == 1 else np.concatenate([x.messages for x in states])
    _absorb_claims(transcript, coms, parts)
    gam = _gammas(transcript, lay)
    alpha = transcript.challenge_exts("pcs/alpha", len(parts))
    alpha_t = F.emul(alpha[owner], coefs)  # each term weighted by its claim's α and its coefficient
    tau1, tau2 = _tau(transcript, lay)
    g1, g2 = lay.g_rows
    mask_sum = F.eadd(mle.evaluate(M[g1], tau1), mle.evaluate(M[g2], tau2))
    transcript.absorb_ext("pcs/mask_sum", mask_sum)
    rho = transcript.challenge_ext("pcs/rho")

    rounds, zeta, at_zeta, rows, Bx = _column_sumcheck(lay, M, geo, alpha_t, rho, tau1, tau2, transcript)

    # the one evaluation row u = wᵀM (w: the row weights the verifier computes) = Σ_t A_t(ζ)·B_t + masks
    eqz = mle.eq_table(zeta)
    h0 = lay.eval_mask_row
    # H_k(ζ) combined as Σ_k x^k·H_k(ζ): sent apart, the four would give away all four base coordinates
    # of the data rows' evaluation (the mask rows cancel out of one relation among them)
    mask_value = F.esum(F.emul(_x_powers(), np.stack([F.edot(eqz, M[h0 + k]) for k in range(EVAL_MASKS)])))
    transcript.absorb_ext("pcs/mask_value", mask_value)
    kappa = transcript.challenge_ext("pcs/kappa")
    row_coefs = np.concatenate([at_zeta[:rows.size], F.emul(kappa[None, :], _x_powers())])
    row_idx = np.concatenate([rows, np.arange(h0, h0 + EVAL_MASKS)])
    u_eval = K.combine_terms(row_coefs, row_idx, M, np.ascontiguousarray(at_zeta[rows.size:]), Bx)
    del Bx
    w = _eval_row_weights(lay, geo, alpha_t, rho, tau1, tau2, kappa, zeta)
    u_prox = K.weighted_rows(gam, M)
    S = states[0].hiding if len(states) == 1 else np.concatenate([x.hiding for x in states])
    hid = K.weighted_rows(np.concatenate([w[None], gam]), S)
    s_eval, s_prox = hid[0], hid[1:]
    _absorb_rows(transcript, u_eval, s_eval, u_prox, s_prox)
    positions = np.unique(transcript.challenge_indices("pcs/queries", t, n))
    for x in states:  # a reused commitment's budget is charged before any of its columns leaves
        if x.ledger is not None:
            x.ledger.charge(x.commitment, positions)
    columns = np.concatenate([x.columns(positions) for x in states], axis=1)
    siblings = [x.tree.open(positions) for x in states]
    prov, conj = _soundness_tenths(lay, len(parts))
    return Opening(mask_sum, rounds, mask_value, u_eval, s_eval, u_prox, s_prox, positions, columns,
                   siblings, prov, conj, implicit)


def _column_sumcheck(lay: Layout, M: np.ndarray, geo: _Geometry, alpha, rho, tau1, tau2,
                     transcript: Transcript) -> tuple[np.ndarray, ...]:
    """The prover's sumcheck over the column variables; returns the rounds (log C, 2, 4), ζ, every
    term's ``A_t(ζ)``, the rows of the row terms and the ``B_t`` of the claim terms.

    The sum is written as terms ``Σ_t A_t(x)·B_t(x)``. A row term has ``B_t`` = one committed row
    (base field) and ``A_t`` = the summed column weights of every claim on that row (a claim on a
    tensor of ``2^k`` rows adds ``α_j·rw_j[i]·cw_j`` to the term of its ``i``-th row; the masks
    ``ρ·eq(τ)``, ``ρ·eq(τ')`` are the terms of rows G1, G2). A claim term has ``A_t = α_j·cw_j`` and
    ``B_t = rw_jᵀM`` (extension). A tensor's claims become claim terms when the tensor has more rows
    than claims, else row terms; either way the polynomial, hence every round message, is the same
    (it is linear in the claims)."""
    c = lay.n_cols
    g1, g2 = lay.g_rows
    # the masks as two more claims: rows G1, G2, all columns, weight ρ
    geo = _Geometry(np.concatenate([geo.tensor, [-1, -2]]), np.concatenate([geo.row0, [g1, g2]]),
                    np.concatenate([geo.row_vars, [0, 0]]), np.concatenate([geo.col_vars, [lay.log_cols] * 2]),
                    np.concatenate([geo.col_start, [0, 0]]),
                    np.concatenate([geo.pt_off, [geo.pts.shape[0], geo.pts.shape[0] + lay.log_cols]]),
                    np.concatenate([geo.pts, tau1, tau2]))
    alpha = np.concatenate([alpha, rho[None], rho[None]])
    n_claims = geo.row0.size
    counts = np.bincount(geo.tensor[:-2])[geo.tensor[:-2]]
    own = np.flatnonzero(np.concatenate([(np.int64(1) << geo.row_vars[:-2]) > counts, [False, False]]))
    spread = np.setdiff1d(np.arange(n_claims), own)
    per = np.int64(1) << geo.row_vars[spread]
    e_claim = np.repeat(spread, per)
    e_row = np.arange(e_claim.size, dtype=np.int64) - np.repeat(np.cumsum(per) - per, per)
    rows, e_term = np.unique(geo.row0[e_claim] + e_row, return_inverse=True)
    e_claim = np.concatenate([e_claim, own])
    e_row = np.concatenate([e_row, np.full(own.size, -1, dtype=np.int64)])
    e_term = np.concatenate([e_term.reshape(-1), rows.size + np.arange(own.size)])
    order = np.argsort(e_term, kind="stable")
    n_terms = rows.size + own.size
    t_ptr = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(np.bincount(e_term, minlength=n_terms), out=t_ptr[1:])
    Bx = np.empty((own.size, c, 4), dtype=np.uint32)
    for k, j in enumerate(own):
        o, rv, r0 = int(geo.pt_off[j]), int(geo.row_vars[j]), int(geo.row0[j])
        Bx[k] = F.edot(mle.eq_table(geo.pts[o:o + rv]), M[r0:r0 + (1 << rv)])

    A = np.empty((n_terms, c, 4), dtype=np.uint32)
    s02 = K.build_terms(A, M, rows, Bx, t_ptr, e_claim[order], e_row[order], geo.row_vars, geo.col_vars,
                        geo.col_start, geo.pt_off, geo.pts, np.ascontiguousarray(alpha))
    rounds = np.empty((lay.log_cols, 2, 4), dtype=np.uint32)
    zeta = np.empty((lay.log_cols, 4), dtype=np.uint32)
    length = c // 2
    for i in range(lay.log_cols):
        rounds[i] = s02
        transcript.absorb_ext("pcs/round", s02)
        r = transcript.challenge_ext("pcs/r")
        zeta[i] = r
        if i == 0:
            s02 = K.first_fold(A, M, rows, Bx, r)  # A[:, :C/2] now holds the A tables, A[:, C/2:] the B tables
        else:
            s02 = K.fold_and_round(A[:, :c // 2], A[:, c // 2:], length, r)
            length //= 2
    return rounds, zeta, np.ascontiguousarray(A[:, 0]), rows, Bx


def _absorb_rows(tr: Transcript, u_eval, s_eval, u_prox, s_prox) -> None:
    tr.absorb_ext("pcs/u_eval", u_eval)
    tr.absorb_ext("pcs/s_eval", s_eval)
    tr.absorb_ext("pcs/u_prox", u_prox)
    tr.absorb_ext("pcs/s_prox", s_prox)


def _eval_row_weights(lay: Layout, geo: _Geometry, alpha, rho, tau1, tau2, kappa, zeta) -> np.ndarray:
    """Row weights w (n_rows, 4) of the evaluation row (the verifier computes the same)."""
    w = K.claim_row_weights(lay.n_rows, geo.row0, geo.row_vars, geo.col_vars, geo.col_start, geo.pt_off,
                            geo.pts, np.ascontiguousarray(alpha), np.ascontiguousarray(zeta))
    g1, g2 = lay.g_rows
    w[g1] = F.eadd(w[g1], F.emul(rho, mle.eq_eval(tau1, zeta)))
    w[g2] = F.eadd(w[g2], F.emul(rho, mle.eq_eval(tau2, zeta)))
    h0 = lay.eval_mask_row
    w[h0:h0 + EVAL_MASKS] = F.emul(kappa[None, :], _x_powers())
    return w


# --- verification ------------------------------------------------------------------------------------

def verify(commitment: "Commitment | Sequence[Commitment]", claims: Sequence, opening: "Opening | bytes",
           transcript: Transcript) -> VerifyResult:
    """Accept iff ``opening`` proves every claim against ``commitment`` (or the list of commitments
    opened together, the one holding the mask rows last; a reused commitment alone takes the
    companion its opening carries). Never raises."""
    return guarded(lambda: _verify(commitment, claims, opening, transcript), "pcs.verify")


def _verify(commitment, claims: Sequence, opening, transcript: Transcript) -> VerifyResult:
    coms = [commitment] if isinstance(commitment, Commitment) else list(commitment)
    if not coms or not all(isinstance(c, Commitment) for c in coms):
        return VerifyResult.reject("verify needs one or more commitments")
    if isinstance(opening, (bytes, bytearray, memoryview)):
        try:
            opening = Opening.from_bytes(bytes(opening), coms)
        except ProofFormatError as exc:
            return VerifyResult.reject(f"malformed opening: {exc}")
    if not isinstance(opening, Opening):
        return VerifyResult.reject("opening must be an Opening or its bytes")
    if opening.companion:
        if coms[-1].layout.masks:
            return VerifyResult.reject("the opening brings a companion its commitments do not take")
        try:
            coms.append(_parse_companion(opening.companion, coms[0].layout))
        except ProofFormatError as exc:
            return VerifyResult.reject(f"malformed companion commitment: {exc}")
    try:
        lay = _Stack([c.layout for c in coms])
    except ValueError as exc:
        return VerifyResult.reject(f"commitments cannot be opened together: {exc}")
    if not claims or len(claims) > MAX_CLAIMS:
        return VerifyResult.reject(f"need 1..{MAX_CLAIMS} claims")
    try:
        parts = [_linear_parts(cl) for cl in claims]
        terms, owner, coefs, vals = _flatten(parts)
        geo = _geometry(lay, terms)
    except (TypeError, ValueError) as exc:
        return VerifyResult.reject(f"bad claim: {exc}")
    c, t, th, n = lay.n_cols, lay.n_queries, lay.hiding_symbols, lay.codeword_len
    o = opening
    shapes = {"rounds": (o.rounds.shape, (lay.log_cols, 2, 4)), "u_eval": (o.u_eval.shape, (c, 4)),
              "s_eval": (o.s_eval.shape, (th, 4)), "mask_value": (o.mask_value.shape, (4,)),
              "u_prox": (o.u_prox.shape, (lay.proximity_tests, c, 4)),
              "s_prox": (o.s_prox.shape, (lay.proximity_tests, th, 4)), "mask_sum": (o.mask_sum.shape, (4,))}
    for what, (got, want) in shapes.items():
        if got != want:
            return VerifyResult.reject(f"{what} has shape {got}, expected {want}")
    if len(o.siblings) != len(coms):
        return VerifyResult.reject(f"{len(o.siblings)} Merkle multiproofs for {len(coms)} commitments")
    if (o.provable_tenths, o.conjectured_tenths) != _soundness_tenths(lay, len(parts)):
        return VerifyResult.reject("stated soundness figures do not match the parameters")

    _absorb_claims(transcript, coms, parts)
    gam = _gammas(transcript, lay)
    alpha = transcript.challenge_exts("pcs/alpha", len(parts))
    alpha_t = F.emul(alpha[owner], coefs)
    tau1, tau2 = _tau(transcript, lay)
    transcript.absorb_ext("pcs/mask_sum", o.mask_sum)
    rho = transcript.challenge_ext("pcs/rho")
    claim = F.eadd(F.emul(rho, o.mask_sum), F.esum(F.emul(alpha, vals)))
    zeta = np.empty((lay.log_cols, 4), dtype=np.uint32)
    for i in range(lay.log_cols):
        s0, s2 = o.rounds[i]
        transcript.absorb_ext("pcs/round", o.rounds[i])
        r = transcript.challenge_ext("pcs/r")
        zeta[i] = r
        claim = _quadratic_at(s0, F.esub(claim, s0), s2, r)
    transcript.absorb_ext("pcs/mask_value", o.mask_value)
    kappa = transcript.challenge_ext("pcs/kappa")

    # evaluation: u·eq(ζ) must equal the sumcheck's final claim plus κ times the masks' value
    expect = F.eadd(claim, F.emul(kappa, o.mask_value))
    if not np.array_equal(F.edot_ext(mle.eq_table(zeta), o.u_eval), expect):
        return VerifyResult.reject("evaluation row does not match the claimed values")

    _absorb_rows(transcript, o.u_eval, o.s_eval, o.u_prox, o.s_prox)
    positions = np.unique(transcript.challenge_indices("pcs/queries", t, n))
    if o.positions.shape != positions.shape or not np.array_equal(o.positions, positions):
        return VerifyResult.reject("opened column positions are not the transcript's queries")
    if o.columns.shape != (positions.size, lay.n_rows):
        return VerifyResult.reject(f"columns have shape {o.columns.shape}, expected {(positions.size, lay.n_rows)}")
    for k, com in enumerate(coms):  # one multiproof per commitment, over its own rows of the columns
        block = np.ascontiguousarray(o.columns[:, lay.row_base[k]:lay.row_base[k + 1]], dtype=np.uint32)
        if not merkle.verify(com.root, n, positions, merkle.hash_columns(block), o.siblings[k]):
            which = "" if len(coms) == 1 else f" (commitment {k} of {len(coms)})"
            return VerifyResult.reject(f"Merkle multiproof does not match the commitment root{which}")

    w = _eval_row_weights(lay, geo, alpha_t, rho, tau1, tau2, kappa, zeta)
    cols_t = np.ascontiguousarray(o.columns.T)  # (n_rows, q)
    msgs = np.concatenate([o.u_eval[None], o.u_prox])
    hids = np.concatenate([o.s_eval[None], o.s_prox])
    code = _encode_ext_rows(msgs, hids, n)[:, positions]  # (1 + P, q, 4)
    if not np.array_equal(code[0], F.edot(w, cols_t)):
        return VerifyResult.reject("evaluation row is not consistent with the opened columns")
    for p in range(lay.proximity_tests):
        if not np.array_equal(code[1 + p], F.edot(gam[p], cols_t)):
            return VerifyResult.reject(f"proximity row {p} is not consistent with the opened columns")
    return VerifyResult.accept()
