"""Fiat–Shamir transcript: determinism, domain separation, framing, unbiased sampling."""

from __future__ import annotations

import numpy as np
import pytest

from blindproof.zk.field import babybear as F
from blindproof.zk.iop.transcript import Transcript


def make(domain=b"test", statement=b"stmt") -> Transcript:
    t = Transcript(domain, statement)
    t.absorb_bytes("msg", b"hello")
    t.absorb_field("col", np.arange(5, dtype=np.uint32))
    t.absorb_ext("pt", F.eone(2))
    t.absorb_digest("root", b"\x01" * 32)
    return t


def test_deterministic():
    a, b = make(), make()
    np.testing.assert_array_equal(a.challenge_exts("r", 3), b.challenge_exts("r", 3))
    np.testing.assert_array_equal(a.challenge_indices("q", 10, 1000), b.challenge_indices("q", 10, 1000))


@pytest.mark.parametrize("variant", ["domain", "statement", "label", "data", "shape", "order"])
def test_any_change_changes_challenges(variant):
    base = make().challenge_ext("r")
    if variant == "domain":
        t = make(domain=b"other")
    elif variant == "statement":
        t = make(statement=b"stmt2")
    else:
        t = Transcript(b"test", b"stmt")
        if variant == "order":
            t.absorb_field("col", np.arange(5, dtype=np.uint32))
            t.absorb_bytes("msg", b"hello")
        else:
            t.absorb_bytes("msg2" if variant == "label" else "msg", b"hellp" if variant == "data" else b"hello")
            arr = np.arange(5, dtype=np.uint32)
            t.absorb_field("col", arr.reshape(5, 1) if variant == "shape" else arr)
        t.absorb_ext("pt", F.eone(2))
        t.absorb_digest("root", b"\x01" * 32)
    assert not np.array_equal(t.challenge_ext("r"), base)


def test_framing_prevents_concatenation_collisions():
    a = Transcript(b"d", b"")
    a.absorb_bytes("x", b"ab")
    a.absorb_bytes("x", b"c")
    b = Transcript(b"d", b"")
    b.absorb_bytes("x", b"a")
    b.absorb_bytes("x", b"bc")
    assert a.state_digest() != b.state_digest()


def test_successive_challenges_differ_and_depend_on_each_other():
    t = make()
    c1, c2 = t.challenge_ext("r"), t.challenge_ext("r")
    assert not np.array_equal(c1, c2)


def test_challenges_are_canonical_and_uniform():
    t = make()
    c = t.challenge_exts("many", 20000)
    assert c.shape == (20000, 4) and c.dtype == np.uint32 and int(c.max()) < F.P
    # mean of uniform [0, p) is p/2; std of the mean over 80000 samples ~ p/sqrt(12·80000)
    assert abs(c.mean() - F.P / 2) < 5 * F.P / np.sqrt(12 * 80000)
    idx = t.challenge_indices("q", 30000, 3)
    counts = np.bincount(idx, minlength=3)
    assert idx.min() >= 0 and idx.max() < 3
    assert np.all(np.abs(counts - 10000) < 500)
    pow2 = t.challenge_indices("q2", 100, 1024)
    assert pow2.max() < 1024


def test_rejects_bad_arguments():
    with pytest.raises(TypeError):
        Transcript(b"", b"")
    t = Transcript(b"d", b"s")
    with pytest.raises(ValueError, match="not below p"):
        t.absorb_field("x", np.array([F.P], dtype=np.uint32))
    with pytest.raises(ValueError, match="trailing axis"):
        t.absorb_ext("x", np.zeros(3, dtype=np.uint32))
    with pytest.raises(TypeError, match="digest"):
        t.absorb_digest("x", b"")
    with pytest.raises(ValueError, match="bound"):
        t.challenge_indices("x", 3, 0)
    with pytest.raises(TypeError, match="label"):
        t.absorb_bytes("", b"x")
