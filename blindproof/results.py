"""What the one-call API returns: a commitment, a proof, a verdict. Each prints as a short summary and
shows as a small table in a notebook (``_repr_html_``); none ever prints proof bytes."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from blindproof.quant import QuantizedModel
    from blindproof.sources import ModelSource
    from blindproof.zk.proof.commitment import ModelCommitment
    from blindproof.zk.proof.keys import CommitmentKey
    from blindproof.zk.proof.proof_file import ModelProof
    from blindproof.zk.proof.prover import ModelProver
    from blindproof.zk.proof.verifier import ModelVerifyResult


def _size(n: int) -> str:
    for unit, k in (("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= k:
            return f"{n / k:.1f} {unit}"
    return f"{n} B"


def _table(title: str, rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
                   f"{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table><caption style='text-align:left'><b>{html.escape(title)}</b></caption>{body}</table>"


@dataclass
class Committed:
    """A model committed for proving: the public :attr:`commitment` (give it to verifiers), the secret
    :attr:`key` and the prover that opens it. ``blindproof.prove(committed, x)`` proves against it."""

    commitment: "ModelCommitment"
    key: "CommitmentKey" = field(repr=False)
    source: "ModelSource" = field(repr=False)
    prover: "ModelProver" = field(repr=False)
    path: Path | None = None  # where the commitment file was written, if it was

    @property
    def name(self) -> str:
        """The model's name (workload, folder or module class)."""
        return self.source.name

    @property
    def quantized(self) -> "QuantizedModel":
        """The integer model the commitment is to."""
        return self.source.quantized

    @property
    def digest(self) -> str:
        """The commitment's digest (hex): what proofs name."""
        return self.commitment.digest().hex()

    def proofs_left(self) -> int:
        """Proofs this key can still make within its opening budget."""
        return self.prover.openings_left()

    def save(self, path: str | Path) -> Path:
        """Write the commitment file to ``path`` (the key stays where it is; see ``commit(out=...)``)."""
        p = Path(path)
        self.commitment.save(p)
        self.path = p
        return p

    def _rows(self) -> list[tuple[str, str]]:
        lay = self.commitment.weights.layout
        return [("model", self.name), ("digest", self.digest[:16] + "…"),
                ("weights", f"{len(lay.names)} tensors, {sum(1 << s for s in lay.log_sizes):,} committed elements"),
                ("ops", str(len(self.commitment.spec.ops))),
                ("budget", f"{self.commitment.budget} openings, {self.proofs_left()} proofs left"),
                ("file", str(self.path) if self.path else "not saved")]

    def __repr__(self) -> str:
        r = dict(self._rows())
        return f"Committed({r['model']}: {r['weights']}, digest {r['digest']}, {r['budget']})"

    __str__ = __repr__

    def _repr_html_(self) -> str:
        return _table("blindproof commitment", self._rows())


