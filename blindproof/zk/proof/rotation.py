"""Rotation of the reused weight commitment: a certificate that two model commitments hold the same weights.

Why. The weight commitment stays hiding only while the positions opened under its key stay within its
``t_h`` hiding symbols (:class:`~blindproof.zk.proof.keys.OpeningLedger`). When the budget is spent the
owner commits the same weights under a FRESH key and publishes a :class:`RotationCertificate`; a
verifier pinning the old commitment checks the certificate and then accepts proofs against the new
one (:func:`follow_chain` over any number of links), so proofs per model are unbounded.

Statement: ``old`` and ``new`` have the same spec, the same code parameters and the same weight layout
(so every weight sits at the same offset of both matrices), and every weight tensor ``T`` has
``W̃_old = W̃_new``. Protocol (Fiat–Shamir, domain :data:`DOMAIN`, statement = both model digests):

1. per weight tensor ``T`` (layout order) a point ``r_T`` (label ``rotation/point``);
2. ONE batched opening (:func:`blindproof.zk.commit.pcs.open_claims`) of the stacked matrix
   ``[M_W^old; M_W^new; K]``, ``K`` a fresh companion of mask rows carried in the opening, of the
   linear claims ``W̃_old(r_T) − W̃_new(r_T) = 0``. The tensors of the two commitments are renamed
   (:data:`OLD`, :data:`NEW` prefixes: names are unique across a stack); renaming moves nothing.

Soundness: the opening binds both committed matrices (one Merkle multiproof per root, the proximity
rows and the column checks span both; ``pcs.Layout.soundness``), and a tensor whose two committed
tables differ gives a nonzero multilinear difference, zero at ``r_T`` with probability at most
``n_T/|F_ext|`` (Schwartz–Zippel): :func:`certificate_soundness` adds ``Σ_T n_T/|F_ext|`` to the
opening's error. A certificate below the commitment's target bits is rejected.

Zero knowledge: the claimed values are 0; every revealed row combination carries ``K``'s fresh
masks; the opened columns of each weight commitment are charged to its key's ledger (the old key's
from its rotation reserve, the new key's like a proof), so they stay within each ``t_h``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from blindproof.zk.commit import pcs
from blindproof.zk.proof import soundness
from blindproof.zk.proof.commitment import ModelCommitment, commit_model
from blindproof.zk.proof.keys import CommitmentKey, OpeningBudgetExceeded, OpeningLedger
from blindproof.zk.field.encoding import ProofFormatError, Reader, Writer
from blindproof.quant.spec import QuantSpec
from blindproof.zk.iop.transcript import Transcript
from blindproof.zk.verdict import SoundnessResult, guarded

DOMAIN = b"blindproof/zk/rotation/v1"
POINT_LABEL = "rotation/point"
OLD, NEW = "old|", "new|"  # tensor-name prefixes of the two stacked weight commitments
MAGIC = b"BPRT"
VERSION = 1
MAX_CERTIFICATE_BYTES = 1 << 28
MAX_LINKS = 1024


class RotationError(ValueError):
    """A rotation cannot be made, or a certificate (chain) does not verify."""


@dataclass(frozen=True)
class RotationResult(SoundnessResult):
    """A verdict plus the certificate's soundness (0 when it could not be computed)."""


