"""Fingerprints through the blind (EE) channel: a keyed harmless input expansion on every deployment.

A transformer's server part takes the residual stream, which has no harmless direction (docs/
fingerprint.md, "Transformers"). The deployment made here puts a wider input map in front of the
blocks: the server runs ``h = u E'`` on ``u`` of width ``d + r`` and then the ordinary EE-transformed
blocks. In the plaintext domain ``E = [I; M^T]`` (math form, ``(d + r) x d``), so ``u = (a, b)`` maps
to ``a + b M^T`` and every direction ``(-M z, z)`` is harmless at any magnitude. The server holds
``E' = A^-1 E Q`` with ``Q`` the EE residual key and ``A`` an input key of width ``d + r``; ``M`` and
``A`` are derived from the EE key, so the client can always rebuild them and the server never sees
them apart from their product.

Every request the client sends carries harmless noise of norm ``alpha`` (a uniformly random unit
direction of the harmless space, times ``alpha``). An identity probe is the same thing on a secret
reference input whose output the client knows, so probes and ordinary traffic have one distribution.
On the genuine deployment the noise cancels (up to float rounding); on a server that runs anything
whose expansion differs (another model, another key's deployment, a quantized copy) it turns into a
residual change of size ~alpha, which the check detects. A server that keeps ``E'`` and swaps the
rest is not amplified; only its ordinary output differences are visible (measured in
docs/fingerprint.md).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from blindproof.ee import ClientCodec, EEKey, Split, Tier, encrypt_model
from blindproof.ee.linalg import random_invertible
from blindproof.ee.plan import KeyPlan
from blindproof.fingerprint.linalg import null_space
from blindproof.fingerprint.protocol import Calibration, Fingerprint, Query, Verdict, calibrate, check
from blindproof.fingerprint.subspace import HarmlessSpace
from blindproof.models.transformer import Transformer


DEFAULT_EXTRA = 16
# Norm of the noise on every request. Small on purpose: it is rounded like any input, and at 100 an honest
# bfloat16 server (simulated) agreed with the reference's top-1 on 72 % of decoding positions, TF32 97 %;
# at 1 both are unchanged from no noise (docs/fingerprint.md, "Real hardware"). Label-only amplification
# needs 1000 and more; the blind channel's client always has the logits.
DEFAULT_ALPHA = 1.0
FORMAT = "blindproof-blind-fingerprint/1"
F64 = torch.float64


# --- the harmless space, token by token ------------------------------------------------------------

@dataclass(eq=False)
class TokenwiseSpace(HarmlessSpace):
    """The same per-token space at every position: inputs (seq, w), per-token orthonormal basis (k, w).

    Never materialised as a (seq*k, seq*w) matrix, so long sequences cost O(seq * k * w).
    """

    token_basis: torch.Tensor  # (k, w) float64, orthonormal rows
    input_shape: tuple[int, ...]  # (seq, w)
    kind: str = "global"
    at: torch.Tensor | None = None
    description: str = "harmless input expansion, per token"

    def __post_init__(self) -> None:
        if len(self.input_shape) != 2 or self.input_shape[1] != self.token_basis.shape[1]:
            raise ValueError(f"input shape {self.input_shape} does not fit a per-token basis of width "
                             f"{self.token_basis.shape[1]}")

    @property
    def dim(self) -> int:
        return int(self.input_shape[0] * self.token_basis.shape[0])

    def sample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.dim == 0:
            raise ValueError("the harmless space is empty")
        seq, k = self.input_shape[0], self.token_basis.shape[0]
        d = torch.randn((count, seq, k), generator=generator, dtype=F64) @ self.token_basis
        return d / d.flatten(1).norm(dim=1).reshape(-1, 1, 1)

    def project_out(self, x: torch.Tensor) -> torch.Tensor:
        x64 = x.to(F64)
        return (x64 - (x64 @ self.token_basis.T) @ self.token_basis).to(x.dtype)


# --- the keyed expansion -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Expansion:
    """``M`` (d x r) and the input key ``A`` ((d+r) x (d+r)), derived from the EE key."""

    mix: torch.Tensor  # (d, r) float64
    key: torch.Tensor  # (d + r, d + r) float64
    key_inv: torch.Tensor

    @staticmethod
    def derive(plan: KeyPlan, extra: int) -> "Expansion":
        """Deterministic from (EE key, tier, architecture, extra): a re-attaching client rebuilds it."""
        if not isinstance(extra, int) or extra <= 0:
            raise ValueError(f"the expansion width must be a positive int, got {extra!r}")
        d = plan.cfg.d_model
        rng = plan.rng(f"fingerprint/expansion/{extra}")
        mix = rng.standard_normal((d, extra)) / math.sqrt(extra)
        if plan.tier == "rotate":
            key = random_invertible(rng, d + extra)
        else:
            key = np.eye(d + extra)[:, rng.permutation(d + extra)]
        key_t = torch.from_numpy(key)
        return Expansion(torch.from_numpy(mix), key_t, torch.linalg.inv(key_t))

    @property
    def d_model(self) -> int:
        return int(self.mix.shape[0])

    @property
    def extra(self) -> int:
        return int(self.mix.shape[1])

    def plain_matrix(self) -> torch.Tensor:
        """E = [I; M^T] in math form ((d + r) x d): u E = a + b M^T."""
        return torch.cat([torch.eye(self.d_model, dtype=F64), self.mix.T], dim=0)

    def token_basis(self) -> torch.Tensor:
        """Orthonormal basis (r, d + r) of the per-token harmless directions {(-M z, z)}."""
        return torch.from_numpy(null_space(self.plain_matrix().T.numpy()))

    def server_weight(self, stream) -> torch.Tensor:
        """The server's ``expand.weight`` (torch layout, d x (d + r)): (A^-1 E Q)^T."""
        return stream.apply(self.key_inv @ self.plain_matrix()).T.contiguous()


