"""Reference torch models and the named workloads."""

import torch as _torch

from blindproof._threads import pin_threads as _pin

_pin()

from blindproof.models.mlp import MLP  # noqa: E402
from blindproof.models.transformer import KVCache, Transformer, TransformerConfig  # noqa: E402
from blindproof.models.workloads import WORKLOADS, Workload, get_workload, init_weights  # noqa: E402
from blindproof.models.default import default_prompt, load_default_model  # noqa: E402
from blindproof.models.loaders import (UnsupportedModelError, embed_sentences, from_hf, load_minilm,  # noqa: E402
                                       load_minilm_model)

__all__ = ["MLP", "KVCache", "Transformer", "TransformerConfig", "WORKLOADS", "Workload", "get_workload",
           "init_weights", "default_prompt", "load_default_model", "UnsupportedModelError", "embed_sentences",
           "from_hf", "load_minilm", "load_minilm_model"]
