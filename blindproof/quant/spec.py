"""The integer program: op set and quantization spec (docs/quant.md states every op's semantics).

A `QuantSpec` is everything about an integer model except the weight values: architecture, the list of
ops in execution order, the fixed-point exponent and range of every tensor, the shape, dtype and scale
of every weight, and the public lookup tables (by generator parameters and digest). It serializes to
canonical JSON, whose BLAKE3 digest goes into the model commitment, so any change of a scale, shift,
range or table changes the hash.

Fixed point: an integer tensor `v` with exponent `e` stands for the real value `v * 2**-e`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import blake3
import numpy as np

SPEC_VERSION = 1
RESERVED_NAME_CHARS = ("/", "~", ":")  # derived names: witnesses, aux columns and masks, weights
ACC_BOUND = 1 << 29  # every integer in the program satisfies |v| < ACC_BOUND < p/2 (docs/quant.md, "The 2^29 bound")
QUOTIENT_BITS = 29  # a rescale's q·2^s + r lies in [-2^29, 2^29): a window of 2^30 < p, so q is unique mod p
INT8_MAX = 127  # weights: symmetric int8
INT16_MAX = (1 << 15) - 1  # activations: symmetric int16, so a product of two stays below 2^30
DTYPE_MAX = {"int8": INT8_MAX, "int16": INT16_MAX, "int32": ACC_BOUND - 1}  # largest |w| a weight may hold
FIELD_P = 15 * (1 << 27) + 1  # BabyBear, the proof field (zk.field.babybear.P)
EXP_DOMAIN_MAX = (1 << 16) - 1  # softmax: z = min(max − s, 2^16 − 1) indexes the exp table
SCORE_LO, SCORE_HI = -(1 << 28), (1 << 28) - 1  # softmax scores: a row spread below 2^29 (ops/softmax.py)
MEAN_D_MAX = (FIELD_P - 1) >> 16  # LayerNorm width: d·mean + mean_r spans d·2^16 values, fewer than p
CLAMP_WIDTH_MAX = FIELD_P - (1 << 30)  # a clamped range: hi − lo + 2^30 ≤ p (ops/base.Clamp, excesses < 2^29)
CLAMPED_KINDS = ("rescale", "add", "add_weight", "norm")  # ops whose output is clamp(·, lo, hi)


def check_exp_table(op: "Op", ts: "TableSpec") -> None:
    """A softmax's exp table must be the protocol's: ``exp_neg`` over ``[0, EXP_DOMAIN_MAX]``, the domain
    the reference indexes (``z = min(max − s, 2^16 − 1)``). A spec's own ``lo``/``hi`` are never used."""
    if ts.fn != "exp_neg" or ts.lo != 0 or ts.hi != EXP_DOMAIN_MAX:
        raise ValueError(f"op softmax -> {op.output}: the exp table {ts.name!r} must be exp_neg over "
                         f"[0, {EXP_DOMAIN_MAX}] (the protocol's domain), got {ts.fn} over [{ts.lo}, {ts.hi}]")


def quotient_bits(shift: int) -> int:
    """Bits ``k`` of a rescale quotient's window ``q ∈ [-2^k, 2^k)`` for a shift ``s`` (``k = 29 − max(s, 0)``).

    For ``s > 0`` the proof checks ``x + 2^(s-1) = q·2^s + r`` modulo ``p`` with ``0 ≤ r < 2^s``; with ``q``
    in this window ``q·2^s + r`` spans ``[-2^29, 2^29)``, 2^30 values, fewer than ``p``, so the pair is
    unique. The reference raises BoundError outside it. For ``s ≤ 0`` (``q = x·2^-s``, exact) the window
    is the integer model's bound ``|q| < 2^29``."""
    s = int(shift)
    if s > QUOTIENT_BITS:
        raise ValueError(f"rescale shift {s} > {QUOTIENT_BITS}: the quotient would always be 0")
    if s < -QUOTIENT_BITS:  # x·2^-s of any nonzero |x| < 2^29 leaves the bound (and int64 beyond -34)
        raise ValueError(f"rescale shift {s} < -{QUOTIENT_BITS}: the left shift would leave the 2^29 bound")
    return QUOTIENT_BITS - max(s, 0)