class ExpansionCodec:
    """Client codec of an expanded deployment: adds harmless noise of norm ``alpha`` to every request.

    Wraps the EE ``ClientCodec`` (which still decodes the output); only the input side differs.
    """

    def __init__(self, inner: ClientCodec, extra: int = DEFAULT_EXTRA, alpha: float = DEFAULT_ALPHA,
                 generator: torch.Generator | None = None) -> None:
        if not isinstance(inner, ClientCodec) or not inner.is_transformer:
            raise TypeError("an expanded deployment needs an EE ClientCodec of a transformer")
        if not inner.split.client_embeds:
            raise ValueError("the harmless input expansion needs client_embeds=True (the client builds u)")
        if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"alpha must be a finite non-negative number, got {alpha!r}")
        self.inner = inner
        self.model: Transformer = inner.model
        self.split = inner.split
        self.key_id = inner.key_id
        self.tier = inner.tier
        self.alpha = float(alpha)
        self.expansion = Expansion.derive(inner.plan, extra)
        self._basis = self.expansion.token_basis()
        self._gen = generator or torch.Generator().manual_seed(secrets.randbits(62))

    @property
    def extra(self) -> int:
        return self.expansion.extra

    @property
    def is_transformer(self) -> bool:
        return True  # so ee.blind_generate accepts this codec

    def space(self, seq: int) -> TokenwiseSpace:
        """The harmless space of a request of ``seq`` positions (plaintext domain)."""
        return TokenwiseSpace(self._basis, (int(seq), self.model.cfg.d_model + self.extra))

    def pad(self, h: torch.Tensor) -> torch.Tensor:
        """(h, 0): the plaintext expanded input without noise (float64)."""
        return torch.cat([h.to(F64), h.new_zeros(*h.shape[:-1], self.extra, dtype=F64)], dim=-1)

    def encode_expanded(self, u: torch.Tensor) -> torch.Tensor:
        """Key an expanded plaintext input u (batch, seq, d + r) for the server: u A, in the model dtype."""
        width = self.model.cfg.d_model + self.extra
        if not isinstance(u, torch.Tensor) or u.dim() != 3 or u.shape[-1] != width:
            raise ValueError(f"expanded input must have shape (batch, seq, {width}), got {tuple(getattr(u, 'shape', ()))}")
        dtype = next(self.model.parameters()).dtype
        return (u.to(F64) @ self.expansion.key).to(dtype)

    @torch.no_grad()
    def client_input(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Embed, expand with fresh harmless noise of norm alpha, key."""
        h = self.model.embed_tokens(tokens, start)
        u = self.pad(h)
        if self.alpha > 0:
            u = u + self.alpha * self.space(h.shape[1]).sample(h.shape[0], self._gen)
        return self.encode_expanded(u)

    def client_output(self, server_out: torch.Tensor) -> torch.Tensor:
        """Decode and run the head, as the EE codec does."""
        return self.inner.client_output(server_out)


def expanded_deployment(model: Transformer, key: EEKey, tier: Tier = "rotate", split: Split = Split(),
                        extra: int = DEFAULT_EXTRA, alpha: float = DEFAULT_ALPHA,
                        generator: torch.Generator | None = None) -> tuple[Transformer, ExpansionCodec]:
    """The server model (EE-transformed blocks behind the keyed expansion) and the client codec."""
    if not isinstance(model, Transformer):
        raise TypeError(f"the harmless input expansion is for blindproof Transformers, got {type(model).__name__}")
    inner = ClientCodec(model, key, tier, split)
    codec = ExpansionCodec(inner, extra, alpha, generator)
    enc = encrypt_model(model, key, tier, split)
    dtype = next(enc.model.parameters()).dtype
    server = Transformer(dataclasses.replace(enc.model.cfg, input_extra=extra)).to(dtype)
    state = enc.model.state_dict()
    state["expand.weight"] = codec.expansion.server_weight(inner.plan.stream).to(dtype)
    server.load_state_dict(state)
    return server.eval(), codec


# --- the verifier's secret -----------------------------------------------------------------------------

def last_position(out: torch.Tensor) -> torch.Tensor:
    """(batch, classes) from a model output: last-position logits (decoders) or the pooled vector."""
    return out[:, -1] if out.dim() == 3 else out


def probe_query(codec: ExpansionCodec, run: Callable[[torch.Tensor], torch.Tensor]) -> Query:
    """A query for ``protocol.check``: key the expanded probe, ``run`` it on the server, decode.

    ``run`` is the transport (``client.infer_raw`` for a deployment, or a local forward).
    """
    @torch.no_grad()
    def query(u: torch.Tensor) -> torch.Tensor:
        return last_position(codec.client_output(run(codec.encode_expanded(u)))).to(F64)

    return query


def local_run(server: Transformer) -> Callable[[torch.Tensor], torch.Tensor]:
    """Run an (expanded) server model in-process, as the server would (tests, calibration)."""
    @torch.no_grad()
    def run(x: torch.Tensor) -> torch.Tensor:
        return server.run_blocks(x)

    return run


@dataclass(eq=False)
class BlindFingerprint:
    """Secret reference token sequences, the reference model's outputs on them, and calibrations.

    The harmless space is not stored: it follows from the deployment's key (``library``).
    """

    tokens: torch.Tensor  # (N, seq) int64
    expected: torch.Tensor  # (N, classes) float64
    alpha: float
    extra: int
    calibrations: dict[str, Calibration]
    model: str = ""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.tokens.dim() != 2 or self.tokens.shape[0] != self.expected.shape[0] or self.tokens.shape[0] == 0:
            raise ValueError("tokens (N, seq) and expected outputs (N, classes) must be non-empty, equal length")
        if not self.calibrations:
            raise ValueError("a blind fingerprint needs at least one calibration")

    def library(self, codec: ExpansionCodec) -> Fingerprint:
        """The ``protocol.Fingerprint`` for a deployment: references (h, 0) and its harmless space."""
        if not isinstance(codec, ExpansionCodec):
            raise TypeError("identity checks need a deployment with a harmless input expansion "
                            "(blindproof.client.fingerprinted.deploy)")
        if codec.alpha != self.alpha:
            raise ValueError(f"fingerprint alpha {self.alpha} differs from the deployment's traffic noise "
                             f"{codec.alpha}: probes would not look like ordinary requests")
        return reference_fingerprint(self.tokens, self.expected, self.alpha, self.extra, codec)

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT, "model": self.model, "seed": self.seed, "alpha": self.alpha, "extra": self.extra,
            "tokens": self.tokens.tolist(), "expected": self.expected.tolist(),
            "calibrations": {m: dataclasses.asdict(c) for m, c in self.calibrations.items()},
        })

    @classmethod
    def from_json(cls, text: str) -> "BlindFingerprint":
        try:
            d = json.loads(text)
            if d.get("format") != FORMAT:
                raise ValueError(f"not a blind fingerprint ({FORMAT})")
            cals = {m: Calibration(**c) for m, c in d["calibrations"].items()}
            return cls(torch.tensor(d["tokens"], dtype=torch.int64), torch.tensor(d["expected"], dtype=F64),
                       float(d["alpha"]), int(d["extra"]), cals, str(d.get("model", "")), int(d.get("seed", 0)))
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"malformed fingerprint file: {exc}") from exc

    def save(self, path: str | os.PathLike) -> None:
        """Write with mode 0600: the references are the verifier's secret."""
        path = Path(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.to_json())
        os.chmod(path, 0o600)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BlindFingerprint":
        try:
            return cls.from_json(Path(path).read_text())
        except OSError as exc:
            raise ValueError(f"cannot read fingerprint {path}: {exc}") from exc


def reference_fingerprint(tokens: torch.Tensor, expected: torch.Tensor, alpha: float, extra: int,
                          codec: ExpansionCodec) -> Fingerprint:
    """Library fingerprint: references (embed(tokens), 0) in the expanded plaintext domain, the per-token
    harmless space of ``codec``'s expansion, probes of norm ``alpha``."""
    if not isinstance(codec, ExpansionCodec):
        raise TypeError("identity checks need a deployment with a harmless input expansion "
                        "(blindproof.client.fingerprinted.deploy)")
    if codec.extra != extra:
        raise ValueError(f"fingerprint expects an expansion of width {extra}, the deployment has {codec.extra}")
    with torch.no_grad():
        refs = codec.pad(codec.model.embed_tokens(tokens)).to(torch.float32)
    return Fingerprint(refs, expected, [codec.space(tokens.shape[1])], float(alpha))


def make_blind_fingerprint(model: Transformer, key: EEKey, tier: Tier = "rotate", references: int = 64,
                           seq: int = 16, alpha: float = DEFAULT_ALPHA, extra: int = DEFAULT_EXTRA,
                           min_margin: float = 0.1, probes: int = 1000, modes: tuple[str, ...] = ("logits", "labels"),
                           generator: torch.Generator | None = None, source: str = "", seed: int = 0,
                           device_class: str = "fp32") -> BlindFingerprint:
    """Secret references (random token sequences), the reference outputs, and calibrations of the
    honest stack: the expanded deployment of ``model`` under ``key`` run locally in its own dtype.

    References whose top-two gap is below ``min_margin`` are dropped (near-ties would flip honestly).
    ``device_class`` calibrates for a server of that class (``precision.DeviceServer``: TF32, fp16 and
    bf16 simulated on CPU); a CPU float32 calibration rejects honest reduced-precision servers.
    """
    from blindproof.fingerprint.precision import DeviceServer
    if not isinstance(model, Transformer):
        raise TypeError(f"expected a blindproof Transformer, got {type(model).__name__}")
    if references < 1 or seq < 1 or seq > model.cfg.max_seq:
        raise ValueError(f"need references >= 1 and 1 <= seq <= {model.cfg.max_seq}, got {references}, {seq}")
    gen = generator or torch.Generator().manual_seed(secrets.randbits(62))
    server, codec = expanded_deployment(model, key, tier, Split(), extra, alpha, gen)
    tokens = torch.randint(0, model.cfg.vocab_size, (4 * references, seq), generator=gen)
    with torch.no_grad():
        expected = last_position(model(tokens)).to(F64)
    top2 = expected.topk(2, dim=1).values if expected.shape[1] > 1 else expected.repeat(1, 2)
    keep = ((top2[:, 0] - top2[:, 1]) >= min_margin).nonzero().flatten()[:references]
    if keep.numel() == 0:
        raise ValueError(f"no reference has a top-two output gap >= {min_margin}")
    tokens, expected = tokens[keep], expected[keep]
    lib = reference_fingerprint(tokens, expected, alpha, extra, codec)
    query = probe_query(codec, local_run(DeviceServer(server, device_class)))
    cals = {m: calibrate(query, lib, m, probes=probes, generator=gen) for m in modes}
    return BlindFingerprint(tokens, expected, float(alpha), extra, cals, source, seed)


def check_deployment(client: "BlindClient", deployment: "Deployment", fingerprint: BlindFingerprint,
                     mode: str = "logits", p1: float = 0.5, sequential: bool = False,
                     generator: torch.Generator | None = None, **check_kwargs) -> Verdict:
    """Run the identity check over gRPC: probes travel through the EE codec like any request."""
    if mode not in fingerprint.calibrations:
        raise ValueError(f"the fingerprint has no {mode!r} calibration (has {sorted(fingerprint.calibrations)})")
    codec = deployment.codec
    lib = fingerprint.library(codec)  # type: ignore[arg-type]
    query = probe_query(codec, lambda x: client.infer_raw(deployment.deployment_id, x))  # type: ignore[arg-type]
    return check(query, lib, fingerprint.calibrations[mode], p1=p1, sequential=sequential, generator=generator,
                 **check_kwargs)
