"""How closely an integer model tracks the float model it came from, on given data: top-1 agreement
(the largest entry of each output row: the next token, the label) and the cosine of output rows.

Which figure decides: top-1 agreement for outputs that pick (logits, labels: any output of more than one
entry per row except the embeddings ``pooled`` and ``hidden``), the mean cosine for embeddings and
one-entry rows, whose largest entry means nothing."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from blindproof.quant.quantizer import QuantizedModel

if TYPE_CHECKING:
    from blindproof.quant.onnx_model import OnnxModel

WARN_BELOW = 0.95  # top-1 agreement (or, for embeddings and one-entry rows, mean cosine) below this: a warning
EMBEDDINGS = ("pooled", "hidden")  # program outputs that are vectors, not scores to pick from


@dataclass(frozen=True)
class AccuracyReport:
    """Integer vs float outputs on ``samples`` inputs (``rows`` output rows compared)."""

    samples: int
    rows: int
    top1: float | None  # fraction of rows whose argmax agrees (None for one-entry rows)
    embedding: bool  # an embedding output: the mean cosine decides
    cosine_mean: float
    cosine_min: float
    max_abs_error: float

    @property
    def agreement(self) -> float:
        """The figure the warning reads: top-1 agreement, else the mean cosine."""
        return self.top1 if self.top1 is not None and not self.embedding else self.cosine_mean

    @property
    def warning(self) -> str | None:
        """A line for people when the integer model agrees with the float model less than 95 % of the time."""
        if self.agreement >= WARN_BELOW:
            return None
        what = "top-1 agreement" if self.top1 is not None and not self.embedding else "mean cosine"
        return (f"warning: {what} {self.agreement:.1%} is under {WARN_BELOW:.0%}: the integer model (what proofs "
                "attest) often answers differently from the float model; calibrate on more typical data")

    def to_dict(self) -> dict:
        return asdict(self) | {"warning": self.warning}

    def lines(self) -> list[str]:
        """The report as lines of text (the warning apart: see :attr:`warning`)."""
        out = [f"integer vs float on {self.samples} calibration input(s), {self.rows} output rows:"]
        if self.top1 is not None and not self.embedding:
            out.append(f"  top-1 agreement {self.top1:.2%}")
        out.append(f"  cosine mean {self.cosine_mean:.5f}, min {self.cosine_min:.5f}; "
                   f"max |error| {self.max_abs_error:.4g}")
        return out


def _float_output(model: "torch.nn.Module | OnnxModel", x: np.ndarray) -> np.ndarray:
    if not isinstance(model, torch.nn.Module):  # an ONNX graph: evaluated in float64 by its own evaluator
        from blindproof.quant.onnx_eval import evaluate
        return evaluate(model, x)
    dtype = next(model.parameters()).dtype
    t = torch.from_numpy(x) if x.dtype.kind in "iu" else torch.from_numpy(x.astype(np.float64)).to(dtype)
    with torch.no_grad():
        y = model(t)
    return y.detach().to(torch.float64).cpu().numpy()


def accuracy_report(float_model: "torch.nn.Module | OnnxModel", qm: QuantizedModel, data,
                    batch: int = 16) -> AccuracyReport:
    """Compare ``qm`` with ``float_model`` (a torch module or an :class:`~blindproof.quant.onnx_model.OnnxModel`) on ``data`` (token ids ``(n, seq)`` or features ``(n, ...)``)."""
    x = data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    if x.shape[0] < 1:
        raise ValueError("no data to compare on")
    ys, refs = [], []
    for i in range(0, x.shape[0], batch):
        chunk = x[i:i + batch]
        ys.append(np.asarray(qm.forward(chunk), dtype=np.float64))
        refs.append(_float_output(float_model, chunk))
    y, ref = np.concatenate(ys), np.concatenate(refs)
    if y.shape != ref.shape:
        raise ValueError(f"integer output {y.shape} and float output {ref.shape} differ in shape")
    last = y.shape[-1] if y.ndim > 1 else 1
    a, b = y.reshape(-1, last), ref.reshape(-1, last)
    top1 = float(np.mean(a.argmax(1) == b.argmax(1))) if last > 1 else None
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = np.where(norms > 0, (a * b).sum(1) / np.where(norms > 0, norms, 1.0), 1.0)
    if last == 1:  # one number per row: the cosine of the whole column instead
        n = float(np.linalg.norm(a) * np.linalg.norm(b))
        cos = np.array([float((a * b).sum()) / n if n > 0 else 1.0])
    return AccuracyReport(int(x.shape[0]), int(a.shape[0]), top1, qm.spec.outputs[0] in EMBEDDINGS,
                          float(cos.mean()), float(cos.min()), float(np.abs(a - b).max()))