@dataclass(frozen=True)
class RotationCertificate:
    """The digests of the two model commitments, the stated soundness (tenths of bits; the verifier
    recomputes it) and the stacked opening."""

    old_digest: bytes
    new_digest: bytes
    provable_tenths: int
    conjectured_tenths: int
    opening: bytes

    @property
    def provable_bits(self) -> float:
        return self.provable_tenths / 10

    def to_bytes(self) -> bytes:
        """Magic ``BPRT``, version 1, both digests, the figures, the opening."""
        w = Writer()
        w.header(MAGIC, VERSION)
        w.bytes_(self.old_digest)
        w.bytes_(self.new_digest)
        w.u32(self.provable_tenths)
        w.u32(self.conjectured_tenths)
        w.bytes_(self.opening)
        return w.getvalue()

    @staticmethod
    def from_bytes(data: bytes) -> "RotationCertificate":
        """Strict parse; :class:`ProofFormatError` on anything malformed (the opening itself is parsed
        against the commitments by :func:`verify_rotation`)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ProofFormatError("a rotation certificate is bytes")
        r = Reader(bytes(data), max_total=MAX_CERTIFICATE_BYTES)
        r.header(MAGIC, (VERSION,))
        old = r.bytes_(32, exact=32)
        new = r.bytes_(32, exact=32)
        prov, conj = r.u32(2560), r.u32(2560)
        opening = r.bytes_(MAX_CERTIFICATE_BYTES)
        r.finish()
        return RotationCertificate(old, new, prov, conj, opening)

    def save(self, path: str | Path) -> None:
        """Write the certificate file."""
        Path(path).write_bytes(self.to_bytes())

    @staticmethod
    def load(path: str | Path) -> "RotationCertificate":
        """Read a certificate file (:class:`ProofFormatError` if it is not one)."""
        return RotationCertificate.from_bytes(Path(path).read_bytes())


# --- what both sides derive ----------------------------------------------------------------------------

def check_rotatable(old: ModelCommitment, new: ModelCommitment) -> None:
    """ValueError unless ``new`` may certify as ``old``'s successor: the same spec, parameters and weight
    layout (so the same tensors at the same offsets, the same code and budget), another Merkle root."""
    if not isinstance(old, ModelCommitment) or not isinstance(new, ModelCommitment):
        raise TypeError("a rotation links two ModelCommitments")
    if old.spec_json != new.spec_json:
        raise ValueError("the two commitments are for different specs (architecture or quantization)")
    if old.params != new.params:
        raise ValueError(f"the two commitments have different parameters ({old.params} vs {new.params})")
    if old.weights.layout != new.weights.layout:
        raise ValueError("the two commitments have different weight layouts")
    if old.weights.root == new.weights.root:
        raise ValueError("the two commitments share their Merkle root (a rotation needs a fresh key)")


def _renamed(com: pcs.Commitment, prefix: str) -> pcs.Commitment:
    # the packing depends on the log sizes and their order only, so every tensor keeps its offset
    lay = dataclasses.replace(com.layout, names=tuple(prefix + n for n in com.layout.names))
    return pcs.Commitment(com.root, lay)


def _claims(tr: Transcript, layout: pcs.Layout) -> list[pcs.LinearClaim]:
    """``W̃_old(r_T) − W̃_new(r_T) = 0`` for every weight tensor, at a fresh point each."""
    zero = np.zeros(4, dtype=np.uint32)
    out = []
    for name, n in zip(layout.names, layout.log_sizes):
        r = tr.challenge_exts(POINT_LABEL, n)
        out.append(pcs.LinearClaim(((OLD + name, r, 1), (NEW + name, r, -1)), zero))
    return out


def _transcript(old: ModelCommitment, new: ModelCommitment) -> Transcript:
    return Transcript(DOMAIN, old.digest() + new.digest())


def certificate_soundness(layout: pcs.Layout) -> tuple[float, float]:
    """(provable, conjectured) bits of a certificate for commitments of weight layout ``layout``: the
    stacked opening's error (one claim per tensor) plus Schwartz–Zippel ``Σ_T n_T/|F_ext|``."""
    rep = layout.soundness(len(layout.names))
    ext_log2 = soundness.EXT_DEGREE * math.log2(soundness.BABYBEAR_P)
    sz = max(1, sum(layout.log_sizes)) * 2.0 ** -ext_log2
    bits = lambda b: -math.log2(2.0 ** -b + sz)  # noqa: E731
    return bits(rep.provable_bits), bits(rep.conjectured_bits)


def _tenths(layout: pcs.Layout) -> tuple[int, int]:
    prov, conj = certificate_soundness(layout)
    return int(prov * 10), int(conj * 10)


# --- prover ------------------------------------------------------------------------------------------

