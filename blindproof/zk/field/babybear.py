"""BabyBear field ``p = 15·2^27 + 1`` and its degree-4 extension ``F_p[x]/(x^4 - 11)``.

Base elements are numpy ``uint32`` arrays of canonical residues in ``[0, p)``; products are formed in
``uint64``. Extension elements are ``uint32`` arrays with a trailing axis of length 4 holding the
coefficients of ``1, x, x^2, x^3``. Every public function broadcasts like numpy, checks that its inputs
are canonical, and returns fresh arrays. Hot loops live in :mod:`blindproof.zk.field._kernels`.
"""

from __future__ import annotations

import os

from typing import Any, Callable

import numpy as np

from blindproof.zk.field import _kernels as K

P: int = K.P_INT
W: int = K.W_INT  # x^4 = W in the extension
EXT_DEGREE: int = 4
TWO_ADICITY: int = 27
GENERATOR: int = 31  # generates the multiplicative group F_p^*

ArrayLike = Any


class FieldError(ValueError):
    """An input is not a valid field element (wrong dtype, out of range, zero where a unit is needed)."""


_U32 = np.dtype(np.uint32)
_umax = np.maximum.reduce  # the ufunc itself: skips ndarray.max's Python-level wrapper
_SMALL = 32  # up to this many entries, max() over a Python list beats a numpy reduction


