"""BLAKE3 in numba, for hashing many Merkle leaves and tree levels inside one compiled call.

A Python-level ``blake3`` call per column costs about as much as the rest of a commitment, so the
compression function lives here and the loops over columns and tree levels run compiled. The output is
bit-identical to the reference ``blake3`` package in keyed mode, which the tests check.

Inputs are sequences of 32-bit words hashed as their little-endian bytes (field elements and digests
are words already). The compression function takes and returns scalars: a call with scalar arguments
costs a few nanoseconds, while array arguments or numba-level inlining cost either time per call or
tens of seconds of compilation. Its 7 rounds are written out (generated once from the round schedule)
so that LLVM sees straight-line 32-bit adds and rotates.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_NJ = dict(cache=True, nogil=True, boundscheck=False)

U = np.uint32
IV0, IV1, IV2, IV3 = U(0x6A09E667), U(0xBB67AE85), U(0x3C6EF372), U(0xA54FF53A)

CHUNK_START = 1
CHUNK_END = 2
PARENT = 4
ROOT = 8
KEYED_HASH = 16

CHUNK_WORDS = 256  # 1024-byte chunks
BLOCK_WORDS = 16  # 64-byte blocks


@nb.njit(**_NJ)
def compress(c0, c1, c2, c3, c4, c5, c6, c7,
             m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14, m15,
             counter, block_len, flags):
    """BLAKE3 compression of chaining value c0..c7 and block m0..m15 (uint32 scalars).

    Returns the first 8 output words: the next chaining value, or the 32-byte digest at the root.
    numba widens uint32 arithmetic, so every step is cast back to uint32 (LLVM then emits 32-bit
    adds and ``rorx``).
    """
    v0, v1, v2, v3, v4, v5, v6, v7 = c0, c1, c2, c3, c4, c5, c6, c7
    v8, v9, v10, v11 = IV0, IV1, IV2, IV3
    v12 = U(counter & 0xFFFFFFFF)
    v13 = U(counter >> 32)
    v14 = U(block_len)
    v15 = U(flags)
    # round 0
    v0 = U(v0 + v4 + m0); v12 = U(v12 ^ v0); v12 = U((v12 >> U(16)) | (v12 << U(16)))
    v8 = U(v8 + v12); v4 = U(v4 ^ v8); v4 = U((v4 >> U(12)) | (v4 << U(20)))
    v0 = U(v0 + v4 + m1); v12 = U(v12 ^ v0); v12 = U((v12 >> U(8)) | (v12 << U(24)))
    v8 = U(v8 + v12); v4 = U(v4 ^ v8); v4 = U((v4 >> U(7)) | (v4 << U(25)))
    v1 = U(v1 + v5 + m2); v13 = U(v13 ^ v1); v13 = U((v13 >> U(16)) | (v13 << U(16)))
    v9 = U(v9 + v13); v5 = U(v5 ^ v9); v5 = U((v5 >> U(12)) | (v5 << U(20)))
    v1 = U(v1 + v5 + m3); v13 = U(v13 ^ v1); v13 = U((v13 >> U(8)) | (v13 << U(24)))
    v9 = U(v9 + v13); v5 = U(v5 ^ v9); v5 = U((v5 >> U(7)) | (v5 << U(25)))
    v2 = U(v2 + v6 + m4); v14 = U(v14 ^ v2); v14 = U((v14 >> U(16)) | (v14 << U(16)))
    v10 = U(v10 + v14); v6 = U(v6 ^ v10); v6 = U((v6 >> U(12)) | (v6 << U(20)))
    v2 = U(v2 + v6 + m5); v14 = U(v14 ^ v2); v14 = U((v14 >> U(8)) | (v14 << U(24)))
    v10 = U(v10 + v14); v6 = U(v6 ^ v10); v6 = U((v6 >> U(7)) | (v6 << U(25)))
    v3 = U(v3 + v7 + m6); v15 = U(v15 ^ v3); v15 = U((v15 >> U(16)) | (v15 << U(16)))
    v11 = U(v11 + v15); v7 = U(v7 ^ v11); v7 = U((v7 >> U(12)) | (v7 << U(20)))
    v3 = U(v3 + v7 + m7); v15 = U(v15 ^ v3); v15 = U((v15 >> U(8)) | (v15 << U(24)))
    v11 = U(v11 + v15); v7 = U(v7 ^ v11); v7 = U((v7 >> U(7)) | (v7 << U(25)))
    v0 = U(v0 + v5 + m8); v15 = U(v15 ^ v0); v15 = U((v15 >> U(16)) | (v15 << U(16)))
    v10 = U(v10 + v15); v5 = U(v5 ^ v10); v5 = U((v5 >> U(12)) | (v5 << U(20)))
    v0 = U(v0 + v5 + m9); v15 = U(v15 ^ v0); v15 = U((v15 >> U(8)) | (v15 << U(24)))
    v10 = U(v10 + v15); v5 = U(v5 ^ v10); v5 = U((v5 >> U(7)) | (v5 << U(25)))
    v1 = U(v1 + v6 + m10); v12 = U(v12 ^ v1); v12 = U((v12 >> U(16)) | (v12 << U(16)))
    v11 = U(v11 + v12); v6 = U(v6 ^ v11); v6 = U((v6 >> U(12)) | (v6 << U(20)))
    v1 = U(v1 + v6 + m11); v12 = U(v12 ^ v1); v12 = U((v12 >> U(8)) | (v12 << U(24)))
    v11 = U(v11 + v12); v6 = U(v6 ^ v11); v6 = U((v6 >> U(7)) | (v6 << U(25)))
    v2 = U(v2 + v7 + m12); v13 = U(v13 ^ v2); v13 = U((v13 >> U(16)) | (v13 << U(16)))
    v8 = U(v8 + v13); v7 = U(v7 ^ v8); v7 = U((v7 >> U(12)) | (v7 << U(20)))
    v2 = U(v2 + v7 + m13); v13 = U(v13 ^ v2); v13 = U((v13 >> U(8)) | (v13 << U(24)))
    v8 = U(v8 + v13); v7 = U(v7 ^ v8); v7 = U((v7 >> U(7)) | (v7 << U(25)))
    v3 = U(v3 + v4 + m14); v14 = U(v14 ^ v3); v14 = U((v14 >> U(16)) | (v14 << U(16)))
    v9 = U(v9 + v14); v4 = U(v4 ^ v9); v4 = U((v4 >> U(12)) | (v4 << U(20)))
    v3 = U(v3 + v4 + m15); v14 = U(v14 ^ v3); v14 = U((v14 >> U(8)) | (v14 << U(24)))
    v9 = U(v9 + v14); v4 = U(v4 ^ v9); v4 = U((v4 >> U(7)) | (v4 << U(25)))
    # round 1
    v0 = U(v0 + v4 + m2); v12 = U(v12 ^ v0); v12 = U((v12 >> U(16)) | (v12 << U(16)))
    v8 = U(v8 + v12); v4 = U(v4 ^ v8); v4 = U((v4 >> U(12)) | (v4 << U(20)))
    v0 = U(v0 + v4 + m6); v12 = U(v12 ^ v0); v12 = U((v12 >> U(8)) | (v12 << U(24)))
    v8 = U(v8 + v12); v4 = U(v4 ^ v8); v4 = U((v4 >> U(7)) | (v4 << U(25)))
    v1 = U(v1 + v5 + m3); v13 = U(v13 ^ v1); v13 = U((v13 >> U(16)) | (v13 << U(16)))
    v9 = U(v9 + v13); v5 = U(v5 ^ v9); v5 = U((v5 >> U(12)) | (v5 << U(20)))
    v1 = U(v1 + v5 + m10); v13 = U(v13 ^ v1); v13 = U((v13 >> U(8)) | (v13 << U(24)))
    v9 = U(v9 + v13); v5 = U(v5 ^ v9); v5 = U((v5 >> U(7)) | (v5 << U(25)))
    v2 = U(v2 + v6 + m7); v14 = U(v14 ^ v2); v14 = U((v14 >> U(16)) | (v14 << U(16)))
    v10 = U(v10 + v14); v6 = U(v6 ^ v10); v6 = U((v6 >> U(12)) | (v6 << U(20)))
    v2 = U(v2 + v6 + m0); v14 = U(v14 ^ v2); v14 = U((v14 >> U(8)) | (v14 << U(24)))
    v10 = U(v10 + v14); v6 = U(v6 ^ v10); v6 = U((v6 >> U(7)) | (v6 << U(25)))
    v3 = U(v3 + v7 + m4); v15 = U(v15 ^ v3); v15 = U((v15 >> U(16)) | (v15 << U(16)))
    v11 = U(v11 + v15); v7 = U(v7 ^ v11); v7 = U((v7 >> U(12)) | (v7 << U(20)))
    v3 = U(v3 + v7 + m13); v15 = U(v15 ^ v3); v15 = U((v15 >> U(8)) | (v15 << U(24)))
    v11 = U(v11 + v15); v7 = U(v7 ^ v11); v7 = U((v7 >> U(7)) | (v7 << U(25)))
    v0 = U(v0 + v5 + m1); v15 = U(v15 ^ v0); v15 = U((v15 >> U(16)) | (v15 << U(16)))
    v10 = U(v10 + v15); v5 = U(v5 ^ v10); v5 = U((v5 >> U(12)) | (v5 << U(20)))
    v0 = U(v0 + v5 + m11); v15 = U(v15 ^ v0); v15 = U((v15 >> U(8)) | (v15 << U(24)))
    v10 = U(v10 + v15); v5 = U(v5 ^ v10); v5 = U((v5 >> U(7)) | (v5 << U(25)))
    v1 = U(v1 + v6 + m12); v12 = U(v12 ^ v1); v12 = U((v12 >> U(16)) | (v12 << U(16)))
    v11 = U(v11 + v12); v6 = U(v6 ^ v11); v6 = U((v6 >> U(12)) | (v6 << U(20)))
    v1 = U(v1 + v6 + m5); v12 = U(v12 ^ v1); v12 = U((v12 >> U(8)) | (v12 << U(24)))
    v11 = U(v11 + v12); v6 = U(v6 ^ v11); v6 = U((v6 >> U(7)) | (v6 << U(25)))
    v2 = U(v2 + v7 + m9); v13 = U(v13 ^ v2); v13 = U((v13 >> U(16)) | (v13 << U(16)))
    v8 = U(v8 + v13); v7 = U(v7 ^ v8); v7 = U((v7 >> U(12)) | (v7 << U(20)))
    v2 = U(v2 + v7 + m14); v13 = U(v13 ^ v2); v13 = U((v13 >> U(8)) | (v13 << U(24)))
    v8 = U(v8 + v13); v7 = U(v7 ^ v8); v7 = U((v7 >> U(7)) | (v7 << U(25)))
    v3 = U(v3 + v4 + m15); v14 = U(v14 ^ v3); v14 = U((v14 >> U(16)) | (v14 << U(16)))
    v9 = U(v9 + v14); v4 = U(v4 ^ v9); v4 = U((v4 >> U(12)) | (v4 << U(20)))
    v3 = U(v3 + v4 + m8); v14 = U(v14 ^ v3); v14 = U((v14 >> U(8)) | (v14 << U(24)))
    v9 = U(v9 + v14); v4 = U(v4 ^ v9); v4 = U((v4 >> U(7)) | (v4 << U(25)))
    # round 2
    v0 = U(v0 + v4 + m3); v12 = U(v12 ^ v0); v12 = U((v12 >> U(16)) | (v12 << U(16)))
    v8 = U(v8 + v12); v4 = U(v4 ^ v8); v4 = U((v4 >> U(12)) | (v4 << U(20)))
    v0 = U(v0 + v4 + m4); v12 = U(v12 ^ v0); v12 = U((v12 >> U(8)) | (v12 << U(24)))
    v8 = U(v8 + v12); v4 = U(v4 ^ v8); v4 = U((v4 >> U(7)) | (v4 << U(25)))
    v1 = U(v1 + v5 + m10); v13 = U(v13 ^ v1); v13 = U((v13 >> U(16)) | (v13 << U(16)))
    v9 = U(v9 + v13); v5 = U(v5 ^ v9); v5 = U((v5 >> U(12)) | (v5 << U(20)))
    v1 = U(v1 + v5 + m12); v13 = U(v13 ^ v1); v13 = U((v13 >> U(8)) | (v13 << U(24)))
    v9 = U(v9 + v13); v5 = U(v5 ^ v9); v5 = U((v5 >> U(7)) | (v5 << U(25)))
    v2 = U(v2 + v6 + m13); v14 = U(v14 ^ v2); v14 = U((v14 >> U(16)) | (v14 << U(16)))
    v10 = U(v10 + v14); v6 = U(v6 ^ v10); v6 = U((v6 >> U(12)) | (v6 << U(20)))
    v2 = U(v2 + v6 + m2); v14 = U(v14 ^ v2); v14 = U((v14 >> U(8)) | (v14 << U(24)))
    v10 = U(v10 + v14); v6 = U(v6 ^ v10); v6 = U((v6 >> U(7)) | (v6 << U(25)))
    v3 = U(v3 + v7 + m7); v15 = U(v15 ^ v3); v15 = U((v15 >> U(16)) | (v15 << U(16)))
    v11 = U(v11 + v15); v7 = U(v7 ^ v11); v7 = U((v7 >> U(12)) | (v7 << U(20)))
    v3 = U(v3 + v7 + m14); v15 = U(v15 ^ v3); v15 = U((v15 >> U(8)) | (v15 << U(24)))
    v11 = U(v11 + v15); v7 = U(v7 ^ v11); v7 = U((v7 >> U(7)) | (v7 << U(25)))
    v0 = U(v0 + v5 + m6); v15 = U(v15 ^ v0); v15 = U((v15 >> U(16)) | (v15 << U(16)))
    v10 = U(v10 + v15); v5 = U(v5 ^ v10); v5 = U((v5 >> U(12)) | (v5 << U(20)))
    v0 = U(v0 + v5 + m5); v15 = U(v15 ^ v0); v15 = U((v15 >> U(8)) | (v15 << U(24)))
    v10 = U(v10 + v15); v5 = U(v5 ^ v10); v5 = U((v5 >> U(7)) | (v5 << U(25)))
    v1 = U(v1 + v6 + m9); v12 = U(v12 ^ v1); v12 = U((v12 >> U(16)) | (v12 << U(16)))
    v11 = U(v11 + v12); v6 = U(v6 ^ v11); v6 = U((v6 >> U(12)) | (v6 << U(20)))
    v1 = U(v1 + v6 + m0); v12 = U(v12 ^ v1); v12 = U((v12 >> U(8)) | (v12 << U(24)))
    v11 = U(v11 + v12); v6 = U(v6 ^ v11); v6 = U((v6 >> U(7)) | (v6 << U(25)))
    v2 = U(v2 + v7 + m11); v13 = U(v13 ^ v2); v13 = U((v13 >> U(16)) | (v13 << U(16)))
    v8 = U(v8 + v13); v7 = U(v7 ^ v8); v7 = U((v7 >> U(12)) | (v7 << U(20)))
    v2 = U(v2 + v7 + m15); v13 = U(v13 ^ v2); v13 = U((v13 >> U(8)) | (v13 << U(24)))
    v8 = U(v8 + v13); v7 = U(v7 ^ v8); v7 = U((v7 >> U(7)) | (v7 << U(25)))
    v3 = U(v3 + v4 + m8); v14 = U(v14 ^ v3); v14 = U((v14 >> U(16)) | (v14 << U(16)))
    v9 = U(v9 + v14); v4 = U(v4 ^ v9); v4 = U((v4 >> U(12)) | (v4 << U(20)))
    v3 = U(v3 + v4 + m1); v14 = U(v14 ^ v3); v14 = U((v14 >> U(8)) | (v14 << U(24)))
    v9 = U(v9 + v14); v4 = U(v4 ^ v9); v4 = U((v4 >> U(7)) | (v4 << U(25)))
    # round 3
    v0 = U(v0 + v4 + m10); v12 = U(v12 ^ v0); v12 = U((v12 >> U(16)) | (v12 << U(16)))
    v8 = U(v8 + v12); v4 = U(v4 ^ v8); v4 = U((v4 >> U(12)) | (v4 << U(20)))
    v0 = U(v0 + v4 + m7); v12 = U(v12 ^ v0); v12 = U((v12 >> U(8)) | (v12 << U(24)))
    v8 = U(v8 + v12); v4 = U(v4 ^ v8); v4 = U((v4 >> U(7)) | (v4 << U(25)))
    v1 = U(v1 + v5 + m12); v13 = U(v13 ^ v1); v13 = U((v13 >> U(16)) | (v13 << U(16)))
    v9 = U(v9 + v13); v5 = U(v5 ^ v9); v5 = U((v5 >> U(12)) | (v5 << U(20)))
    v1 = U(v1 + v5 + m9); v13 = U(v13 ^ v1); v13 = U((v13 >> U(8)) | (v13 << U(24)))
    v9 = U(v9 + v13); v5 = U(v5 ^ v9); v5 = U((v5 >> U(7)) | (v5 << U(25)))
    v2 = U(v2 + v6 + m14); v14 = U(v14 ^ v2); v14 = U((v14 >> U(16)) | (v14 << U(16)))
    v10 = U(v10 + v14); v6 = U(v6 ^ v10); v6 = U((v6 >> U(12)) | (v6 << U(20)))
    v2 = U(v2 + v6 + m3); v14 = U(v14 ^ v2); v14 = U((v14 >> U(8)) | (v14 << U(24)))
    v10 = U(v10 + v14); v6 = U(v6 ^ v10); v6 = U((v6 >> U(7)) | (v6 << U(25)))
    v3 = U(v3 + v7 + m13); v15 = U(v15 ^ v3); v15 = U((v15 >> U(16)) | (v15 << U(16)))
    v11 = U(v11 + v15); v7 = U(v7 ^ v11); v7 = U((v7 >> U(12)) | (v7 << U(20)))
    v3 = U(v3 + v7 + m15); v15 = U(v15 ^ v3); v15 = U((v15 >> U(8)) | (v15 << U(24)))
    v11 = U(v11 + v15); v7 = U(v7 ^ v11); v7 = U((v7 >> U(7)) | (v7 << U(25)))
    v0 = U(v0 + v5 + m4); v15 = U(v15 ^ v0); v15 = U((v15 >> U(16)) | (v15 << U(16)))
    v10 = U(v10 + v15); v5 = U(v5 ^ v10); v5 = U((v5 >> U(12)) | (v5 << U(20)))
    v0 = U(v0 + v5 + m0); v15 = U(v15 ^ v0); v15 = U((v15 >> U(8)) | (v15 << U(24)))
    v10 = U(v10 + v15); v5 = U(v5 ^ v10); v5 = U((v5 >> U(7)) | (v5 << U(25)))
    v1 = U(v1 + v6 + m11); v12 = U(v12 ^ v1); v12 = U((v12 >> U(16)) | (v12 << U(16)))
    v11 = U(v11 + v12); v6 = U(v6 ^ v11); v6 = U((v6 >> U(12)) | (v6 << U(20)))
    v1 = U(v1 + v6 + m2); v12 = U(v12 ^ v1); v12 = U((v12 >> U(8)) | (v12 << U(24)))
    v11 = U(v11 + v12); v6 = U(v6 ^ v11); v6 = U((v6 >> U(7)) | (v6 << U(25)))
    v2 = U(v2 + v7 + m5); v13 = U(v13 ^ v2); v13 = U((v13 >> U(16)) | (v13 << U(16)))
    v8 = U(v8 + v13); v7 = U(v7 ^ v8); v7 = U((v7 >> U(12)) | (v7 << U(20)))
    v2 = U(v2 + v7 + m8); v13 = U(v13 ^ v2); v13 = U((v13 >> U(8)) | (v13 << U(24)))
    v8 = U(v8 + v13); v7 = U(v7 ^ v8); v7 = U((v7 >> U(7)) | (v7 << U(25)))
    v3 = U(v3 + v4 + m1); v14 = U(v14 ^ v3); v14 = U((v14 >> U(16)) | (v14 << U(16)))
    v9 = U(v9 + v14); v4 = U(v4 ^ v9); v4 = U((v4 >> U(12)) | (v4 << U(20)))
    v3 = U(v3 + v4 + m6); v14 = U(v14 ^ v3); v14 = U((v14 >> U(8)) | (v14 << U(24)))
    v9 = U(v9 + v14); v4 = U(v4 ^ v9); v4 = U((v4 >> U(7)) | (v4 << U(25)))
    # round 4
    v0 = U(v0 + v4 + m12); v12 = U(v12 ^ v0); v12 = U((v12 >> U(16)) | (v12 << U(16)))
    v8 = U(v8 + v12); v4 = U(v4 ^ v8); v4 = U((v4 >> U(12)) | (v4 << U(20)))
    v0 = U(v0 + v4 + m13); v12 = U(v12 ^ v0); v12 = U((v12 >> U(8)) | (v12 << U(24)))
    v8 = U(v8 + v12); v4 = U(v4 ^ v8); v4 = U((v4 >> U(7)) | (v4 << U(25)))
    v1 = U(v1 + v5 + m9); v13 = U(v13 ^ v1); v13 = U((v13 >> U(16)) | (v13 << U(16)))
    v9 = U(v9 + v13); v5 = U(v5 ^ v9); v5 = U((v5 >> U(12)) | (v5 << U(20)))
    v1 = U(v1 + v5 + m11); v13 = U(v13 ^ v1); v13 = U((v13 >> U(8)) | (v13 << U(24)))
    v9 = U(v9 + v13); v5 = U(v5 ^ v9); v5 = U((v5 >> U(7)) | (v5 << U(25)))
    v2 = U(v2 + v6 + m15); v14 = U(v14 ^ v2); v14 = U((v14 >> U(16)) | (v14 << U(16)))
    v10 = U(v10 + v14); v6 = U(v6 ^ v10); v6 = U((v6 >> U(12)) | (v6 << U(20)))
    v2 = U(v2 + v6 + m10); v14 = U(v14 ^ v2); v14 = U((v14 >> U(8)) | (v14 << U(24)))
    v10 = U(v10 + v14); v6 = U(v6 ^ v10); v6 = U((v6 >> U(7)) | (v6 << U(25)))
    v3 = U(v3 + v7 + m14); v15 = U(v15 ^ v3); v15 = U((v15 >> U(16)) | (v15 << U(16)))
    v11 = U(v11 + v15); v7 = U(v7 ^ v11); v7 = U((v7 >> U(12)) | (v7 << U(20)))
    v3 = U(v3 + v7 + m8); v15 = U(v15 ^ v3); v15 = U((v15 >> U(8)) | (v15 << U(24)))
    v11 = U(v11 + v15); v7 = U(v7 ^ v11); v7 = U((v7 >> U(7)) | (v7 << U(25)))
    v0 = U(v0 + v5 + m7); v15 = U(v15 ^ v0); v15 = U((v15 >> U(16)) | (v15 << U(16)))
    v10 = U(v10 + v15); v5 = U(v5 ^ v10); v5 = U((v5 >> U(12)) | (v5 << U(20)))
    v0 = U(v0 + v5 + m2); v15 = U(v15 ^ v0); v15 = U((v15 >> U(8)) | (v15 << U(24)))
    v10 = U(v10 + v15); v5 = U(v5 ^ v10); v5 = U((v5 >> U(7)) | (v5 << U(25)))
    v1 = U(v1 + v6 + m5); v12 = U(v12 ^ v1); v12 = U((v12 >> U(16)) | (v12 << U(16)))
    v11 = U(v11 + v12); v6 = U(v6 ^ v11); v6 = U((v6 >> U(12)) | (v6 << U(20)))
    v1 = U(v1 + v6 + m3); v12 = U(v12 ^ v1); v12 = U((v12 >> U(8)) | (v12 << U(24)))
    v11 = U(v11 + v12); v6 = U(v6 ^ v11); v6 = U((v6 >> U(7)) | (v6 << U(25)))
    v2 = U(v2 + v7 + m0); v13 = U(v13 ^ v2); v13 = U((v13 >> U(16)) | (v13 << U(16)))
    v8 = U(v8 + v13); v7 = U(v7 ^ v8); v7 = U((v7 >> U(12)) | (v7 << U(20)))
    v2 = U(v2 + v7 + m1); v13 = U(v13 ^ v2); v13 = U((v13 >> U(8)) | (v13 << U(24)))
    v8 = U(v8 + v13); v7 = U(v7 ^ v8); v7 = U((v7 >> U(7)) | (v7 << U(25)))
    v3 = U(v3 + v4 + m6); v14 = U(v14 ^ v3); v14 = U((v14 >> U(16)) | (v14 << U(16)))
    v9 = U(v9 + v14); v4 = U(v4 ^ v9); v4 = U((v4 >> U(12)) | (v4 << U(20)))
    v3 = U(v3 + v4 + m4); v14 = U(v14 ^ v3); v14 = U((v14 >> U(8)) | (v14 << U(24)))
    v9 = U(v9 + v14); v4 = U(v4 ^ v9); v4 = U((v4 >> U(7)) | (v4 << U(25)))
    # round 5
    v0 = U(v0 + v4 + m9); v12 = U(v12 ^ v0); v12 = U((v12 >> U(16)) | (v12 << U(16)))
    v8 = U(v8 + v12); v4 = U(v4 ^ v8); v4 = U((v4 >> U(12)) | (v4 << U(20)))
    v0 = U(v0 + v4 + m14); v12 = U(v12 ^ v0); v12 = U((v12 >> U(8)) | (v12 << U(24)))
    v8 = U(v8 + v12); v4 = U(v4 ^ v8); v4 = U((v4 >> U(7)) | (v4 << U(25)))
    v1 = U(v1 + v5 + m11); v13 = U(v13 ^ v1); v13 = U((v13 >> U(16)) | (v13 << U(16)))
    v9 = U(v9 + v13); v5 = U(v5 ^ v9); v5 = U((v5 >> U(12)) | (v5 << U(20)))
    v1 = U(v1 + v5 + m5); v13 = U(v13 ^ v1); v13 = U((v13 >> U(8)) | (v13 << U(24)))
    v9 = U(v9 + v13); v5 = U(v5 ^ v9); v5 = U((v5 >> U(7)) | (v5 << U(25)))
    v2 = U(v2 + v6 + m8); v14 = U(v14 ^ v2); v14 = U((v14 >> U(16)) | (v14 << U(16)))
    v10 = U(v10 + v14); v6 = U(v6 ^ v10); v6 = U((v6 >> U(12)) | (v6 << U(20)))
    v2 = U(v2 + v6 + m12); v14 = U(v14 ^ v2); v14 = U((v14 >> U(8)) | (v14 << U(24)))
    v10 = U(v10 + v14); v6 = U(v6 ^ v10); v6 = U((v6 >> U(7)) | (v6 << U(25)))
    v3 = U(v3 + v7 + m15); v15 = U(v15 ^ v3); v15 = U((v15 >> U(16)) | (v15 << U(16)))
    v11 = U(v11 + v15); v7 = U(v7 ^ v11); v7 = U((v7 >> U(12)) | (v7 << U(20)))
    v3 = U(v3 + v7 + m1); v15 = U(v15 ^ v3); v15 = U((v15 >> U(8)) | (v15 << U(24)))
    v11 = U(v11 + v15); v7 = U(v7 ^ v11); v7 = U((v7 >> U(7)) | (v7 << U(25)))
    v0 = U(v0 + v5 + m13); v15 = U(v15 ^ v0); v15 = U((v15 >> U(16)) | (v15 << U(16)))
    v10 = U(v10 + v15); v5 = U(v5 ^ v10); v5 = U((v5 >> U(12)) | (v5 << U(20)))
    v0 = U(v0 + v5 + m3); v15 = U(v15 ^ v0); v15 = U((v15 >> U(8)) | (v15 << U(24)))
    v10 = U(v10 + v15); v5 = U(v5 ^ v10); v5 = U((v5 >> U(7)) | (v5 << U(25)))
    v1 = U(v1 + v6 + m0); v12 = U(v12 ^ v1); v12 = U((v12 >> U(16)) | (v12 << U(16)))
    v11 = U(v11 + v12); v6 = U(v6 ^ v11); v6 = U((v6 >> U(12)) | (v6 << U(20)))
    v1 = U(v1 + v6 + m10); v12 = U(v12 ^ v1); v12 = U((v12 >> U(8)) | (v12 << U(24)))
    v11 = U(v11 + v12); v6 = U(v6 ^ v11); v6 = U((v6 >> U(7)) | (v6 << U(25)))
    v2 = U(v2 + v7 + m2); v13 = U(v13 ^ v2); v13 = U((v13 >> U(16)) | (v13 << U(16)))
    v8 = U(v8 + v13); v7 = U(v7 ^ v8); v7 = U((v7 >> U(12)) | (v7 << U(20)))
    v2 = U(v2 + v7 + m6); v13 = U(v13 ^ v2); v13 = U((v13 >> U(8)) | (v13 << U(24)))
    v8 = U(v8 + v13); v7 = U(v7 ^ v8); v7 = U((v7 >> U(7)) | (v7 << U(25)))
    v3 = U(v3 + v4 + m4); v14 = U(v14 ^ v3); v14 = U((v14 >> U(16)) | (v14 << U(16)))
    v9 = U(v9 + v14); v4 = U(v4 ^ v9); v4 = U((v4 >> U(12)) | (v4 << U(20)))
    v3 = U(v3 + v4 + m7); v14 = U(v14 ^ v3); v14 = U((v14 >> U(8)) | (v14 << U(24)))
    v9 = U(v9 + v14); v4 = U(v4 ^ v9); v4 = U((v4 >> U(7)) | (v4 << U(25)))
    # round 6
    v0 = U(v0 + v4 + m11); v12 = U(v12 ^ v0); v12 = U((v12 >> U(16)) | (v12 << U(16)))
    v8 = U(v8 + v12); v4 = U(v4 ^ v8); v4 = U((v4 >> U(12)) | (v4 << U(20)))
    v0 = U(v0 + v4 + m15); v12 = U(v12 ^ v0); v12 = U((v12 >> U(8)) | (v12 << U(24)))
    v8 = U(v8 + v12); v4 = U(v4 ^ v8); v4 = U((v4 >> U(7)) | (v4 << U(25)))
    v1 = U(v1 + v5 + m5); v13 = U(v13 ^ v1); v13 = U((v13 >> U(16)) | (v13 << U(16)))
    v9 = U(v9 + v13); v5 = U(v5 ^ v9); v5 = U((v5 >> U(12)) | (v5 << U(20)))
    v1 = U(v1 + v5 + m0); v13 = U(v13 ^ v1); v13 = U((v13 >> U(8)) | (v13 << U(24)))
    v9 = U(v9 + v13); v5 = U(v5 ^ v9); v5 = U((v5 >> U(7)) | (v5 << U(25)))
    v2 = U(v2 + v6 + m1); v14 = U(v14 ^ v2); v14 = U((v14 >> U(16)) | (v14 << U(16)))
    v10 = U(v10 + v14); v6 = U(v6 ^ v10); v6 = U((v6 >> U(12)) | (v6 << U(20)))
    v2 = U(v2 + v6 + m9); v14 = U(v14 ^ v2); v14 = U((v14 >> U(8)) | (v14 << U(24)))
    v10 = U(v10 + v14); v6 = U(v6 ^ v10); v6 = U((v6 >> U(7)) | (v6 << U(25)))
    v3 = U(v3 + v7 + m8); v15 = U(v15 ^ v3); v15 = U((v15 >> U(16)) | (v15 << U(16)))
    v11 = U(v11 + v15); v7 = U(v7 ^ v11); v7 = U((v7 >> U(12)) | (v7 << U(20)))
    v3 = U(v3 + v7 + m6); v15 = U(v15 ^ v3); v15 = U((v15 >> U(8)) | (v15 << U(24)))
    v11 = U(v11 + v15); v7 = U(v7 ^ v11); v7 = U((v7 >> U(7)) | (v7 << U(25)))
    v0 = U(v0 + v5 + m14); v15 = U(v15 ^ v0); v15 = U((v15 >> U(16)) | (v15 << U(16)))
    v10 = U(v10 + v15); v5 = U(v5 ^ v10); v5 = U((v5 >> U(12)) | (v5 << U(20)))
    v0 = U(v0 + v5 + m10); v15 = U(v15 ^ v0); v15 = U((v15 >> U(8)) | (v15 << U(24)))
    v10 = U(v10 + v15); v5 = U(v5 ^ v10); v5 = U((v5 >> U(7)) | (v5 << U(25)))
    v1 = U(v1 + v6 + m2); v12 = U(v12 ^ v1); v12 = U((v12 >> U(16)) | (v12 << U(16)))
    v11 = U(v11 + v12); v6 = U(v6 ^ v11); v6 = U((v6 >> U(12)) | (v6 << U(20)))
    v1 = U(v1 + v6 + m12); v12 = U(v12 ^ v1); v12 = U((v12 >> U(8)) | (v12 << U(24)))
    v11 = U(v11 + v12); v6 = U(v6 ^ v11); v6 = U((v6 >> U(7)) | (v6 << U(25)))
    v2 = U(v2 + v7 + m3); v13 = U(v13 ^ v2); v13 = U((v13 >> U(16)) | (v13 << U(16)))
    v8 = U(v8 + v13); v7 = U(v7 ^ v8); v7 = U((v7 >> U(12)) | (v7 << U(20)))
    v2 = U(v2 + v7 + m4); v13 = U(v13 ^ v2); v13 = U((v13 >> U(8)) | (v13 << U(24)))
    v8 = U(v8 + v13); v7 = U(v7 ^ v8); v7 = U((v7 >> U(7)) | (v7 << U(25)))
    v3 = U(v3 + v4 + m7); v14 = U(v14 ^ v3); v14 = U((v14 >> U(16)) | (v14 << U(16)))
    v9 = U(v9 + v14); v4 = U(v4 ^ v9); v4 = U((v4 >> U(12)) | (v4 << U(20)))
    v3 = U(v3 + v4 + m13); v14 = U(v14 ^ v3); v14 = U((v14 >> U(8)) | (v14 << U(24)))
    v9 = U(v9 + v14); v4 = U(v4 ^ v9); v4 = U((v4 >> U(7)) | (v4 << U(25)))

    return (U(v0 ^ v8), U(v1 ^ v9), U(v2 ^ v10), U(v3 ^ v11),
            U(v4 ^ v12), U(v5 ^ v13), U(v6 ^ v14), U(v7 ^ v15))


@nb.njit(**_NJ)
def _node_of(key, l, r, out, o):
    """out[o] = keyed BLAKE3(l ‖ r) for 8-word digests: a 64-byte input is one root compression."""
    d = compress(key[0], key[1], key[2], key[3], key[4], key[5], key[6], key[7],
                 l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7],
                 r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7],
                 0, 64, CHUNK_START | CHUNK_END | ROOT | KEYED_HASH)
    out[o, 0], out[o, 1], out[o, 2], out[o, 3], out[o, 4], out[o, 5], out[o, 6], out[o, 7] = d


@nb.njit(**_NJ)
def _hash_line(data, line, by_column, key, out8, stack, m):
    """Keyed BLAKE3 of one row (``by_column`` false) or one column of the 2-D word array ``data``.

    BLAKE3's chunk chaining and its left-balanced chunk tree, merged with the usual CV stack.
    ``stack`` (64, 8) and ``m`` (16,) are caller-owned scratch buffers.
    """
    n = data.shape[0] if by_column else data.shape[1]
    n_chunks = max(1, (n + CHUNK_WORDS - 1) // CHUNK_WORDS)
    depth = 0
    k0, k1, k2, k3, k4, k5, k6, k7 = key[0], key[1], key[2], key[3], key[4], key[5], key[6], key[7]
    c0, c1, c2, c3, c4, c5, c6, c7 = k0, k1, k2, k3, k4, k5, k6, k7
    for ci in range(n_chunks):
        start = ci * CHUNK_WORDS
        stop = min(start + CHUNK_WORDS, n)
        n_blocks = max(1, (stop - start + BLOCK_WORDS - 1) // BLOCK_WORDS)
        c0, c1, c2, c3, c4, c5, c6, c7 = k0, k1, k2, k3, k4, k5, k6, k7
        for bi in range(n_blocks):
            b0 = start + bi * BLOCK_WORDS
            used = min(BLOCK_WORDS, stop - b0) if stop > b0 else 0
            for i in range(16):
                if i < used:
                    m[i] = data[b0 + i, line] if by_column else data[line, b0 + i]
                else:
                    m[i] = 0
            flags = KEYED_HASH
            if bi == 0:
                flags |= CHUNK_START
            if bi == n_blocks - 1:
                flags |= CHUNK_END
                if n_chunks == 1:
                    flags |= ROOT
            c0, c1, c2, c3, c4, c5, c6, c7 = compress(
                c0, c1, c2, c3, c4, c5, c6, c7, m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7],
                m[8], m[9], m[10], m[11], m[12], m[13], m[14], m[15], ci, used * 4, flags)
        if ci < n_chunks - 1:
            # fold completed subtrees: one merge per trailing zero bit of the chunk count
            total = ci + 1
            while total & 1 == 0:
                depth -= 1
                s = stack[depth]
                c0, c1, c2, c3, c4, c5, c6, c7 = compress(
                    k0, k1, k2, k3, k4, k5, k6, k7, s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7],
                    c0, c1, c2, c3, c4, c5, c6, c7, 0, 64, KEYED_HASH | PARENT)
                total >>= 1
            stack[depth, 0], stack[depth, 1], stack[depth, 2], stack[depth, 3] = c0, c1, c2, c3
            stack[depth, 4], stack[depth, 5], stack[depth, 6], stack[depth, 7] = c4, c5, c6, c7
            depth += 1
    while depth > 0:
        depth -= 1
        s = stack[depth]
        c0, c1, c2, c3, c4, c5, c6, c7 = compress(
            k0, k1, k2, k3, k4, k5, k6, k7, s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7],
            c0, c1, c2, c3, c4, c5, c6, c7, 0, 64, KEYED_HASH | PARENT | (ROOT if depth == 0 else 0))
    out8[0], out8[1], out8[2], out8[3], out8[4], out8[5], out8[6], out8[7] = c0, c1, c2, c3, c4, c5, c6, c7


@nb.njit(**_NJ)
def hash_lines(data, by_column, key):
    """Keyed BLAKE3 digest (8 words) of every row, or every column, of ``data``: (n, 8) uint32."""
    n = data.shape[1] if by_column else data.shape[0]
    out = np.empty((n, 8), dtype=np.uint32)
    stack = np.empty((64, 8), dtype=np.uint32)
    m = np.empty(16, dtype=np.uint32)
    for j in range(n):
        _hash_line(data, j, by_column, key, out[j], stack, m)
    return out


@nb.njit(**_NJ)
def build_tree(data, leaf_key, node_key):
    """Merkle tree over the columns of ``data`` (R, n), n a power of two, in one call.

    Returns ``tree`` (2n, 8) uint32 with leaves at ``tree[n + j]`` and node i's children at 2i, 2i+1;
    the root is ``tree[1]`` (``tree[0]`` is unused).
    """
    n = data.shape[1]
    tree = np.zeros((2 * n, 8), dtype=np.uint32)
    tree[n:] = hash_columns(data, leaf_key)
    for pos in range(n - 1, 0, -1):
        _node_of(node_key, tree[2 * pos], tree[2 * pos + 1], tree, pos)
    return tree


@nb.njit(**_NJ)
def multiproof(tree, positions):
    """Sibling digests that a verifier of the leaves at sorted unique ``positions`` cannot recompute.

    Walks the tree level by level; the order matches :func:`multiproof_root`.
    """
    n = tree.shape[0] // 2
    cur = positions.copy() + n
    out = np.empty((cur.shape[0] * 64, 8), dtype=np.uint32)
    k = 0
    while cur.shape[0] > 0 and cur[0] > 1:
        nxt = np.empty(cur.shape[0], dtype=np.int64)
        q = 0
        i = 0
        while i < cur.shape[0]:
            p = cur[i]
            if i + 1 < cur.shape[0] and cur[i + 1] == (p ^ 1):
                i += 2  # both children known
            else:
                out[k] = tree[p ^ 1]
                k += 1
                i += 1
            nxt[q] = p >> 1
            q += 1
        cur = nxt[:q]
    return out[:k].copy()


@nb.njit(**_NJ)
def multiproof_root(n, positions, leaves, proof, node_key):
    """Recompute the root from leaf digests at sorted unique ``positions`` and a multiproof.

    Returns (root (8,) uint32, ok); ``ok`` is False if the proof does not have exactly the digests
    the walk consumes.
    """
    cnt = positions.shape[0]
    cur = positions.copy() + n
    vals = leaves.copy()
    pair = np.empty((2, 8), dtype=np.uint32)
    k = 0
    while cnt > 0 and cur[0] > 1:
        q = 0
        i = 0
        while i < cnt:
            p = cur[i]
            if i + 1 < cnt and cur[i + 1] == (p ^ 1):
                pair[0] = vals[i]
                pair[1] = vals[i + 1]
                i += 2
            else:
                if k >= proof.shape[0]:
                    return vals[0].copy(), False
                mine = p & 1
                pair[mine] = vals[i]
                pair[1 - mine] = proof[k]
                k += 1
                i += 1
            _node_of(node_key, pair[0], pair[1], vals, q)
            cur[q] = p >> 1
            q += 1
        cnt = q
    ok = k == proof.shape[0] and cnt == 1
    return vals[0].copy(), ok


# --- 16 columns in lockstep ------------------------------------------------------------------------
# Columns of equal height go through the same sequence of compressions, so 16 of them are hashed
# together with word-major state (``v[i*16 + l]`` is word i of lane l). Every lane loop has the same
# constant shape, which LLVM turns into 8-wide vector code with vector rotates; all buffers are
# local to one function so that it can prove they do not overlap. The round loop is kept (each
# round's message words are copied into order first): unrolling all 56 lane loops is ~25% faster
# but costs ~10 s more of compilation. About 2x the scalar path.

LANES = 16
_PERM = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8]
_SCHEDULE = np.empty((7, 16), dtype=np.int64)  # message word order of each round
_SCHEDULE[0] = np.arange(16)
for _r in range(1, 7):
    _SCHEDULE[_r] = _SCHEDULE[_r - 1][_PERM]
_JOB_BLOCK = 0
_JOB_PARENT = 1


@nb.njit(**_NJ)
def _jobs(n):
    """The compressions that hash ``n`` words, in order: rows (kind, first word, words used,
    counter, flags, push), where ``push`` stores the result on the CV stack. Parent jobs pop."""
    n_chunks = max(1, (n + CHUNK_WORDS - 1) // CHUNK_WORDS)
    out = np.zeros((n_chunks * 17 + 64, 6), dtype=np.int64)
    q = 0
    depth = 0
    for ci in range(n_chunks):
        start = ci * CHUNK_WORDS
        stop = min(start + CHUNK_WORDS, n)
        n_blocks = max(1, (stop - start + BLOCK_WORDS - 1) // BLOCK_WORDS)
        for bi in range(n_blocks):
            b0 = start + bi * BLOCK_WORDS
            used = min(BLOCK_WORDS, stop - b0) if stop > b0 else 0
            flags = KEYED_HASH
            if bi == 0:
                flags |= CHUNK_START
            if bi == n_blocks - 1:
                flags |= CHUNK_END
                if n_chunks == 1:
                    flags |= ROOT
            out[q, 0], out[q, 1], out[q, 2], out[q, 3], out[q, 4] = _JOB_BLOCK, b0, used, ci, flags
            q += 1
        if ci < n_chunks - 1:
            total = ci + 1
            while total & 1 == 0:
                out[q, 0], out[q, 4] = _JOB_PARENT, KEYED_HASH | PARENT
                depth -= 1
                q += 1
                total >>= 1
            out[q - 1, 5] = 1
            depth += 1
    while depth > 0:
        depth -= 1
        out[q, 0], out[q, 4] = _JOB_PARENT, KEYED_HASH | PARENT | (ROOT if depth == 0 else 0)
        q += 1
    return out[:q].copy()


@nb.njit(**_NJ)
def _hash_16_columns(data, j0, key, jobs, out):
    """Keyed BLAKE3 of columns ``j0 .. j0+15`` of ``data`` (R, n) into ``out[j0:j0+16]``."""
    v = np.empty(256, dtype=np.uint32)
    m = np.empty(256, dtype=np.uint32)
    mp = np.empty(256, dtype=np.uint32)
    cv = np.empty(128, dtype=np.uint32)
    stack = np.empty((64, 128), dtype=np.uint32)
    depth = 0
    for q in range(jobs.shape[0]):
        kind, w0, used, counter, flags, push = jobs[q, 0], jobs[q, 1], jobs[q, 2], jobs[q, 3], jobs[q, 4], jobs[q, 5]
        if kind == _JOB_BLOCK:
            for i in range(16):
                if i < used:
                    for l in range(16):
                        m[i * 16 + l] = data[w0 + i, j0 + l]
                else:
                    for l in range(16):
                        m[i * 16 + l] = 0
            block_len = used * 4
            from_key = (flags & CHUNK_START) != 0
        else:
            depth -= 1
            for i in range(128):
                m[i] = stack[depth, i]
                m[128 + i] = cv[i]
            block_len = 64
            from_key = True
        for i in range(8):
            for l in range(16):
                v[i * 16 + l] = key[i] if from_key else cv[i * 16 + l]
        for l in range(16):
            v[128 + l] = IV0
            v[144 + l] = IV1
            v[160 + l] = IV2
            v[176 + l] = IV3
            v[192 + l] = U(counter & 0xFFFFFFFF)
            v[208 + l] = U(counter >> 32)
            v[224 + l] = U(block_len)
            v[240 + l] = U(flags)
        for r in range(7):
            # this round's message order, copied so that every lane loop has constant offsets
            for i in range(16):
                src = _SCHEDULE[r, i] * 16
                for l in range(16):
                    mp[i * 16 + l] = m[src + l]
            for l in range(16):
                a = U(v[0 + l] + v[64 + l] + mp[0 + l]); d = U(v[192 + l] ^ a); d = U((d >> U(16)) | (d << U(16)))
                c = U(v[128 + l] + d); b = U(v[64 + l] ^ c); b = U((b >> U(12)) | (b << U(20)))
                a = U(a + b + mp[16 + l]); d = U(d ^ a); d = U((d >> U(8)) | (d << U(24)))
                c = U(c + d); b = U(b ^ c); b = U((b >> U(7)) | (b << U(25)))
                v[0 + l] = a; v[64 + l] = b; v[128 + l] = c; v[192 + l] = d
            for l in range(16):
                a = U(v[16 + l] + v[80 + l] + mp[32 + l]); d = U(v[208 + l] ^ a); d = U((d >> U(16)) | (d << U(16)))
                c = U(v[144 + l] + d); b = U(v[80 + l] ^ c); b = U((b >> U(12)) | (b << U(20)))
                a = U(a + b + mp[48 + l]); d = U(d ^ a); d = U((d >> U(8)) | (d << U(24)))
                c = U(c + d); b = U(b ^ c); b = U((b >> U(7)) | (b << U(25)))
                v[16 + l] = a; v[80 + l] = b; v[144 + l] = c; v[208 + l] = d
            for l in range(16):
                a = U(v[32 + l] + v[96 + l] + mp[64 + l]); d = U(v[224 + l] ^ a); d = U((d >> U(16)) | (d << U(16)))
                c = U(v[160 + l] + d); b = U(v[96 + l] ^ c); b = U((b >> U(12)) | (b << U(20)))
                a = U(a + b + mp[80 + l]); d = U(d ^ a); d = U((d >> U(8)) | (d << U(24)))
                c = U(c + d); b = U(b ^ c); b = U((b >> U(7)) | (b << U(25)))
                v[32 + l] = a; v[96 + l] = b; v[160 + l] = c; v[224 + l] = d
            for l in range(16):
                a = U(v[48 + l] + v[112 + l] + mp[96 + l]); d = U(v[240 + l] ^ a); d = U((d >> U(16)) | (d << U(16)))
                c = U(v[176 + l] + d); b = U(v[112 + l] ^ c); b = U((b >> U(12)) | (b << U(20)))
                a = U(a + b + mp[112 + l]); d = U(d ^ a); d = U((d >> U(8)) | (d << U(24)))
                c = U(c + d); b = U(b ^ c); b = U((b >> U(7)) | (b << U(25)))
                v[48 + l] = a; v[112 + l] = b; v[176 + l] = c; v[240 + l] = d
            for l in range(16):
                a = U(v[0 + l] + v[80 + l] + mp[128 + l]); d = U(v[240 + l] ^ a); d = U((d >> U(16)) | (d << U(16)))
                c = U(v[160 + l] + d); b = U(v[80 + l] ^ c); b = U((b >> U(12)) | (b << U(20)))
                a = U(a + b + mp[144 + l]); d = U(d ^ a); d = U((d >> U(8)) | (d << U(24)))
                c = U(c + d); b = U(b ^ c); b = U((b >> U(7)) | (b << U(25)))
                v[0 + l] = a; v[80 + l] = b; v[160 + l] = c; v[240 + l] = d
            for l in range(16):
                a = U(v[16 + l] + v[96 + l] + mp[160 + l]); d = U(v[192 + l] ^ a); d = U((d >> U(16)) | (d << U(16)))
                c = U(v[176 + l] + d); b = U(v[96 + l] ^ c); b = U((b >> U(12)) | (b << U(20)))
                a = U(a + b + mp[176 + l]); d = U(d ^ a); d = U((d >> U(8)) | (d << U(24)))
                c = U(c + d); b = U(b ^ c); b = U((b >> U(7)) | (b << U(25)))
                v[16 + l] = a; v[96 + l] = b; v[176 + l] = c; v[192 + l] = d
            for l in range(16):
                a = U(v[32 + l] + v[112 + l] + mp[192 + l]); d = U(v[208 + l] ^ a); d = U((d >> U(16)) | (d << U(16)))
                c = U(v[128 + l] + d); b = U(v[112 + l] ^ c); b = U((b >> U(12)) | (b << U(20)))
                a = U(a + b + mp[208 + l]); d = U(d ^ a); d = U((d >> U(8)) | (d << U(24)))
                c = U(c + d); b = U(b ^ c); b = U((b >> U(7)) | (b << U(25)))
                v[32 + l] = a; v[112 + l] = b; v[128 + l] = c; v[208 + l] = d
            for l in range(16):
                a = U(v[48 + l] + v[64 + l] + mp[224 + l]); d = U(v[224 + l] ^ a); d = U((d >> U(16)) | (d << U(16)))
                c = U(v[144 + l] + d); b = U(v[64 + l] ^ c); b = U((b >> U(12)) | (b << U(20)))
                a = U(a + b + mp[240 + l]); d = U(d ^ a); d = U((d >> U(8)) | (d << U(24)))
                c = U(c + d); b = U(b ^ c); b = U((b >> U(7)) | (b << U(25)))
                v[48 + l] = a; v[64 + l] = b; v[144 + l] = c; v[224 + l] = d
        for i in range(128):
            cv[i] = v[i] ^ v[128 + i]
        if push:
            for i in range(128):
                stack[depth, i] = cv[i]
            depth += 1
    for l in range(16):
        for i in range(8):
            out[j0 + l, i] = cv[i * 16 + l]


@nb.njit(**_NJ)
def hash_columns(data, key):
    """Keyed BLAKE3 digest of every column of ``data`` (R, n): (n, 8) uint32; 16 at a time."""
    n = data.shape[1]
    out = np.empty((n, 8), dtype=np.uint32)
    jobs = _jobs(data.shape[0])
    full = n - n % LANES
    for j0 in range(0, full, LANES):
        _hash_16_columns(data, j0, key, jobs, out)
    if full < n:
        stack = np.empty((64, 8), dtype=np.uint32)
        m = np.empty(16, dtype=np.uint32)
        for j in range(full, n):
            _hash_line(data, j, True, key, out[j], stack, m)
    return out