@dataclass
class Proof:
    """A proof of one inference: ``outputs = F_W(inputs)`` for the committed model.

    :attr:`output` is the float view of the proved integer output; :meth:`save` / :meth:`to_bytes`
    give the proof file ``blindproof verify`` reads."""

    proof: "ModelProof" = field(repr=False)
    commitment: "ModelCommitment | None" = field(default=None, repr=False)
    name: str = "model"
    prove_s: float = 0.0
    _bytes: bytes | None = field(default=None, repr=False)

    def to_bytes(self) -> bytes:
        """The proof file's bytes."""
        if self._bytes is None:
            self._bytes = self.proof.to_bytes()
        return self._bytes

    def save(self, path: str | Path) -> Path:
        """Write the proof file."""
        p = Path(path)
        p.write_bytes(self.to_bytes())
        return p

    @staticmethod
    def load(path: str | Path) -> "Proof":
        """Read a proof file (``ProofFileError`` if it is not one)."""
        from blindproof.zk.proof.proof_file import ModelProof

        data = Path(path).read_bytes()
        return Proof(ModelProof.from_bytes(data), name=Path(path).name, _bytes=data)

    @property
    def outputs(self) -> dict[str, np.ndarray]:
        """The proved integer outputs, by name."""
        return self.proof.outputs

    @property
    def output(self) -> np.ndarray:
        """The first output as float64 (integer · 2^-exponent); needs the commitment (its spec)."""
        from blindproof.quant.spec import decode_output

        if self.commitment is None:
            raise ValueError("a proof read from a file has no commitment: decode with verify(proof, commitment)")
        name = self.commitment.spec.outputs[0]
        return decode_output(self.commitment.spec, name, self.proof.outputs[name])

    @property
    def provable_bits(self) -> float:
        """Provable bits of soundness the prover computed (the verifier recomputes them)."""
        return self.proof.soundness.provable_bits

    def _rows(self) -> list[tuple[str, str]]:
        outs = ", ".join(f"{k} {tuple(v.shape)}" for k, v in self.outputs.items())
        rows = [("model", self.name), ("size", _size(len(self.to_bytes()))),
                ("soundness", self.proof.soundness.summary()), ("outputs", outs),
                ("model digest", self.proof.model_digest.hex()[:16] + "…"), ("start", str(self.proof.start))]
        if self.prove_s:
            rows.append(("proved in", f"{self.prove_s:.2f} s"))
        return rows

    def __repr__(self) -> str:
        r = dict(self._rows())
        t = f", proved in {r['proved in']}" if "proved in" in r else ""
        return f"Proof({r['model']}: {r['size']}, {r['soundness']}, outputs {r['outputs']}{t})"

    __str__ = __repr__

    def _repr_html_(self) -> str:
        return _table("blindproof proof", self._rows())


@dataclass
class Verification:
    """A verdict: true iff the proof is valid for the commitment (and the pinned input/output, if any)."""

    result: "ModelVerifyResult" = field(repr=False)
    verify_s: float = 0.0
    commitment: "ModelCommitment | None" = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """Whether the proof verified."""
        return bool(self.result.ok)

    @property
    def reason(self) -> str:
        """Why the proof was rejected ('' when valid)."""
        return self.result.reason or ""

    @property
    def provable_bits(self) -> float:
        """Provable bits of soundness of the checked proof (0 when they could not be computed)."""
        return float(self.result.provable_bits)

    @property
    def outputs(self) -> dict[str, np.ndarray]:
        """The statement's integer outputs (empty when the proof could not be read)."""
        p = self.result.proof
        return dict(p.outputs) if p is not None else {}

    @property
    def output(self) -> np.ndarray | None:
        """The verified first output as float64, or None for an invalid proof."""
        from blindproof.quant.spec import decode_output

        if not self.ok or self.commitment is None:
            return None
        name = self.commitment.spec.outputs[0]
        return decode_output(self.commitment.spec, name, self.outputs[name])

    def __bool__(self) -> bool:
        return self.ok

    def _rows(self) -> list[tuple[str, str]]:
        rows = [("verdict", "VALID" if self.ok else "INVALID")]
        if not self.ok:
            rows.append(("reason", self.reason))
        if self.result.provable_bits:
            rows.append(("soundness", f"provable {self.result.provable_bits:.1f} bits, conjectured "
                                      f"{self.result.conjectured_bits:.1f} bits"))
        if self.ok:
            rows.append(("outputs", ", ".join(f"{k} {tuple(v.shape)}" for k, v in self.outputs.items())))
        rows.append(("verified in", f"{self.verify_s * 1000:.1f} ms"))
        return rows

    def __repr__(self) -> str:
        r = dict(self._rows())
        if self.ok:
            return f"Verification(VALID: {r['soundness']}, outputs {r['outputs']}, verified in {r['verified in']})"
        return f"Verification(INVALID: {self.reason})"

    __str__ = __repr__

    def _repr_html_(self) -> str:
        return _table("blindproof verification", self._rows())
