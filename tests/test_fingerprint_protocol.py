"""Identification protocol end to end on a digits MLP: honest servers pass, substitutes are caught."""

import pytest
import torch

from blindproof.fingerprint import calibrate, check, harmless_space, make_fingerprint
from blindproof.fingerprint import substitutes as S
from blindproof.models.mlp import MLP

sklearn = pytest.importorskip("sklearn.datasets")


@pytest.fixture(scope="module")
def setup():
    d = sklearn.load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:1400], perm[1400:]
    torch.manual_seed(0)
    ref = S.train_classifier(MLP((64, 32, 32, 10)), x[tr], y[tr], epochs=25, seed=0)
    fp = make_fingerprint(ref, x[te][:100], alpha=1000.0, min_margin=0.5)
    return ref, fp, x[tr], y[tr]


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_probes_are_harmless_for_the_reference(setup):
    ref, fp, _, _ = setup
    p = fp.probes(200, gen(1))
    assert torch.all(p.magnitudes == 1000.0)
    assert ((p.inputs - fp.references.mean(0)).norm(dim=1) > 500).all()  # far from natural inputs
    with torch.no_grad():
        assert (ref(p.inputs).argmax(1) == p.expected_labels).all()


def test_honest_server_passes_logits_and_labels(setup):
    ref, fp, _, _ = setup
    cal = calibrate(S.as_query(ref), fp, probes=300, generator=gen(2))
    assert cal.failures == 0 and cal.p0_upper < 0.03
    honest = S.as_query(ref, batch=1)  # another batching: another summation order
    v = check(honest, fp, cal, p1=0.9, generator=gen(3))
    assert v.decision == "match" and v.match is True
    assert v.false_positive <= 2.0**-40 and v.miss <= 2.0**-40
    cal_l = calibrate(S.as_query(ref, labels_only=True), fp, mode="labels", probes=300, generator=gen(4))
    v = check(S.as_query(ref, labels_only=True), fp, cal_l, p1=0.3, generator=gen(5))
    assert v.decision == "match" and v.mode == "labels"


def test_substitutes_are_caught_in_logit_mode(setup):
    ref, fp, _, _ = setup
    cal = calibrate(S.as_query(ref), fp, probes=300, generator=gen(6))
    for sub in (S.int8_weights(ref), S.magnitude_pruned(ref, 0.1), S.HalfPrecision(ref)):
        v = check(S.as_query(sub), fp, cal, p1=0.9, generator=gen(7))
        assert v.decision == "mismatch" and v.failures == v.probes


def test_label_only_check_catches_a_modified_model(setup):
    ref, fp, x, y = setup
    cal = calibrate(S.as_query(ref, labels_only=True), fp, mode="labels", probes=300, generator=gen(8))
    sub = S.magnitude_pruned(ref, 0.1)
    v = check(S.as_query(sub, labels_only=True), fp, cal, p1=0.2, generator=gen(9))
    assert v.decision == "mismatch" and v.failures >= v.threshold_failures
    # without amplification the same substitute agrees on almost every secret input
    fp0 = make_fingerprint(ref, fp.references, alpha=1e-9)
    p = fp0.probes(300, gen(10))
    with torch.no_grad():
        flips = (sub(p.inputs).argmax(1) != p.expected_labels).float().mean()
    assert flips < 0.05


def test_sequential_check_stops_early(setup):
    ref, fp, _, _ = setup
    cal = calibrate(S.as_query(ref), fp, probes=300, generator=gen(11))
    v = check(S.as_query(S.int8_weights(ref)), fp, cal, p1=0.9, sequential=True, batch=4, generator=gen(12))
    assert v.decision == "mismatch" and v.probes <= 8
    v = check(S.as_query(ref), fp, cal, p1=0.9, sequential=True, batch=8, generator=gen(13))
    assert v.decision == "match"


def test_known_blind_spots_first_layer_copy_and_projection(setup):
    """Label-only probes test only what the harmless space reaches: the first layer."""
    ref, fp, x, y = setup
    cal = calibrate(S.as_query(ref, labels_only=True), fp, mode="labels", probes=300, generator=gen(14))
    torch.manual_seed(5)
    copy = S.same_first_layer(ref, MLP((64, 32, 32, 10)), x, y, epochs=25)
    projecting = S.ProjectingServer(S.magnitude_pruned(ref, 0.1), fp.spaces[0])
    for sub in (copy, projecting):
        p = fp.probes(300, gen(15))
        with torch.no_grad():
            amplified = (sub(p.inputs).argmax(1) != p.expected_labels).float().mean()
        assert amplified < 0.1  # no amplification: these pass label-only probes as often as plain inputs


def test_query_contract_errors(setup):
    ref, fp, _, _ = setup
    cal = calibrate(S.as_query(ref), fp, probes=50, generator=gen(16))
    with pytest.raises(ValueError, match="labels only"):
        check(S.as_query(ref, labels_only=True), fp, cal, p1=0.9)
    with pytest.raises(ValueError, match="outputs for"):
        check(lambda x: ref(x)[:1].detach(), fp, cal, p1=0.9)
    with pytest.raises(ValueError, match="must return"):
        check(lambda x: torch.zeros(x.shape[0], 2, 2), fp, cal, p1=0.9)
    with pytest.raises(ValueError, match="mode"):
        calibrate(S.as_query(ref), fp, mode="probabilities")
    # numpy outputs are accepted (e.g. from a gRPC client)
    v = check(lambda x: ref(x).detach().numpy(), fp, cal, p1=0.9, generator=gen(17))
    assert v.decision == "match"


def test_local_fingerprint_caps_magnitude_at_radius(setup):
    ref, _, _, _ = setup
    refs = torch.rand(3, 64)
    fp = make_fingerprint(ref, refs, alpha=1e6, depth=1)
    p = fp.probes(20, gen(18))
    assert (p.magnitudes < 1e6).all() and (p.magnitudes > 0).all()
    with torch.no_grad():
        dev = (ref(p.inputs).double() - p.expected_logits).abs().max()
    assert dev < 1e-4
    assert harmless_space(ref, (64,), at=refs[0], depth=1).dim > 32


def test_known_blind_spot_a_server_that_recognises_probes(setup):
    """Probes with alpha >> |x| stand out by their norm; a server that routes them to the genuine model
    and everything else to a substitute passes. Probes must look like ordinary traffic (docs/fingerprint.md)."""
    ref, fp, _, _ = setup
    cheap = S.int8_weights(ref)

    def routing(x):
        with torch.no_grad():
            big = x.flatten(1).norm(dim=1) > 50
            return torch.where(big[:, None], ref(x), cheap(x))

    cal = calibrate(S.as_query(ref), fp, probes=300, generator=gen(19))
    assert check(routing, fp, cal, p1=0.9, generator=gen(20)).decision == "match"
    assert check(S.as_query(cheap), fp, cal, p1=0.9, generator=gen(21)).decision == "mismatch"