def norm_sq_bits(C: int, p: int = FIELD_P) -> int:
    """Largest ``a <= 29`` such that a norm's sum of squares ``S < 2^a`` keeps its proof sound for ``C``.

    The norm's division relation ``c*C + s//2 = n*s + r`` (with ``|c| <= s = isqrt(S)``) is proved in
    the field, so it implies the integer one only while ``2*(C + 1)*isqrt(2^a - 1) + 2 < p``. The
    reference raises BoundError from ``S >= 2^a`` on, so the integer program and its proof share one
    domain (docs/zk-ops-nonlinear.md)."""
    from math import isqrt

    for a in range(29, 0, -1):  # 29: S is a value of the program, so |S| < ACC_BOUND as well
        if 2 * (C + 1) * isqrt((1 << a) - 1) + 2 < p:
            return a
    raise ValueError(f"norm constant C = {C} is too large for a sound division")

# op kind -> number of tensor inputs (weights and tables are named in params, not inputs)
OP_ARITY: dict[str, int] = {
    "embed": 1,        # rows of a weight table indexed by token ids or by positions
    "linear": 1,       # x @ W^T (+ b): an accumulator
    "conv": 1,         # channel-last convolution by a weight (O, *kernel, C) (+ b): an accumulator
    "rescale": 1,      # clamp(round-half-up(x / 2^s)) or clamp(x * 2^-s) for s <= 0
    "add": 2,          # clamp(a + b)
    "add_weight": 1,   # clamp(a + w), w a weight vector broadcast over the last axis
    "mul": 2,          # a * b, exact
    "mul_weight": 1,   # a * w, w a weight vector broadcast over the last axis, exact
    "lookup": 1,       # T[clamp(x, lo, hi) - lo]
    "norm": 1,         # RMSNorm / LayerNorm core: centred, integer sqrt, division
    "split_heads": 1,  # (b, t, H*hd) -> (b, H, t, hd), relabelling only
    "merge_heads": 1,  # (b, H, t, hd) -> (b, t, H*hd), relabelling only
    "rope": 1,         # x1*C - x2*S, x1*S + x2*C with public tables: an accumulator
    "qk": 2,           # q k^T per head (grouped-query aware): an accumulator
    "softmax": 1,      # shifted exp by table, sum, division with remainder
    "pv": 2,           # p v per head: an accumulator
    "max_pool": 1,     # the max over each window (kernel, stride; no padding), channel-last
    "mean_pool": 1,    # round-half-up(sum over the middle axes (sequence, or spatial) / their size)
}


def canonical_json(obj: Any) -> str:
    """Canonical JSON: sorted keys, no whitespace, ASCII only (the form that is hashed)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _exp_to_json(e: int | tuple[int, ...]) -> int | list[int]:
    return list(e) if isinstance(e, tuple) else int(e)


def _exp_from_json(e: int | list[int]) -> int | tuple[int, ...]:
    return tuple(int(x) for x in e) if isinstance(e, list) else int(e)


@dataclass(frozen=True)
class TensorSpec:
    """An integer tensor of the program: exponent (per last-axis channel for accumulators) and range."""

    name: str
    exp: int | tuple[int, ...]
    lo: int
    hi: int
    role: str  # "input" | "activation" | "accumulator" | "index"

    def to_dict(self) -> dict:
        return {"name": self.name, "exp": _exp_to_json(self.exp), "lo": self.lo, "hi": self.hi, "role": self.role}

    @classmethod
    def from_dict(cls, d: dict) -> "TensorSpec":
        return cls(d["name"], _exp_from_json(d["exp"]), int(d["lo"]), int(d["hi"]), d["role"])


@dataclass(frozen=True)
class WeightSpec:
    """A committed weight tensor: shape, integer dtype and exponent (per output row for matrices)."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # "int8" | "int16" | "int32"
    exp: int | tuple[int, ...]

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "exp": _exp_to_json(self.exp)}

    @classmethod
    def from_dict(cls, d: dict) -> "WeightSpec":
        return cls(d["name"], tuple(int(x) for x in d["shape"]), d["dtype"], _exp_from_json(d["exp"]))