class _Charge:
    """A ledger seen by the opening through a renamed commitment: charges the real one."""

    def __init__(self, charge, com: pcs.Commitment) -> None:
        self._charge, self._com = charge, com

    def charge(self, _renamed_com, positions) -> int:
        return self._charge(self._com, positions)


def wellformed_positions(mc: ModelCommitment) -> np.ndarray:
    """The weight positions the commitment's own well-formedness proof opened (public with it; every
    ledger of its key holds them)."""
    from blindproof.zk.proof.wellformed import WellformedProof

    return WellformedProof.from_bytes(mc.wellformed).opened_positions(mc.weights)


def rotate(spec: QuantSpec, weights: Mapping[str, np.ndarray], old_key: CommitmentKey, old: ModelCommitment,
           new_key: CommitmentKey, *, old_ledger: OpeningLedger | None = None,
           new_ledger: OpeningLedger | None = None,
           rng: np.random.Generator | None = None) -> tuple[ModelCommitment, RotationCertificate]:
    """Commit ``weights`` again under ``new_key`` (same spec, parameters and budget as ``old``) and
    certify that the two commitments hold the same weights.

    ``old`` must be what ``(spec, weights, old_key)`` commit to. The opening is charged to both keys'
    ledgers (default ``key.ledger()``: ``<key file>.ledger``): the old key's from its rotation reserve,
    the new key's like a proof (after its own well-formedness opening). Raises
    :class:`~blindproof.zk.proof.keys.OpeningBudgetExceeded` when either cannot take it (then only the
    commitments' public well-formedness positions are charged), :class:`RotationError` when the
    inputs do not fit. ``rng``: the companion's randomness (tests); by default the OS CSPRNG."""
    if not isinstance(old, ModelCommitment):
        raise TypeError(f"old must be a ModelCommitment, got {type(old).__name__}")
    if not isinstance(old_key, CommitmentKey) or not isinstance(new_key, CommitmentKey):
        raise TypeError("old_key and new_key must be CommitmentKeys")
    if old_key.secret == new_key.secret:
        raise RotationError("the new key must differ from the old one (a fresh key)")
    old_com, old_state = commit_model(spec, weights, old_key, old.params, old.budget)
    if old_com.digest() != old.digest():
        raise RotationError("the spec, weights or key do not give the old commitment")
    new, new_state = commit_model(spec, weights, new_key, old.params, old.budget)
    old_ledger = old_ledger if old_ledger is not None else old_key.ledger()
    new_ledger = new_ledger if new_ledger is not None else new_key.ledger()
    return new, _certify(old, old_state, new, new_state, old_ledger, new_ledger, rng)


def _certify(old: ModelCommitment, old_state: pcs.ProverState, new: ModelCommitment, new_state: pcs.ProverState,
             old_ledger: OpeningLedger, new_ledger: OpeningLedger, rng) -> RotationCertificate:
    """The certificate from the two opening states (which :func:`rotate` checks hold the same weights;
    tests call this directly with different ones)."""
    check_rotatable(old, new)
    prov, conj = _tenths(old.weights.layout)
    if not prov / 10 >= old.params.security_bits:  # a certificate no verifier would accept costs no budget
        raise RotationError(f"a certificate would reach {prov / 10} provable bits, below the commitment's target "
                            f"of {old.params.security_bits}")
    # the well-formedness openings are public with each commitment: counted first (idempotent)
    old_ledger.charge(old.weights, wellformed_positions(old))
    new_ledger.charge(new.weights, wellformed_positions(new))
    # both checks before the opening, so that neither ledger is charged for a certificate never made
    if not old_ledger.rotation_left(old.weights):
        raise OpeningBudgetExceeded("the old key has no opening left for a rotation certificate "
                                    f"({old_ledger.remaining(old.weights)} positions left, one opening takes up to "
                                    f"{old.weights.layout.n_queries}): commit the model again instead")
    if new_ledger.openings_left(new.weights) < 1:
        raise OpeningBudgetExceeded(f"the new commitment's budget ({new.budget}) leaves no opening for the "
                                    "certificate beside its rotation reserve: use a budget of at least 2")
    tr = _transcript(old, new)
    claims = _claims(tr, old.weights.layout)
    states = [dataclasses.replace(old_state, commitment=_renamed(old.weights, OLD),
                                  ledger=_Charge(old_ledger.charge_rotation, old.weights)),
              dataclasses.replace(new_state, commitment=_renamed(new.weights, NEW),
                                  ledger=_Charge(new_ledger.charge, new.weights))]
    opening = pcs.open_claims(states, claims, tr, rng=rng)
    return RotationCertificate(old.digest(), new.digest(), prov, conj, opening.to_bytes())


