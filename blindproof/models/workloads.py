"""Named workloads shared by tests, benchmarks and the CLI (docs/models.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from blindproof.models.mlp import MLP
from blindproof.models.transformer import Transformer, TransformerConfig

TINY_LLAMA = TransformerConfig(vocab_size=256, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=256,
                               max_seq=256)
SMALL_LLAMA = TransformerConfig(vocab_size=256, d_model=256, n_layers=4, n_heads=8, n_kv_heads=4, d_ff=1024,
                                max_seq=512)
_GPT2 = dict(vocab_size=50257, d_model=768, n_heads=12, d_ff=3072, max_seq=1024, norm="layer", mlp="gelu",
             position="learned", bias=True, tie_embeddings=True, gelu_approx="tanh")
GPT2_BLOCK = TransformerConfig(n_layers=1, **_GPT2)
GPT2_SMALL = TransformerConfig(n_layers=12, **_GPT2)
MINILM_L6 = TransformerConfig(vocab_size=30522, d_model=384, n_layers=6, n_heads=12, d_ff=1536, max_seq=512,
                              norm="layer", norm_position="post", mlp="gelu", position="learned", bias=True,
                              causal=False, norm_eps=1e-12, embed_norm=True, type_vocab_size=2,
                              output="mean_pool")


@torch.no_grad()
def init_weights(model: nn.Module, seed: int) -> nn.Module:
    """Seeded random weights with non-trivial norm gains and biases (so tests exercise them)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            fan_in = p.shape[-1]
            p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
        elif "norm" in name and name.endswith("weight"):
            p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
        else:
            p.copy_(0.02 * torch.randn(p.shape, generator=g))
    return model


@dataclass(frozen=True)
class Workload:
    """A named model shape with a seeded builder and a fixed example input."""

    name: str
    kind: str  # "transformer" | "mlp"
    config: TransformerConfig | None
    seq: int  # example sequence length (0 for the MLP)
    builder: Callable[[int], nn.Module]
    zk_scope: str = "model"  # what a proof covers by default: "model", or "blocks" (hidden states in and out)

    def build(self, seed: int = 0) -> nn.Module:
        """The model with seeded random weights (the trained default model: `blindproof.models.load_default_model`)."""
        return self.builder(seed).eval()

    def example_input(self, seed: int = 0, batch: int = 1) -> torch.Tensor:
        """Token ids (batch, seq) for transformers, features (batch, 784) for the MLP."""
        g = torch.Generator().manual_seed(10_000 + seed)
        if self.kind == "mlp":
            return torch.rand((batch, 784), generator=g)
        return torch.randint(0, self.config.vocab_size, (batch, self.seq), generator=g)


def _transformer(cfg: TransformerConfig) -> Callable[[int], nn.Module]:
    return lambda seed: init_weights(Transformer(cfg), seed)


WORKLOADS: dict[str, Workload] = {
    "tiny-llama": Workload("tiny-llama", "transformer", TINY_LLAMA, 16, _transformer(TINY_LLAMA)),
    "small-llama": Workload("small-llama", "transformer", SMALL_LLAMA, 64, _transformer(SMALL_LLAMA)),
    # The GPT-2 workloads measure transformer blocks: proofs cover the blocks (what a server runs in a split
    # deployment), not the 50k-vocabulary embedding and head (`blindproof prove --scope model` proves those too).
    "gpt2-block": Workload("gpt2-block", "transformer", GPT2_BLOCK, 128, _transformer(GPT2_BLOCK), "blocks"),
    "gpt2-small": Workload("gpt2-small", "transformer", GPT2_SMALL, 128, _transformer(GPT2_SMALL), "blocks"),
    "mlp-784-56-10": Workload("mlp-784-56-10", "mlp", None, 0, lambda seed: init_weights(MLP((784, 56, 10)), seed)),
    "minilm-l6": Workload("minilm-l6", "transformer", MINILM_L6, 128, _transformer(MINILM_L6)),
}


def get_workload(name: str) -> Workload:
    """Look a workload up by name, with the list of known names in the error."""
    try:
        return WORKLOADS[name]
    except KeyError:
        raise KeyError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}") from None