@dataclass(frozen=True)
class TableSpec:
    """A public lookup table T over the integer domain [lo, hi]: T[i] = round(f(x 2^-in_exp) 2^out_exp).

    `digest` is the BLAKE3 of the table's int64 little-endian bytes, so a verifier can regenerate
    the table and check it bit for bit.
    """

    name: str
    # "silu" | "gelu" | "gelu_tanh" | "tanh" | "sigmoid_c" | "logsigmoid_c" | "exp_neg" | "softcap" | "cos" | "sin"
    fn: str
    in_exp: int
    out_exp: int
    lo: int
    hi: int
    digest: str
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "fn": self.fn, "in_exp": self.in_exp, "out_exp": self.out_exp,
                "lo": self.lo, "hi": self.hi, "digest": self.digest, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, d: dict) -> "TableSpec":
        return cls(d["name"], d["fn"], int(d["in_exp"]), int(d["out_exp"]), int(d["lo"]), int(d["hi"]),
                   d["digest"], dict(d.get("params", {})))


@dataclass(frozen=True)
class Op:
    """One integer op: `kind` from OP_ARITY, tensor inputs by name, one output tensor, JSON params."""

    kind: str
    inputs: tuple[str, ...]
    output: str
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in OP_ARITY:
            raise ValueError(f"unknown op kind {self.kind!r}; known: {', '.join(OP_ARITY)}")
        if len(self.inputs) != OP_ARITY[self.kind]:
            raise ValueError(f"op {self.kind} -> {self.output} takes {OP_ARITY[self.kind]} inputs, "
                             f"got {len(self.inputs)}")
        # params hold JSON values only (tuples become lists), exactly as they are hashed
        object.__setattr__(self, "params", json.loads(canonical_json(self.params)))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "inputs": list(self.inputs), "output": self.output, "params": self.params}

    @classmethod
    def from_dict(cls, d: dict) -> "Op":
        return cls(d["kind"], tuple(d["inputs"]), d["output"], dict(d["params"]))


