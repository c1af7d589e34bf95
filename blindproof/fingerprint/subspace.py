"""Harmless subspaces at a model's input: directions that leave the output unchanged.

Global spaces (any magnitude): the null space of the model's affine prefix (Linear, Conv as a matrix or
patch by patch, pooling by averaging, flatten, ...), extended by LayerNorm's per-group mean direction when
the prefix ends in a LayerNorm. Local spaces (for one input x): the walk continues through ReLU (dead
units drop out) and max-pooling (non-maximal entries drop out), which widens the space; such a direction
is harmless for magnitudes up to the distance at which the first unit or pool winner changes, which
``max_magnitude`` computes exactly from the piecewise-linear structure.

All analysis runs in float64 on copies of the layers.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from blindproof.fingerprint.linalg import null_space
from blindproof.fingerprint.nets import AddPosition, PatchTokens
from blindproof.models.mlp import MLP

_AFFINE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d,
           nn.AdaptiveAvgPool2d, nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.BatchNorm1d,
           nn.BatchNorm2d, PatchTokens, AddPosition)
_PIECEWISE = (nn.ReLU, nn.MaxPool2d)
DEFAULT_MAX_DENSE = 8192  # input sizes above this use the patch structure (a dense matrix would be n x n)


def model_layers(model: nn.Module | Sequence[nn.Module]) -> list[nn.Module]:
    """The model as a flat list of layers (nn.Sequential, blindproof's MLP, or a list of modules)."""
    if isinstance(model, MLP):
        out: list[nn.Module] = []
        for i, lin in enumerate(model.layers):
            out.append(lin)
            if i < len(model.layers) - 1:
                out.append(nn.ReLU())
        return out
    if isinstance(model, nn.Sequential) or isinstance(model, (list, tuple)):
        out = []
        for m in model:
            out.extend(model_layers(m) if isinstance(m, nn.Sequential) else [m])
        return out
    if isinstance(model, nn.Module):
        raise TypeError(f"cannot walk a {type(model).__name__}: pass an nn.Sequential, blindproof's MLP or a "
                        "list of layers")
    raise TypeError(f"expected a torch module or a list of modules, got {type(model).__name__}")


def _is_affine(layer: nn.Module) -> bool:
    if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)) and layer.training:
        return False  # batch statistics couple the samples
    return isinstance(layer, _AFFINE)


def _float64(layers: Sequence[nn.Module]) -> list[nn.Module]:
    return [copy.deepcopy(m).double().eval() for m in layers]


def _linear_part(layer: nn.Module, t: torch.Tensor) -> torch.Tensor:
    """The linear part of an affine layer applied to a batch of tangents: layer(t) - layer(0)."""
    return layer(t) - layer(torch.zeros_like(t[:1]))