def _check(a: ArrayLike, name: str = "a") -> np.ndarray:
    """Return ``a`` as a uint32 array of canonical residues, or raise :class:`FieldError`."""
    arr = np.asarray(a)
    if arr.dtype == _U32:
        n = arr.size
        if n and (max(arr.ravel().tolist()) if n <= _SMALL else int(_umax(arr, axis=None))) >= P:
            raise FieldError(f"{name}: uint32 value {int(arr.max())} is not below p = {P}")
        return arr
    if arr.dtype.kind not in "iu":
        raise FieldError(f"{name}: expected an integer array, got dtype {arr.dtype}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= P):
        raise FieldError(f"{name}: values must lie in [0, p) (use from_signed for signed integers)")
    return arr.astype(np.uint32)


def _check_ext(a: ArrayLike, name: str = "a") -> np.ndarray:
    """As :func:`_check`, and require a trailing axis of length 4 (extension elements)."""
    arr = _check(a, name)
    if arr.ndim == 0 or arr.shape[-1] != EXT_DEGREE:
        raise FieldError(f"{name}: extension elements need a trailing axis of length 4, got shape {arr.shape}")
    return arr


def _ints4(a: ArrayLike) -> tuple[int, int, int, int] | None:
    """A single extension element's canonical coefficients as Python ints, or None if ``a`` is not a
    uint32 array of shape (4,) with all coefficients below p (callers then take the general path,
    which validates and raises). Tiny operations are cheaper on Python ints than through numpy."""
    if type(a) is np.ndarray and a.shape == (4,) and a.dtype == _U32:
        c = a.tolist()
        if c[0] < P and c[1] < P and c[2] < P and c[3] < P:
            return c
    return None


def _emul4(a, b) -> tuple[int, int, int, int]:
    """Product of two extension elements given as canonical Python ints (x^4 = W)."""
    a0, a1, a2, a3 = a
    b0, b1, b2, b3 = b
    return ((a0 * b0 + W * (a1 * b3 + a2 * b2 + a3 * b1)) % P,
            (a0 * b1 + a1 * b0 + W * (a2 * b3 + a3 * b2)) % P,
            (a0 * b2 + a1 * b1 + a2 * b0 + W * a3 * b3) % P,
            (a0 * b3 + a1 * b2 + a2 * b1 + a3 * b0) % P)


def _einv4(a) -> tuple[int, int, int, int]:
    """Inverse of an extension element given as canonical Python ints; raises :class:`FieldError` on
    zero. ``a(x) · a(-x) = b(x^2)`` lies in the quadratic subfield and ``b(y) · b(-y)`` in F_p, so one
    base-field inversion suffices."""
    a0, a1, a2, a3 = a
    b0 = (a0 * a0 + W * (a2 * a2 - 2 * a1 * a3)) % P  # a(x)·a(-x) = b0 + b1 x^2
    b1 = (2 * a0 * a2 - a1 * a1 - W * a3 * a3) % P
    norm = (b0 * b0 - W * b1 * b1) % P
    if norm == 0:
        raise FieldError("einv: extension element is zero")
    n_inv = pow(norm, P - 2, P)
    c = _emul4((a0, P - a1 if a1 else 0, a2, P - a3 if a3 else 0), (b0, 0, (P - b1) % P, 0))
    return (c[0] * n_inv % P, c[1] * n_inv % P, c[2] * n_inv % P, c[3] * n_inv % P)


def _arr4(c) -> np.ndarray:
    return np.array(c, dtype=np.uint32)


def _flat_pair(a: np.ndarray, b: np.ndarray, trailing: int = 0) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Broadcast two arrays and flatten them (keeping ``trailing`` axes) into contiguous buffers."""
    if a.shape == b.shape:  # common fast path: no broadcasting needed
        keep = a.shape[a.ndim - trailing:] if trailing else ()
        return (np.ascontiguousarray(a).reshape(-1, *keep), np.ascontiguousarray(b).reshape(-1, *keep),
                a.shape)
    if trailing:
        lead = np.broadcast_shapes(a.shape[:-trailing], b.shape[:-trailing])
        shape = lead + a.shape[-trailing:]
        a2 = np.ascontiguousarray(np.broadcast_to(a, shape)).reshape(-1, *a.shape[-trailing:])
        b2 = np.ascontiguousarray(np.broadcast_to(b, lead + b.shape[-trailing:])).reshape(-1, *b.shape[-trailing:])
        return a2, b2, shape
    shape = np.broadcast_shapes(a.shape, b.shape)
    a2 = np.ascontiguousarray(np.broadcast_to(a, shape)).reshape(-1)
    b2 = np.ascontiguousarray(np.broadcast_to(b, shape)).reshape(-1)
    return a2, b2, shape


as_field = _check  # public name: validate/convert to canonical base elements
as_ext = _check_ext  # public name: validate extension elements


# --- base field ------------------------------------------------------------------------------------

def _binary(kernel, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a2, b2, shape = _flat_pair(a, b)
    out = np.empty(a2.shape[0], dtype=np.uint32)
    kernel(a2, b2, out)
    return out.reshape(shape)


def add(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Elementwise a + b mod p."""
    return _binary(K.add_flat, _check(a, "a"), _check(b, "b"))


def sub(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Elementwise a - b mod p."""
    return _binary(K.sub_flat, _check(a, "a"), _check(b, "b"))


def neg(a: ArrayLike) -> np.ndarray:
    """Elementwise -a mod p."""
    a = _check(a)
    return np.where(a == 0, a, np.uint32(P) - a).astype(np.uint32)


def mul(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Elementwise a · b mod p."""
    return _binary(K.mul_flat, _check(a, "a"), _check(b, "b"))


def dot(a: ArrayLike, b: ArrayLike) -> np.uint32:
    """Inner product of two 1-D base vectors of equal length."""
    a, b = _check(a, "a"), _check(b, "b")
    if a.ndim != 1 or a.shape != b.shape:
        raise FieldError(f"dot: need two 1-D vectors of equal length, got {a.shape} and {b.shape}")
    return np.uint32(K.dot_flat(np.ascontiguousarray(a), np.ascontiguousarray(b)))


def pow_(a: ArrayLike, e: ArrayLike) -> np.ndarray:
    """Elementwise a^e mod p; negative exponents invert (zero base then raises)."""
    a = _check(a, "a")
    e = np.asarray(e)
    if e.dtype.kind not in "iu":
        raise FieldError(f"pow_: exponent must be an integer, got dtype {e.dtype}")
    e = e.astype(np.int64)
    if np.any(e < 0):
        if np.any((np.broadcast_to(a, np.broadcast_shapes(a.shape, e.shape)) == 0)
                  & np.broadcast_to(e < 0, np.broadcast_shapes(a.shape, e.shape))):
            raise FieldError("pow_: zero raised to a negative power")
        e = np.where(e < 0, e % (P - 1), e)  # Fermat: a^-k = a^(k·(p-2)) = a^(-k mod p-1)
    a2, e2, shape = _flat_pair(a, e.astype(np.uint64))
    out = np.empty(a2.shape[0], dtype=np.uint32)
    K.pow_flat(a2, e2, out)
    return out.reshape(shape)


def inv(a: ArrayLike) -> np.ndarray:
    """Elementwise inverse; raises :class:`FieldError` if any element is zero."""
    a = _check(a)
    if np.any(a == 0):
        raise FieldError("inv: zero has no inverse")
    flat = np.ascontiguousarray(a).reshape(-1)
    out = np.empty_like(flat)
    K.pow_flat(flat, np.full(flat.shape, P - 2, dtype=np.uint64), out)
    return out.reshape(a.shape)


def batch_inv(a: ArrayLike) -> np.ndarray:
    """Elementwise inverse by Montgomery's trick (one exponentiation); raises on a zero."""
    a = _check(a)
    flat = np.ascontiguousarray(a).reshape(-1)
    out = np.empty_like(flat)
    bad = K.batch_inv_flat(flat, out)
    if bad >= 0:
        raise FieldError(f"batch_inv: element at flat index {bad} is zero")
    return out.reshape(a.shape)


def from_signed(x: ArrayLike) -> np.ndarray:
    """Map signed integers to residues mod p (x mod p)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise FieldError(f"from_signed: expected integers, got dtype {arr.dtype}")
    return np.mod(arr.astype(np.int64), P).astype(np.uint32)


def to_signed(a: ArrayLike) -> np.ndarray:
    """Centred lift: residues above (p-1)/2 map to negative int64."""
    a = _check(a).astype(np.int64)
    return np.where(a > (P - 1) // 2, a - P, a)


def random(rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
    """Uniform base-field elements."""
    return rng.integers(0, P, size=shape, dtype=np.uint32)


def uniform_from_bytes(read: Callable[[int], bytes], size=None, dtype=np.uint32) -> np.ndarray:
    """Uniform base-field elements of shape ``size`` from a byte source ``read(n) -> n bytes``
    (31-bit little-endian words, rejection of those ≥ p)."""
    shape = (size,) if isinstance(size, int) else tuple(size or ())
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    out = np.empty(0, dtype=np.uint32)
    while out.size < n:
        want = (n - out.size) * 17 // 16 + 16
        raw = np.frombuffer(read(4 * want), dtype="<u4") & np.uint32(0x7FFFFFFF)
        out = np.concatenate([out, raw[raw < P]])
    return out[:n].astype(dtype).reshape(shape)


class SecureRng:
    """Uniform base-field elements from the OS CSPRNG, with the one ``numpy.random.Generator`` method
    :func:`random` calls: a drop-in source for secrets (zero-knowledge masks) where a seeded PRNG
    would do for tests."""

    def integers(self, low: int, high: int, size=None, dtype=np.uint32) -> np.ndarray:
        if low != 0 or high != P:
            raise ValueError("SecureRng draws field elements only (low=0, high=p)")
        return uniform_from_bytes(os.urandom, size, dtype)


# --- quartic extension -----------------------------------------------------------------------------

def ezero(shape: int | tuple[int, ...] = ()) -> np.ndarray:
    """Extension zeros of the given leading shape."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return np.zeros(shape + (4,), dtype=np.uint32)


def eone(shape: int | tuple[int, ...] = ()) -> np.ndarray:
    """Extension ones of the given leading shape."""
    out = ezero(shape)
    out[..., 0] = 1
    return out


def embed(b: ArrayLike) -> np.ndarray:
    """Base elements as extension elements (constant coefficient)."""
    b = _check(b, "b")
    out = np.zeros(b.shape + (4,), dtype=np.uint32)
    out[..., 0] = b
    return out


def erandom(rng: np.random.Generator, shape: int | tuple[int, ...] = ()) -> np.ndarray:
    """Uniform extension elements of the given leading shape."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return random(rng, shape + (4,))


def eadd(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Elementwise sum of extension elements."""
    x, y = _ints4(a), _ints4(b)
    if x is not None and y is not None:
        return _arr4(((x[0] + y[0]) % P, (x[1] + y[1]) % P, (x[2] + y[2]) % P, (x[3] + y[3]) % P))
    return add(_check_ext(a, "a"), _check_ext(b, "b"))


def esub(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Elementwise difference of extension elements."""
    x, y = _ints4(a), _ints4(b)
    if x is not None and y is not None:
        return _arr4(((x[0] - y[0]) % P, (x[1] - y[1]) % P, (x[2] - y[2]) % P, (x[3] - y[3]) % P))
    return sub(_check_ext(a, "a"), _check_ext(b, "b"))


def eneg(a: ArrayLike) -> np.ndarray:
    """Elementwise negation of extension elements."""
    return neg(_check_ext(a))


def emul(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Elementwise product of extension elements (leading axes broadcast)."""
    x, y = _ints4(a), _ints4(b)
    if x is not None and y is not None:
        return _arr4(_emul4(x, y))
    a, b = _check_ext(a, "a"), _check_ext(b, "b")
    a2, b2, shape = _flat_pair(a, b, trailing=1)
    out = np.empty_like(a2)
    K.emul_flat(a2, b2, out)
    return out.reshape(shape)


def escale(e: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Extension element(s) ``e`` times base element(s) ``b`` (b broadcasts against e's leading axes)."""
    e, b = _check_ext(e, "e"), _check(b, "b")
    return mul(e, b[..., None])


def einv(a: ArrayLike) -> np.ndarray:
    """Elementwise inverse of extension elements; raises :class:`FieldError` on zero."""
    a = _check_ext(a)
    flat = np.ascontiguousarray(a).reshape(-1, 4)
    out = np.empty_like(flat)
    bad = K.einv_flat(flat, out)
    if bad >= 0:
        raise FieldError(f"einv: extension element at flat index {bad} is zero")
    return out.reshape(a.shape)


def ebatch_inv(a: ArrayLike) -> np.ndarray:
    """Elementwise extension inverse by Montgomery's trick; raises on a zero."""
    a = _check_ext(a)
    flat = np.ascontiguousarray(a).reshape(-1, 4)
    out = np.empty_like(flat)
    bad = K.ebatch_inv_flat(flat, out)
    if bad >= 0:
        raise FieldError(f"ebatch_inv: extension element at flat index {bad} is zero")
    return out.reshape(a.shape)


def epow(a: ArrayLike, e: int) -> np.ndarray:
    """Extension element(s) raised to a non-negative integer power (square and multiply)."""
    a = _check_ext(a)
    if not isinstance(e, (int, np.integer)) or e < 0:
        raise FieldError(f"epow: exponent must be a non-negative int, got {e!r}")
    result = eone(a.shape[:-1])
    base = a.copy()
    e = int(e)
    while e:
        if e & 1:
            result = emul(result, base)
        base = emul(base, base)
        e >>= 1
    return result


def edot(e_vec: ArrayLike, b: ArrayLike) -> np.ndarray:
    """``sum_r e_vec[r] · b[r, ...]``: extension vector (R, 4) against base (R,) -> (4,) or (R, C) -> (C, 4).

    For two extension vectors use :func:`edot_ext`.
    """
    e_vec = _check_ext(e_vec, "e_vec")
    if e_vec.ndim != 2:
        raise FieldError(f"edot: e_vec must have shape (R, 4), got {e_vec.shape}")
    b = _check(b, "b")
    if b.shape[0] != e_vec.shape[0]:
        raise FieldError(f"edot: length mismatch {e_vec.shape[0]} vs {b.shape[0]}")
    e_c = np.ascontiguousarray(e_vec)
    if b.ndim == 1:
        return K.edot_base(e_c, np.ascontiguousarray(b))
    if b.ndim == 2:
        return K.evec_base_mat(e_c, np.ascontiguousarray(b))
    raise FieldError(f"edot: b must be 1-D or 2-D, got shape {b.shape}")


def esum(a: ArrayLike) -> np.ndarray:
    """Sum of extension elements over the first axis: (n, 4) -> (4,), n < 2^32."""
    a = _check_ext(a)
    return (a.astype(np.uint64).sum(axis=0) % np.uint64(P)).astype(np.uint32)


def edot_ext(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Inner product of two extension vectors of shape (n, 4) -> (4,)."""
    a, b = _check_ext(a, "a"), _check_ext(b, "b")
    if a.ndim != 2 or a.shape != b.shape:
        raise FieldError(f"edot_ext: need two (n, 4) arrays of equal shape, got {a.shape} and {b.shape}")
    return K.edot_ext(np.ascontiguousarray(a), np.ascontiguousarray(b))


def ext(c0: int, c1: int = 0, c2: int = 0, c3: int = 0) -> np.ndarray:
    """One extension element from its four coefficients (each reduced mod p)."""
    return np.array([c0 % P, c1 % P, c2 % P, c3 % P], dtype=np.uint32)


def two_adic_generator(log_n: int) -> int:
    """A primitive 2^log_n-th root of unity (log_n ≤ 27), consistent across sizes (squares go down)."""
    if not 0 <= log_n <= TWO_ADICITY:
        raise FieldError(f"two_adic_generator: log_n must be in [0, {TWO_ADICITY}], got {log_n}")
    root = pow(GENERATOR, (P - 1) >> TWO_ADICITY, P)  # order exactly 2^27
    return pow(root, 1 << (TWO_ADICITY - log_n), P)
