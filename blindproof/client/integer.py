"""Client side of integer deployments: quantize the (transformed) model locally, encode inputs, decode
integer outputs.

Order matters: the EE transform is applied to the float model first, then the transformed model is
quantized with calibration data mapped through the same key, so the server holds — and proofs speak
about — the integer program of the transformed model. An integer deployment runs the whole program
on the server (``Split(client_embeds=False, client_decodes=False)``): token ids in (vocabulary-
permuted), logits out (permuted), or for an MLP keyed features in (rounded to the program's input
exponent) and keyed outputs out.
"""

from __future__ import annotations

import torch
from torch import nn

from blindproof.client.codecs import SplitCodec
from blindproof.ee.plan import Split
from blindproof.models.mlp import MLP
from blindproof.models.transformer import Transformer
from blindproof.quant import QuantizedModel, QuantSpec, quantize

INTEGER_SPLIT = Split(client_embeds=False, client_decodes=False)


def integer_split(model: nn.Module) -> Split:
    """The split of an integer deployment: the whole program on the server (an MLP has only one)."""
    return INTEGER_SPLIT if isinstance(model, Transformer) else Split()


def default_calibration(model: nn.Module, batch: int | None = None, seq: int = 16) -> torch.Tensor:
    """Deterministic calibration data (seeded; the same on every run): random token ids for a
    transformer, standard-normal features for an MLP. Pass representative data where you have it."""
    g = torch.Generator().manual_seed(0)
    if isinstance(model, Transformer):
        return torch.randint(0, model.cfg.vocab_size, (batch or 4, min(seq, model.cfg.max_seq)), generator=g)
    if isinstance(model, MLP):
        return torch.randn(batch or 64, model.dims[0], generator=g, dtype=torch.float64)
    raise TypeError(f"cannot calibrate a {type(model).__name__}; expected Transformer or MLP")


class IntegerCodec:
    """Wraps the float codec (EE or plaintext, whole model on the server) with the integer edges."""

    def __init__(self, inner: SplitCodec, quantized: QuantizedModel, commitment_key: bytes) -> None:
        if inner.split != integer_split(inner.model):
            raise ValueError(f"an integer deployment runs the whole model on the server; split must be "
                             f"{integer_split(inner.model)}, got {inner.split}")
        self.inner = inner
        self.quantized = quantized
        self.commitment_key = commitment_key
        self.model = inner.model
        self.split = inner.split

    @torch.no_grad()
    def client_input(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Token ids (permuted under a key) or features (keyed, then rounded) as the program's int64 input."""
        x = self.inner.client_input(tokens, start)
        enc = self.quantized.encode(x.to(torch.float64) if x.is_floating_point() else x)
        return torch.from_numpy(enc[self.quantized.spec.inputs[0]])

    @torch.no_grad()
    def client_output(self, server_out: torch.Tensor) -> torch.Tensor:
        """Integer output -> float (its fixed-point exponent) -> un-keyed by the float codec."""
        from blindproof.server.integer_executor import decode_output
        if server_out.dtype != torch.int64:
            raise ValueError(f"an integer deployment answers int64, got {server_out.dtype}")
        return self.inner.client_output(decode_output(self.quantized.spec, server_out))


def quantize_for_server(server_model: nn.Module, inner: SplitCodec, calibration: torch.Tensor) -> QuantizedModel:
    """Quantize the model the server runs, on calibration data encoded as the server will see it."""
    calib = inner.client_input(calibration, 0)
    qm = quantize(server_model, calib.to(torch.float64) if calib.is_floating_point() else calib)
    # The server reads the spec back from its canonical JSON (weights in sorted order); use that form
    # here too, so both sides lay the weights out alike and compute the same model commitment.
    return QuantizedModel(QuantSpec.from_json(qm.spec.to_json()), qm.weights)
