"""Run deployed models: input checks, one forward of the shipped parts, and request batching.

All torch work happens on one dedicated thread, so the event loop stays responsive and models are
never run concurrently. Concurrent ``infer`` calls for the same deployment, input shape and start
position are concatenated along the batch dimension and run as one forward.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from dataclasses import dataclass, field

import torch

from blindproof.models.serialize import LoadedModel
from blindproof.models.transformer import KVCache


class BadInputError(ValueError):
    """An input tensor that does not fit the deployed model (shape, dtype, range, position)."""


def pick_device(requested: str | None = None) -> str:
    """``requested`` if given, else ``cuda`` when present, else ``cpu``."""
    if requested:
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {requested!r} requested but CUDA is not available")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def _param_dtype(model: torch.nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def check_input(loaded: LoadedModel, x: torch.Tensor, start: int, cache_len: int | None = None) -> None:
    """Raise BadInputError unless ``x`` is what the deployed parts take at position ``start``."""
    desc = loaded.description
    if desc["kind"] == "mlp":
        want = _param_dtype(loaded.model)
        if x.dtype != want:
            raise BadInputError(f"MLP input must be {want}, got {x.dtype}")
        if x.dim() != 2 or x.shape[1] != desc["dims"][0] or x.shape[0] < 1:
            raise BadInputError(f"MLP input must have shape (batch, {desc['dims'][0]}), got {tuple(x.shape)}")
        if start:
            raise BadInputError("an MLP has no positions; start must be 0")
        return
    cfg = desc["config"]
    if "embed" in desc["parts"]:
        if x.dtype not in (torch.int64, torch.int32):
            raise BadInputError(f"this deployment embeds tokens: input must be int64 or int32 ids, got {x.dtype}")
        if x.dim() != 2:
            raise BadInputError(f"token ids must have shape (batch, seq), got {tuple(x.shape)}")
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= cfg["vocab_size"]):
            raise BadInputError(f"token ids must lie in [0, {cfg['vocab_size']})")
    else:
        want = _param_dtype(loaded.model)
        if x.dtype != want:
            raise BadInputError(f"hidden states must be {want}, got {x.dtype}")
        width = cfg["d_model"] + cfg.get("input_extra", 0)  # a harmless input expansion widens the input
        if x.dim() != 3 or x.shape[2] != width:
            raise BadInputError(f"hidden states must have shape (batch, seq, {width}), "
                                f"got {tuple(x.shape)}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise BadInputError(f"input needs at least one row and one position, got {tuple(x.shape)}")
    if start < 0:
        raise BadInputError(f"start must be non-negative, got {start}")
    if cache_len is not None and start != cache_len:
        raise BadInputError(f"start {start} does not follow the session's {cache_len} cached positions")
    if start + x.shape[1] > cfg["max_seq"]:
        raise BadInputError(f"positions up to {start + x.shape[1]} exceed the model's max_seq {cfg['max_seq']}")


@torch.inference_mode()
def forward(loaded: LoadedModel, x: torch.Tensor, start: int = 0, cache: KVCache | None = None) -> torch.Tensor:
    """Run the parts of the model that were deployed (embed?, blocks, head?) on ``x``."""
    model, desc = loaded.model, loaded.description
    device = next(model.parameters()).device
    x = x.to(device)
    if desc["kind"] == "mlp":
        out = model(x)
    else:
        h = model.embed_tokens(x, start) if "embed" in desc["parts"] else x
        h = model.run_blocks(h, start, cache)
        out = model.head(h) if "head" in desc["parts"] else h
    return out.to("cpu")


@dataclass
class _Pending:
    x: torch.Tensor
    future: asyncio.Future = field(repr=False)


class Executor:
    """The torch thread plus a batcher for stateless forwards.

    Batching is opportunistic: a call that finds the torch thread idle runs at once (after the current
    event-loop tick, so calls arriving together still share a forward); calls that arrive while a batch
    runs wait and are grouped when it ends. ``max_wait_s > 0`` additionally holds a new group that long.
    """

    def __init__(self, max_batch_rows: int = 64, max_wait_s: float = 0.0) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="blindproof-torch")
        self.max_batch_rows = max_batch_rows
        self.max_wait_s = max_wait_s
        self._groups: dict[tuple, tuple[LoadedModel, int, list[_Pending]]] = {}
        self._inflight = 0
        self.batches_run = 0
        self.rows_run = 0

    async def run(self, fn, *args):
        """Run ``fn(*args)`` on the torch thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def infer(self, dep_id: str, loaded: LoadedModel, x: torch.Tensor, start: int) -> torch.Tensor:
        """One stateless forward, batched with concurrent calls of the same deployment/shape/start."""
        key = (dep_id, id(loaded), tuple(x.shape[1:]), x.dtype, start)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        if key not in self._groups:
            self._groups[key] = (loaded, start, [])
            if self.max_wait_s > 0:
                loop.call_later(self.max_wait_s, self._flush, key)
            else:
                loop.call_soon(self._flush_if_idle, key)
        group = self._groups[key][2]
        group.append(_Pending(x, fut))
        if sum(p.x.shape[0] for p in group) >= self.max_batch_rows:
            self._flush(key)
        return await fut

    def _flush_if_idle(self, key: tuple) -> None:
        if self._inflight == 0:
            self._flush(key)

    def _flush(self, key: tuple) -> None:
        entry = self._groups.pop(key, None)
        if entry is None:
            return
        loaded, start, group = entry
        group = [p for p in group if not p.future.cancelled()]  # callers that gave up
        if group:
            self._inflight += 1
            asyncio.ensure_future(self._run_group(group, loaded, start))

    async def _run_group(self, group: list[_Pending], loaded: LoadedModel, start: int) -> None:
        def work() -> list[torch.Tensor]:
            xs = [p.x for p in group]
            out = forward(loaded, xs[0] if len(xs) == 1 else torch.cat(xs), start)
            return list(out.split([x.shape[0] for x in xs]))
        try:
            outs = await self.run(work)
        except Exception as exc:  # hand the error to every caller of the batch
            for p in group:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        finally:
            self._inflight -= 1
            if self._inflight == 0 and self.max_wait_s == 0:
                for key in list(self._groups):  # what queued up while this batch ran
                    self._flush(key)
        self.batches_run += 1
        self.rows_run += sum(p.x.shape[0] for p in group)
        for p, out in zip(group, outs):
            if not p.future.done():
                p.future.set_result(out)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
