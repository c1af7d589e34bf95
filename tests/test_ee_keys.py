import json
import os
import stat

import numpy as np
import pytest

from blindproof.ee.keys import KEY_VERSION, EEKey, KeyFileError, generate_key, load_key, save_key


def test_generated_keys_are_fresh_and_well_formed():
    a, b = generate_key(), generate_key()
    assert len(a.seed) == 32 and a.seed != b.seed
    assert len(a.key_id) == 32 and int(a.key_id, 16) >= 0
    assert a.key_id != b.key_id
    assert a.key_id == EEKey(a.seed).key_id  # deterministic


def test_repr_never_shows_the_seed():
    k = generate_key()
    assert k.seed.hex() not in repr(k) and k.key_id in repr(k)


def test_derive_is_domain_separated_and_deterministic():
    k = EEKey(bytes(range(32)))
    assert k.derive("vocab") == k.derive("vocab")
    assert k.derive("vocab") != k.derive("stream")
    assert len(k.derive("x", 100)) == 100
    assert k.derive("x") != EEKey(bytes(32)).derive("x")
    assert k.derive("key-id", 16).hex() != k.key_id  # the public id has its own domain
    np.testing.assert_array_equal(k.rng("a").permutation(50), k.rng("a").permutation(50))
    assert not np.array_equal(k.rng("a").permutation(50), k.rng("b").permutation(50))


def test_bad_seeds_and_labels_are_rejected():
    with pytest.raises(ValueError, match="32 bytes"):
        EEKey(b"short")
    with pytest.raises(TypeError, match="bytes"):
        EEKey("0" * 32)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="label"):
        generate_key().derive("")


def test_save_load_roundtrip_with_mode_0600(tmp_path):
    k = generate_key()
    p = tmp_path / "client.key"
    save_key(k, p)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    assert load_key(p) == k
    assert [f.name for f in tmp_path.iterdir()] == ["client.key"]  # no temp file left behind


def test_save_replaces_atomically_or_refuses_when_asked(tmp_path):
    p = tmp_path / "k"
    k1 = generate_key()
    save_key(k1, p)
    with pytest.raises(FileExistsError):
        save_key(generate_key(), p, overwrite=False)
    assert load_key(p) == k1
    k2 = generate_key()
    save_key(k2, p)
    assert load_key(p) == k2
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600


def test_load_refuses_group_or_world_readable_files(tmp_path):
    p = tmp_path / "k"
    save_key(generate_key(), p)
    os.chmod(p, 0o644)
    with pytest.raises(KeyFileError, match="mode 0644"):
        load_key(p)


def _rewrite(p, **changes):
    doc = json.loads(p.read_text())
    doc.update(changes)
    p.write_text(json.dumps(doc))
    os.chmod(p, 0o600)


def test_load_refuses_other_versions(tmp_path):
    p = tmp_path / "k"
    save_key(generate_key(), p)
    _rewrite(p, version=KEY_VERSION + 1)
    with pytest.raises(KeyFileError, match="version"):
        load_key(p)


@pytest.mark.parametrize("field", ["seed", "key_id", "checksum"])
def test_load_detects_a_flipped_character(tmp_path, field):
    p = tmp_path / "k"
    save_key(generate_key(), p)
    value = json.loads(p.read_text())[field]
    flipped = ("1" if value[0] == "0" else "0") + value[1:]
    _rewrite(p, **{field: flipped})
    with pytest.raises(KeyFileError, match="corrupted"):
        load_key(p)


def test_load_reports_truncated_missing_and_foreign_files(tmp_path):
    p = tmp_path / "k"
    save_key(generate_key(), p)
    p.write_bytes(p.read_bytes()[:40])
    with pytest.raises(KeyFileError, match="corrupted"):
        load_key(p)
    with pytest.raises(KeyFileError, match="does not exist"):
        load_key(tmp_path / "absent")
    q = tmp_path / "other"
    q.write_text(json.dumps({"hello": 1}))
    os.chmod(q, 0o600)
    with pytest.raises(KeyFileError, match="not a blindproof key"):
        load_key(q)
