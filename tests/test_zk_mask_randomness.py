"""The zero-knowledge masks of a production proof come from the OS CSPRNG, not a seeded PRNG."""

from __future__ import annotations

import os

import numpy as np

from blindproof.zk.field import babybear as F
from blindproof.zk.iop import masks as M


def test_secure_rng_draws_uniform_field_elements():
    a = F.random(F.SecureRng(), (64, 3))
    assert a.shape == (64, 3) and a.dtype == np.uint32 and int(a.max()) < F.P
    assert len(np.unique(a)) > 180  # 192 draws from ~2^31 values


def test_masks_without_an_rng_read_the_os_csprng(monkeypatch):
    calls = []
    real = os.urandom

    def counting(n: int) -> bytes:
        calls.append(n)
        return real(n)

    monkeypatch.setattr(os, "urandom", counting)
    masks = M.ProverMasks.sample([(3, 2), (5, 3)])
    assert calls, "masks were drawn without the OS CSPRNG"
    assert [m.coeffs.shape for m in masks.masks] == [(3, 3, 4), (5, 4, 4)]  # extension coefficients
    again = M.ProverMasks.sample([(3, 2), (5, 3)])
    assert not np.array_equal(masks.masks[1].coeffs, again.masks[1].coeffs)
