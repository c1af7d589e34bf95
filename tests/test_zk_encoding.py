"""Strict proof encoding: round trips and every malformed input rejected with ProofFormatError."""

from __future__ import annotations

import numpy as np
import pytest

from blindproof.zk.field import babybear as F
from blindproof.zk.field.encoding import ProofFormatError, Reader, Writer
from blindproof.zk.verdict import VerifyResult, guarded


def sample() -> bytes:
    w = Writer()
    w.header(b"TEST", 1)
    w.u8(7)
    w.u32(123456)
    w.u64(2 ** 40)
    w.bytes_(b"abc")
    w.field_array(np.arange(5, dtype=np.uint32))
    w.ext_array(F.eone(3))
    w.ext_fixed(F.ext(1, 2, 3, 4))
    return w.getvalue()


def read(data: bytes) -> tuple:
    r = Reader(data, max_total=1000)
    out = (r.header(b"TEST", (1,)), r.u8(), r.u32(), r.u64(), r.bytes_(16), r.field_array(8),
           r.ext_array(8), r.ext_fixed(1))
    r.finish()
    return out


def test_round_trip():
    v, a, b, c, d, fa, ea, ef = read(sample())
    assert (v, a, b, c, d) == (1, 7, 123456, 2 ** 40, b"abc")
    np.testing.assert_array_equal(fa, np.arange(5))
    np.testing.assert_array_equal(ea, F.eone(3))
    np.testing.assert_array_equal(ef[0], F.ext(1, 2, 3, 4))


@pytest.mark.parametrize("mutate, match", [
    (lambda b: b[:-1], "truncated"),
    (lambda b: b + b"\x00", "trailing"),
    (lambda b: b"XEST" + b[4:], "magic"),
    (lambda b: b[:4] + b"\x02\x00" + b[6:], "version"),
    (lambda b: b[:19] + b"\xff\xff\xff\x00" + b[23:], "exceeds the maximum"),  # bytes length prefix
    (lambda b: b * 30, "allowed"),
])
def test_malformed_rejected(mutate, match):
    with pytest.raises(ProofFormatError, match=match):
        read(mutate(sample()))


def test_non_canonical_field_element_rejected():
    w = Writer()
    w.u32(1)
    data = w.getvalue() + np.array([F.P], dtype="<u4").tobytes()
    with pytest.raises(ProofFormatError, match="non-canonical"):
        Reader(data).field_array(4)


def test_bounded_values_and_exact_counts():
    w = Writer()
    w.u32(9)
    with pytest.raises(ProofFormatError, match="maximum"):
        Reader(w.getvalue()).u32(max_value=8)
    w2 = Writer()
    w2.field_array(np.arange(3, dtype=np.uint32))
    with pytest.raises(ProofFormatError, match="exactly"):
        Reader(w2.getvalue()).field_array(10, exact=4)


def test_writer_rejects_bad_values():
    with pytest.raises(ValueError):
        Writer().u8(256)
    with pytest.raises(ValueError):
        Writer().u32(-1)
    with pytest.raises(ValueError):
        Writer().field_array(np.array([F.P], dtype=np.uint32))
    with pytest.raises(ProofFormatError, match="bytes"):
        Reader("text")  # type: ignore[arg-type]


def test_every_single_byte_flip_is_caught_or_decodes_differently():
    data = sample()
    original = read(data)
    for pos in range(len(data)):
        flipped = bytearray(data)
        flipped[pos] ^= 0x01
        try:
            got = read(bytes(flipped))
        except ProofFormatError:
            continue
        assert repr(got) != repr(original)


def test_guarded_turns_exceptions_into_rejections():
    def boom() -> VerifyResult:
        raise KeyError("x")
    res = guarded(boom, "demo")
    assert not res and "KeyError" in res.reason
    assert guarded(lambda: VerifyResult.accept(), "demo").ok
    assert not guarded(lambda: None, "demo")  # type: ignore[arg-type,return-value]