def _centre_groups(rows: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    """Remove each LayerNorm group's mean from tangents (batch, ..., *normalized_shape)."""
    dims = tuple(range(-len(norm.normalized_shape), 0))
    return rows - rows.mean(dim=dims, keepdim=True)


class HarmlessSpace:
    """A linear space of input directions that leave a model's output unchanged.

    ``kind`` is "global" (any magnitude) or "local" (at input ``at``, up to ``max_magnitude``).
    """

    input_shape: tuple[int, ...]
    kind: str
    at: torch.Tensor | None
    description: str

    @property
    def dim(self) -> int:
        """Dimension of the space."""
        raise NotImplementedError

    def sample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``count`` random unit directions (float64, shape (count, *input_shape)), Gaussian in the space."""
        raise NotImplementedError

    def project_out(self, x: torch.Tensor) -> torch.Tensor:
        """x minus its component in the space (what a server that knows the space can do to probes)."""
        raise NotImplementedError

    def max_magnitude(self, direction: torch.Tensor) -> float:
        """Largest alpha for which x + alpha*direction is provably harmless (inf for a global space)."""
        return math.inf


@dataclass(eq=False)
class DenseSpace(HarmlessSpace):
    """A space given by an orthonormal basis (k, n) over the flattened input."""

    basis: torch.Tensor
    input_shape: tuple[int, ...]
    kind: str = "global"
    at: torch.Tensor | None = None
    description: str = ""
    _radius: Callable[[torch.Tensor], float] | None = field(default=None, repr=False)

    @property
    def dim(self) -> int:
        return int(self.basis.shape[0])

    def sample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.dim == 0:
            raise ValueError("the harmless space is empty: this model has no harmless directions here")
        c = torch.randn((count, self.dim), generator=generator, dtype=torch.float64)
        d = c @ self.basis
        d = d / d.norm(dim=1, keepdim=True)
        return d.reshape(count, *self.input_shape)

    def project_out(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1).to(torch.float64)
        out = flat - (flat @ self.basis.T) @ self.basis
        return out.reshape(x.shape).to(x.dtype)

    def max_magnitude(self, direction: torch.Tensor) -> float:
        return math.inf if self._radius is None else self._radius(direction)


@dataclass(eq=False)
class PatchSpace(HarmlessSpace):
    """Direct sum of one small space per non-overlapping conv patch (never materialised as n x n).

    ``patch_basis`` (k, c*kh*kw) is orthonormal and shared by every patch; ``free`` marks input entries no
    patch reads (a remainder strip), which are harmless on their own.
    """

    patch_basis: torch.Tensor
    input_shape: tuple[int, ...]  # (c, h, w)
    kernel: tuple[int, int]
    free: torch.Tensor  # bool (c, h, w)
    kind: str = "global"
    at: torch.Tensor | None = None
    description: str = ""

    @property
    def grid(self) -> tuple[int, int]:
        return self.input_shape[1] // self.kernel[0], self.input_shape[2] // self.kernel[1]

    @property
    def dim(self) -> int:
        gh, gw = self.grid
        return int(self.patch_basis.shape[0]) * gh * gw + int(self.free.sum())

    def _to_image(self, patches: torch.Tensor) -> torch.Tensor:
        """(batch, c*kh*kw, gh*gw) patch columns -> (batch, c, h, w), zero on the free strip."""
        c, h, w = self.input_shape
        kh, kw = self.kernel
        gh, gw = self.grid
        img = F.fold(patches, (gh * kh, gw * kw), self.kernel, stride=self.kernel)
        return F.pad(img, (0, w - gw * kw, 0, h - gh * kh))

    def _patches(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.kernel
        gh, gw = self.grid
        return F.unfold(x[:, :, :gh * kh, :gw * kw], self.kernel, stride=self.kernel)

    def sample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.dim == 0:
            raise ValueError("the harmless space is empty: this model has no harmless directions here")
        gh, gw = self.grid
        k = self.patch_basis.shape[0]
        coef = torch.randn((count, gh * gw, k), generator=generator, dtype=torch.float64)
        img = self._to_image((coef @ self.patch_basis).transpose(1, 2))
        free = torch.randn((count, *self.input_shape), generator=generator, dtype=torch.float64) * self.free
        d = (img + free).reshape(count, -1)
        return (d / d.norm(dim=1, keepdim=True)).reshape(count, *self.input_shape)

    def project_out(self, x: torch.Tensor) -> torch.Tensor:
        x64 = x.to(torch.float64)
        p = self._patches(x64)  # (b, ckk, L)
        comp = self.patch_basis.T @ (self.patch_basis @ p)
        out = x64 - self._to_image(comp) - x64 * self.free
        return out.to(x.dtype)


def harmless_space(model: nn.Module | Sequence[nn.Module], input_shape: Sequence[int], at: torch.Tensor | None = None,
                   depth: int = 0, rtol: float | None = None, max_dense: int = DEFAULT_MAX_DENSE) -> HarmlessSpace:
    """Harmless space of a model at its input (per-sample shape ``input_shape``).

    depth 0 gives the global space (valid at any magnitude, no ``at`` needed). depth d >= 1 walks through
    d piecewise-linear layers (ReLU, MaxPool2d) at the input ``at`` and returns the local space there.
    The walk always stops at the first layer it cannot treat as affine or piecewise linear; a LayerNorm at
    that point contributes its mean direction.
    """
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s <= 0 for s in shape):
        raise ValueError(f"input_shape must be positive sizes, got {input_shape}")
    if depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth}")
    if depth > 0 and at is None:
        raise ValueError("a local space (depth >= 1) needs the input `at` it is computed for")
    layers = model_layers(model)
    if not layers:
        raise ValueError("the model has no layers")
    n = math.prod(shape)
    if n > max_dense:
        if depth > 0:
            raise ValueError(f"local spaces need a dense Jacobian; input size {n} exceeds max_dense={max_dense}")
        return _patch_space(layers, shape, rtol)
    return _dense_space(layers, shape, at, depth, rtol)


def _dense_space(layers: list[nn.Module], shape: tuple[int, ...], at: torch.Tensor | None, depth: int,
                 rtol: float | None) -> DenseSpace:
    layers64 = _float64(layers)
    n = math.prod(shape)
    x = None
    if at is not None:
        x = torch.as_tensor(at, dtype=torch.float64).reshape(1, *shape)
    tangents = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    value = x
    passed, used = 0, []
    with torch.no_grad():
        for i, layer in enumerate(layers64):
            if _is_affine(layer):
                tangents = _linear_part(layer, tangents)
                value = layer(value) if value is not None else None
            elif isinstance(layer, _PIECEWISE) and passed < depth:
                tangents, value = _piecewise_step(layer, tangents, value)
                passed += 1
            else:
                break
            used.append(type(layers[i]).__name__)
        else:
            layer = None
        stop, walked = layer, len(used)
        if isinstance(stop, nn.LayerNorm):
            tangents = _centre_groups(tangents, stop)
            used.append("LayerNorm(mean)")
    if passed < depth:
        raise ValueError(f"asked for depth {depth} but the model has only {passed} piecewise-linear layers "
                         "before its first unsupported layer")
    jac = tangents.reshape(n, -1).T.numpy()  # (m, n)
    basis = torch.from_numpy(null_space(jac, rtol))
    desc = " -> ".join(used)
    if depth == 0:
        return DenseSpace(basis, shape, "global", None, desc)
    walk = layers64[:walked]
    return DenseSpace(basis, shape, "local", x.reshape(shape).clone(), desc,
                      _radius=lambda d: _line_radius(walk, x, d, depth))


def _piecewise_step(layer: nn.Module, tangents: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(layer, nn.ReLU):
        mask = (value > 0).to(tangents.dtype)
        return tangents * mask, torch.relu(value)
    pooled, idx = _maxpool(layer, value)
    return _gather_pool(tangents, idx), pooled


def _maxpool(layer: nn.MaxPool2d, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return F.max_pool2d(value, layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                        ceil_mode=layer.ceil_mode, return_indices=True)


def _gather_pool(tangents: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Tangents of a max-pool: each output copies the tangent of its winning input."""
    b, c, h, w = tangents.shape
    flat = tangents.reshape(b, c, h * w)
    i = idx.reshape(1, c, -1).expand(b, -1, -1)
    return flat.gather(2, i).reshape(b, c, *idx.shape[-2:])


def _line_radius(layers64: list[nn.Module], x: torch.Tensor, direction: torch.Tensor, depth: int) -> float:
    """First alpha > 0 at which a ReLU sign or a max-pool winner changes along x + alpha * direction."""
    d = torch.as_tensor(direction, dtype=torch.float64).reshape(x.shape)
    value, tangent, radius, passed = x, d, math.inf, 0
    with torch.no_grad():
        for layer in layers64:
            if _is_affine(layer):
                value, tangent = layer(value), _linear_part(layer, tangent)
            elif isinstance(layer, nn.ReLU) and passed < depth:
                radius = min(radius, _relu_crossing(value, tangent))
                mask = (value > 0).to(tangent.dtype)
                value, tangent = torch.relu(value), tangent * mask
                passed += 1
            elif isinstance(layer, nn.MaxPool2d) and passed < depth:
                radius = min(radius, _pool_crossing(layer, value, tangent))
                pooled, idx = _maxpool(layer, value)
                value, tangent = pooled, _gather_pool(tangent, idx)
                passed += 1
            else:
                break
    return radius


def _relu_crossing(z: torch.Tensor, t: torch.Tensor) -> float:
    active = z > 0
    # an active unit dies when it falls to 0; a dead (or zero) unit wakes when it rises above 0
    hit = torch.where(active & (t < 0), z / -t, torch.where(~active & (t > 0), -z / t, torch.full_like(z, math.inf)))
    return float(hit.min()) if hit.numel() else math.inf


def _pool_crossing(layer: nn.MaxPool2d, v: torch.Tensor, t: torch.Tensor) -> float:
    k, s = layer.kernel_size, layer.stride
    if layer.padding not in (0, (0, 0)) or layer.dilation not in (1, (1, 1)):
        raise ValueError("local spaces through MaxPool2d support no padding or dilation")
    vu = F.unfold(v, k, stride=s)  # (1, c*k*k, L)
    tu = F.unfold(t, k, stride=s)
    c = v.shape[1]
    vu, tu = vu.reshape(c, -1, vu.shape[-1]), tu.reshape(c, -1, tu.shape[-1])
    win = vu.argmax(dim=1, keepdim=True)
    vm, tm = vu.gather(1, win), tu.gather(1, win)
    gap, rate = vm - vu, tu - tm
    hit = torch.where(rate > 0, gap / rate, torch.full_like(gap, math.inf))
    hit = hit.scatter(1, win, math.inf)
    return float(hit.min())


def _patch_space(layers: list[nn.Module], shape: tuple[int, ...], rtol: float | None) -> PatchSpace:
    conv = layers[0]
    if not isinstance(conv, nn.Conv2d) or len(shape) != 3:
        raise ValueError(f"input size {math.prod(shape)} is too large for a dense analysis and the first layer is "
                         f"not a Conv2d on (c, h, w) inputs; pass a larger max_dense")
    k = tuple(conv.kernel_size)
    if tuple(conv.stride) != k or tuple(conv.padding) != (0, 0) or tuple(conv.dilation) != (1, 1) or conv.groups != 1:
        raise ValueError("large inputs are analysed patch by patch, which needs a non-overlapping conv "
                         "(stride == kernel, no padding, dilation 1, groups 1); pass a larger max_dense instead")
    w = conv.weight.detach().to(torch.float64).reshape(conv.out_channels, -1)
    # Layers that act per token (tokens, position) keep each patch's outputs in one LayerNorm group.
    i, used = 1, ["Conv2d(patch)"]
    while i < len(layers) and isinstance(layers[i], (PatchTokens, AddPosition, nn.Identity, nn.Dropout)):
        used.append(type(layers[i]).__name__)
        i += 1
    if i < len(layers) and isinstance(layers[i], nn.LayerNorm) and tuple(layers[i].normalized_shape) == (w.shape[0],) \
            and any(isinstance(m, PatchTokens) for m in layers[1:i]):
        w = w - w.mean(dim=0, keepdim=True)
        used.append("LayerNorm(mean)")
    basis = torch.from_numpy(null_space(w.numpy(), rtol))
    c, h, wd = shape
    free = torch.ones(shape, dtype=torch.bool)
    free[:, :(h // k[0]) * k[0], :(wd // k[1]) * k[1]] = False
    return PatchSpace(basis, shape, k, free, "global", None, " -> ".join(used))


@dataclass(frozen=True)
class Certificate:
    """Measured output change along harmless directions, against rounding level and random directions.

    ``rounding_bound`` is what rounding the probe to ``dtype`` alone can cause:
    ``slack * eps * (|x| + alpha) * gain``, with ``gain`` the model's measured output change per unit input
    change along random directions at alpha = 1. A direction is certified when its change stays below it.
    """

    alphas: tuple[float, ...]
    harmless_change: tuple[float, ...]  # max |f(x + a d) - f(x)| over directions and outputs, per alpha
    random_change: tuple[float, ...]  # the same for random unit directions
    rounding_bound: tuple[float, ...]
    gain: float
    dtype: str
    directions: int

    @property
    def ratio(self) -> tuple[float, ...]:
        """Harmless change over random-direction change, per alpha."""
        return tuple(h / r if r > 0 else (0.0 if h == 0 else math.inf)
                     for h, r in zip(self.harmless_change, self.random_change))

    @property
    def passed(self) -> bool:
        """True when every harmless change is at rounding level."""
        return all(h <= b for h, b in zip(self.harmless_change, self.rounding_bound))


def certify(model: nn.Module, space: HarmlessSpace, x: torch.Tensor, alphas: Sequence[float] = (1.0, 10.0, 100.0, 1000.0),
            directions: int = 8, dtype: torch.dtype = torch.float32, slack: float = 64.0,
            generator: torch.Generator | None = None) -> Certificate:
    """Run the model on x + alpha * d for harmless unit directions d and report the output change.

    For a local space each direction's magnitude is capped at half its exact radius.
    """
    x = torch.as_tensor(x)
    if tuple(x.shape[1:]) != space.input_shape:
        raise ValueError(f"x must have shape (batch, {space.input_shape}), got {tuple(x.shape)}")
    if space.kind == "local" and not torch.allclose(x.to(torch.float64), space.at.expand_as(x).to(torch.float64)):
        raise ValueError("a local space can only be certified at the input it was computed for")
    eps = torch.finfo(dtype).eps
    gen = generator or torch.Generator().manual_seed(0)
    m = copy.deepcopy(model).to(dtype).eval()
    d = space.sample(directions, gen)
    r = torch.randn(d.shape, generator=gen, dtype=torch.float64)
    r = r / r.reshape(directions, -1).norm(dim=1).reshape(-1, *[1] * len(space.input_shape))
    caps = torch.tensor([space.max_magnitude(di) for di in d], dtype=torch.float64) / 2
    x64 = x.to(torch.float64)
    xnorm = float(x64.reshape(x.shape[0], -1).norm(dim=1).max())

    def change(dirs: torch.Tensor, a: float) -> float:
        worst = 0.0
        for j in range(directions):
            mag = min(a, float(caps[j]))
            worst = max(worst, float((m((x64 + mag * dirs[j]).to(dtype)) - base).abs().max()))
        return worst

    with torch.no_grad():
        base = m(x.to(dtype))
        unit = min(1.0, float(caps.min()))
        gain = change(r, unit) / unit
        harm = [change(d, a) for a in alphas]
        rand = [change(r, a) for a in alphas]
    bound = [slack * eps * (xnorm + min(a, float(caps.max()))) * gain for a in alphas]
    return Certificate(tuple(float(a) for a in alphas), tuple(harm), tuple(rand), tuple(bound), gain,
                       str(dtype).replace("torch.", ""), directions)