@dataclass(frozen=True)
class QuantSpec:
    """The whole integer program except the weight values."""

    arch: dict  # the float architecture (e.g. TransformerConfig.to_dict() plus "family")
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    ops: tuple[Op, ...]
    tensors: dict[str, TensorSpec]
    weights: dict[str, WeightSpec]
    tables: dict[str, TableSpec]
    version: int = SPEC_VERSION

    def __post_init__(self) -> None:
        known = set(self.inputs)
        for op in self.ops:
            for name in op.inputs:
                if name not in known:
                    raise ValueError(f"op {op.kind} -> {op.output} reads {name!r} before it is produced")
            if op.output in known:
                raise ValueError(f"tensor {op.output!r} is produced twice")
            known.add(op.output)
        missing = [n for n in known | set(self.outputs) if n not in self.tensors]
        if missing:
            raise ValueError(f"tensors without a TensorSpec: {missing[:5]}")
        for op in self.ops:
            for key, pool, what in (("weight", self.weights, "weight"), ("bias", self.weights, "weight"),
                                    ("table", self.tables, "table"), ("cos", self.tables, "table"),
                                    ("sin", self.tables, "table")):
                ref = op.params.get(key)
                if ref is not None and ref not in pool:
                    raise ValueError(f"op {op.kind} -> {op.output} names {what} {ref!r}, which the spec lacks")
        self._check_bias_shapes()
        self._check_names()
        self._check_domain()

    def _check_bias_shapes(self) -> None:
        """A bias is one value per output channel, shape ``(O,)`` exactly: an ``(O, 1)`` bias has the same
        multilinear variables, so the proof would add it per channel while the reference broadcast it
        per position (a hostile spec made the honest output unprovable and a different one verify)."""
        for op in self.ops:
            if op.kind in ("linear", "conv") and op.params.get("bias"):
                w, b = self.weights[op.params["weight"]].shape, self.weights[op.params["bias"]].shape
                if tuple(b) != (w[0],):
                    raise ValueError(f"op {op.kind} -> {op.output}: bias of shape {tuple(b)}, expected ({w[0]},) "
                                     f"(one value per output channel)")

    def _check_names(self) -> None:
        """Refuse names a proof could confuse (a third party's spec is hostile input): tensor names
        must not use the characters of derived names (``/`` witnesses, ``~`` aux columns and masks,
        ``:`` weights ``"w:<name>"`` and table columns), else an input named ``"w:<weight>"`` would be
        taken for that weight; every entry's own name must be its key (lookups are batched by table
        name, so two different tables under one name would be checked against one of them)."""
        if len(set(self.inputs)) != len(self.inputs) or len(set(self.outputs)) != len(self.outputs):
            raise ValueError("the program's inputs and outputs must each be named once")
        if set(self.inputs) & set(self.outputs):  # the statement would hold two values under one name
            raise ValueError(f"tensors {sorted(set(self.inputs) & set(self.outputs))} are both inputs and outputs")
        names = [*self.inputs, *(op.output for op in self.ops), *self.outputs, *self.tensors]
        for n in names:
            if not isinstance(n, str) or not n or any(c in n for c in RESERVED_NAME_CHARS):
                raise ValueError(f"tensor name {n!r} is empty or uses a reserved character "
                                 f"({' '.join(RESERVED_NAME_CHARS)})")
        for pool, what in ((self.tensors, "tensor"), (self.weights, "weight"), (self.tables, "table")):
            for key, entry in pool.items():
                if entry.name != key:
                    raise ValueError(f"{what} {key!r} names itself {entry.name!r}")
                if what != "tensor" and (not key or any(c in key for c in RESERVED_NAME_CHARS)):
                    raise ValueError(f"{what} name {key!r} is empty or uses a reserved character")

    def _check_domain(self) -> None:
        """Refuse a spec that makes a relation ambiguous mod p whatever the prover does (a third party's
        spec is hostile input): an empty range, a clamped range too wide for a
        unique clamp, a LayerNorm too wide for a unique mean, a norm constant too large for a unique
        division, an exp table other than the protocol's. Each error names the op and the bound."""
        for ts in self.tensors.values():
            if ts.lo > ts.hi:
                raise ValueError(f"tensor {ts.name!r}: empty range [{ts.lo}, {ts.hi}]")
        from blindproof.quant.functions import table_values  # (tables builds on this module)

        for tab in self.tables.values():  # regenerated (digest checked): every entry below the 2^29 bound
            try:
                vals = table_values(tab)
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"table {tab.name!r} cannot be regenerated: {exc}") from None
            if vals.size and int(np.abs(vals).max()) >= ACC_BOUND:
                raise ValueError(f"table {tab.name!r}: entries reach |{int(np.abs(vals).max())}| >= 2^29")
        for op in self.ops:
            ts = self.tensors[op.output]
            where = f"op {op.kind} -> {op.output}"
            if op.kind in CLAMPED_KINDS:
                if not ts.lo <= 0 <= ts.hi:
                    raise ValueError(f"{where}: a clamped output range must contain 0, got [{ts.lo}, {ts.hi}]")
                covers = ts.lo <= -(ACC_BOUND - 1) and ts.hi >= ACC_BOUND - 1  # the clamp is then the identity
                if ts.hi - ts.lo > CLAMP_WIDTH_MAX and not covers:
                    raise ValueError(f"{where}: clamped range [{ts.lo}, {ts.hi}] is wider than p − 2^30 = "
                                     f"{CLAMP_WIDTH_MAX}: the clamp would not be unique mod p")
            if op.kind == "rescale":
                for sh in (op.params["shift"] if isinstance(op.params["shift"], list) else [op.params["shift"]]):
                    quotient_bits(int(sh))  # ValueError beyond 29
            elif op.kind == "norm":
                p = op.params
                if p.get("kind") not in ("rms", "layer"):
                    raise ValueError(f"{where}: norm kind must be 'rms' or 'layer', got {p.get('kind')!r}")
                d, C, E = int(p["d"]), int(p["C"]), int(p["E"])
                if d < 1 or C < 1 or E < 1:
                    raise ValueError(f"{where}: d, C and E must be >= 1")
                a = norm_sq_bits(C)  # ValueError when C leaves no sound sum of squares
                if E >= 1 << a:  # the proof reads E mod p; the reference would raise on every input
                    raise ValueError(f"{where}: E = {E} is not below 2^{a}, the bound of the sum of squares")
                if p["kind"] == "layer" and d > MEAN_D_MAX:
                    raise ValueError(f"{where}: LayerNorm width d = {d} > {MEAN_D_MAX}: d·2^16 ≥ p, so the mean "
                                     f"window [-2^15, 2^15) no longer makes the mean unique mod p")
            elif op.kind == "embed":
                if op.params.get("index") not in ("tokens", "positions"):
                    raise ValueError(f"{where}: index must be 'tokens' or 'positions', got {op.params.get('index')!r}")
                ws = self.weights[op.params["weight"]]
                if len(ws.shape) != 2:
                    raise ValueError(f"{where}: the embedding table must be 2-D (rows, width), got {ws.shape}")
            elif op.kind == "softmax":
                check_exp_table(op, self.tables[op.params["table"]])
                frac = int(op.params["frac"])
                if not 0 <= frac <= 29:
                    raise ValueError(f"{where}: frac = {frac} outside [0, 29]")

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "arch": self.arch,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "ops": [op.to_dict() for op in self.ops],
            "tensors": {k: v.to_dict() for k, v in self.tensors.items()},
            "weights": {k: v.to_dict() for k, v in self.weights.items()},
            "tables": {k: v.to_dict() for k, v in self.tables.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> "QuantSpec":
        if d.get("version") != SPEC_VERSION:
            raise ValueError(f"unsupported quant spec version {d.get('version')!r} (expected {SPEC_VERSION})")
        return cls(
            arch=d["arch"],
            inputs=tuple(d["inputs"]),
            outputs=tuple(d["outputs"]),
            ops=tuple(Op.from_dict(o) for o in d["ops"]),
            tensors={k: TensorSpec.from_dict(v) for k, v in d["tensors"].items()},
            weights={k: WeightSpec.from_dict(v) for k, v in d["weights"].items()},
            tables={k: TableSpec.from_dict(v) for k, v in d["tables"].items()},
            version=d["version"],
        )

    def to_json(self) -> str:
        """Canonical JSON of the spec (the bytes that are hashed)."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "QuantSpec":
        return cls.from_dict(json.loads(text))

    def digest(self) -> str:
        """BLAKE3 hex digest of the canonical JSON; part of the model commitment."""
        return blake3.blake3(self.to_json().encode("ascii")).hexdigest()


def encode_input(spec: "QuantSpec", x: np.ndarray) -> dict[str, np.ndarray]:
    """A model input as the program's integer input: token ids pass through (integers, shape (batch,
    seq)); float features are rounded half up at the input's exponent and clipped to its range. The input
    is taken as the float model takes it: a graph that flattens it first gets it flattened, a convolution
    net's ``(batch, C, *spatial)`` is permuted channel-last, ``(batch, *spatial, C)``, as its program reads it."""
    from blindproof.quant.functions import round_half_up

    a = np.asarray(x)
    if spec.arch.get("flatten_input") and a.ndim > 2:  # a torch graph that flattens its input first
        a = a.reshape(a.shape[0], -1)
    if spec.arch.get("channel_last_input"):  # a convolution net: (batch, C, *spatial) -> (batch, *spatial, C)
        if a.ndim not in (3, 4):
            raise ValueError(f"a convolution net takes inputs (batch, channels, *positions), got shape {a.shape}")
        a = np.moveaxis(a, 1, -1)
    name = spec.inputs[0]
    ts = spec.tensors[name]
    if ts.role == "index":
        if a.dtype.kind not in "iu":
            raise TypeError(f"token ids must be integers, got {a.dtype}")
        if a.ndim != 2:
            raise ValueError(f"token ids must have shape (batch, seq), got {a.shape}")
        return {name: a.astype(np.int64)}
    if a.dtype.kind != "f":
        raise TypeError(f"features must be floating point, got {a.dtype}")
    return {name: np.clip(round_half_up(a * 2.0 ** ts.exp), ts.lo, ts.hi)}


def decode_output(spec: "QuantSpec", name: str, values: np.ndarray) -> np.ndarray:
    """An integer program tensor as float64 (``v · 2^-exp``, per last-axis channel where the exponent is)."""
    return np.asarray(values).astype(np.float64) * np.exp2(-np.asarray(spec.tensors[name].exp, dtype=np.float64))
