"""Integer models survive a save/load round trip and mismatched files are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from blindproof.models.transformer import Transformer
from blindproof.models.workloads import TINY_LLAMA, init_weights
from blindproof.quant import quantize
from blindproof.quant.files import SPEC_FILE, WEIGHTS_FILE, load_quantized, save_quantized


@pytest.fixture(scope="module")
def qm():
    model = init_weights(Transformer(TINY_LLAMA), 0).eval()
    return quantize(model, torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(0)))


def test_round_trip(tmp_path, qm):
    save_quantized(qm, tmp_path)
    back = load_quantized(tmp_path)
    assert back.spec.digest() == qm.spec.digest()
    x = torch.randint(0, 256, (1, 9))
    np.testing.assert_array_equal(back.run(x, record=False).output(), qm.run(x, record=False).output())
    # weights are stored in their declared dtypes: int8 matrices take one byte per entry
    n_int8 = sum(int(np.prod(w.shape)) for w in qm.spec.weights.values() if w.dtype == "int8")
    assert (tmp_path / WEIGHTS_FILE).stat().st_size < 2 * n_int8 + 4 * 256 * 64 + 200_000


def test_mismatched_files_are_refused(tmp_path, qm):
    with pytest.raises(FileNotFoundError, match=SPEC_FILE):
        load_quantized(tmp_path)
    save_quantized(qm, tmp_path)
    d = json.loads((tmp_path / SPEC_FILE).read_text())
    name = next(iter(d["weights"]))
    d["weights"][name]["shape"][0] += 1
    (tmp_path / SPEC_FILE).write_text(json.dumps(d))
    with pytest.raises(ValueError, match="shape"):
        load_quantized(tmp_path)
