"""BabyBear (p = 15·2^27 + 1) and its degree-4 extension: arithmetic, numba kernels, NTT,
byte encoding of field elements.
"""