# --- verifier ----------------------------------------------------------------------------------------

def verify_rotation(old: ModelCommitment, new: ModelCommitment,
                    certificate: "RotationCertificate | bytes") -> RotationResult:
    """Accept iff ``certificate`` proves that ``new`` holds the weights of ``old`` with at least the
    commitment's target of provable bits (``old.params.security_bits``). Never raises."""
    res = guarded(lambda: _verify(old, new, certificate), "rotation")
    return res if isinstance(res, RotationResult) else RotationResult(False, res.reason or "rejected")


def _reject(reason: str, prov: float = 0.0, conj: float = 0.0) -> RotationResult:
    return RotationResult(False, f"rotation: {reason}", (), prov, conj)


def _verify(old, new, certificate) -> RotationResult:
    try:
        check_rotatable(old, new)
    except (TypeError, ValueError) as exc:
        return _reject(f"the commitments cannot be linked: {exc}")
    if isinstance(certificate, RotationCertificate):
        cert = certificate
    else:
        try:
            cert = RotationCertificate.from_bytes(certificate)
        except ProofFormatError as exc:
            return _reject(f"malformed certificate: {exc}")
    if cert.old_digest != old.digest() or cert.new_digest != new.digest():
        return _reject("the certificate is for another pair of commitments")
    lay = old.weights.layout
    prov, conj = certificate_soundness(lay)
    if (cert.provable_tenths, cert.conjectured_tenths) != _tenths(lay):
        return _reject("the stated soundness figures do not match the parameters", prov, conj)
    if not prov >= old.params.security_bits:
        return _reject(f"{prov:.1f} provable bits, below the commitment's target of {old.params.security_bits}",
                       prov, conj)
    tr = _transcript(old, new)
    claims = _claims(tr, lay)
    coms = [_renamed(old.weights, OLD), _renamed(new.weights, NEW)]
    res = pcs.verify(coms, claims, cert.opening, tr)
    if not res.ok:
        return _reject(f"opening: {res.reason}", prov, conj)
    return RotationResult(True, "", (), prov, conj)


def follow_chain(pinned: ModelCommitment,
                 links: Sequence[tuple[ModelCommitment, "RotationCertificate | bytes"]]) -> ModelCommitment:
    """The newest commitment of a chain ``pinned → links[0] → links[1] → …``, each link a commitment
    and the certificate from its predecessor; :class:`RotationError` naming the first link that does
    not verify. With no links, ``pinned`` itself."""
    if not isinstance(pinned, ModelCommitment):
        raise TypeError(f"pinned must be a ModelCommitment, got {type(pinned).__name__}")
    if len(links) > MAX_LINKS:
        raise RotationError(f"a chain of {len(links)} links exceeds {MAX_LINKS}")
    cur = pinned
    for i, link in enumerate(links):
        if not isinstance(link, (tuple, list)) or len(link) != 2:
            raise TypeError("each link is (commitment, certificate)")
        nxt, cert = link
        res = verify_rotation(cur, nxt, cert)
        if not res.ok:
            raise RotationError(f"link {i + 1} of {len(links)}: {res.reason}")
        cur = nxt
    return cur


__all__: Sequence[str] = ("DOMAIN", "RotationCertificate", "RotationError", "RotationResult", "certificate_soundness",
                          "check_rotatable", "follow_chain", "rotate", "verify_rotation",
                          "wellformed_positions")
