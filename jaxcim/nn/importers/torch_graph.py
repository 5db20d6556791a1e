"""Import a PyTorch module: ``torch.export`` captures its ATen graph, every op maps to JAX.

    net = jc.nn.from_torch(model.eval(), torch.randn(2, 3, 32, 32), digital=("conv1", "fc"))
    res = jc.nn.evaluate(net, jc.presets.get("reram-neurram"), (x_nchw, y), key=key, n_instances=1000)
    model.load_state_dict(jc.nn.to_torch_state_dict(net))

Which ops go where (see `jaxcim.nn.importers.network`):

- crossbars (``net.layers``): ``linear`` (nn.Linear, the packed q/k/v and output projections of
  nn.MultiheadAttention), ``conv1d``/``conv2d``/``convolution`` (one matrix per group for grouped and
  depthwise convolutions), ``matmul``/``mm`` with a weight as the second operand, the input and hidden
  projections of ``lstm``/``gru`` (nn.LSTM, nn.GRU);
- digital: everything else in `TORCH_OPS` (normalization, activations, pooling, additions, softmax,
  attention scores, reshapes, embeddings).

The batch dimension is exported as dynamic, so the network accepts any batch size; other shapes are the
example's. Dropout is the identity and batch normalization uses the running statistics (inference mode),
also during `jaxcim.nn.fit`.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcim.nn.importers import ops
from jaxcim.nn.importers.network import (
    OP_TABLES,
    ImportedNetwork,
    LayerSpec,
    Ref,
    Step,
    conv_layer,
    linear_layer,
    resolve_digital,
)


def _batch_axis(x: Any) -> int:
    """The axis of node ``x``'s value that is the exported (symbolic) batch dimension; 0 when there is none or
    several (a time-major sequence inside nn.MultiheadAttention has it at 1)."""
    shape = getattr(getattr(x, "meta", {}).get("val"), "shape", ())
    axes = [i for i, d in enumerate(shape) if not isinstance(d, int)]
    return axes[0] if len(axes) == 1 else 0


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("jc.nn.from_torch needs PyTorch: pip install 'jaxcim[torch]'") from None
    return torch


# ----------------------------------------------------------------------------------------- digital ops


def _dtype(d: Any) -> Any:
    if d is None:
        return None
    return {"torch.float32": jnp.float32, "torch.float64": jnp.float64, "torch.float16": jnp.float16,
            "torch.bfloat16": jnp.bfloat16, "torch.int64": jnp.int32, "torch.int32": jnp.int32,
            "torch.bool": jnp.bool_, "torch.uint8": jnp.uint8}[str(d)]


def _dims(x: jax.Array, dims: Any) -> tuple[int, ...] | None:
    if dims is None or dims == ():
        return None
    return (dims,) if isinstance(dims, int) else tuple(dims)


def _reshape(x: jax.Array, shape: Sequence[int]) -> jax.Array:
    return jnp.reshape(x, tuple(int(s) for s in shape))


def _slice(x: jax.Array, dim: int = 0, start: int | None = None, end: int | None = None,
           step: int = 1) -> jax.Array:
    idx = [slice(None)] * x.ndim
    idx[dim] = slice(start, end, step)
    return x[tuple(idx)]


def _select(x: jax.Array, dim: int, index: int) -> jax.Array:
    return jnp.take(x, index, axis=dim)


def _flatten(x: jax.Array, start: int = 0, end: int = -1) -> jax.Array:
    start, end = start % max(x.ndim, 1), end % max(x.ndim, 1)
    return jnp.reshape(x, x.shape[:start] + (-1,) + x.shape[end + 1:])


def _unflatten(x: jax.Array, dim: int, sizes: Sequence[int]) -> jax.Array:
    dim = dim % x.ndim
    return jnp.reshape(x, x.shape[:dim] + tuple(sizes) + x.shape[dim + 1:])


def _squeeze(x: jax.Array, dims: Any = None) -> jax.Array:
    d = _dims(x, dims)
    if d is None:
        return jnp.squeeze(x)
    return jnp.squeeze(x, tuple(a for a in d if x.shape[a] == 1))


def _expand(x: jax.Array, size: Sequence[int], implicit: bool = False) -> jax.Array:
    lead = len(size) - x.ndim
    shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(size))
    return jnp.broadcast_to(x, shape)


def _split(x: jax.Array, size: Any, dim: int = 0) -> list[jax.Array]:
    if isinstance(size, int):
        size = [size] * (x.shape[dim] // size) + ([x.shape[dim] % size] if x.shape[dim] % size else [])
    return jnp.split(x, np.cumsum(size)[:-1].tolist(), axis=dim)


def _chunk(x: jax.Array, chunks: int, dim: int = 0) -> list[jax.Array]:
    return _split(x, -(-x.shape[dim] // chunks), dim)


def _batch_norm(x, w, b, mean, var, training, momentum, eps, cudnn=None):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - mean.reshape(shape)) / jnp.sqrt(var.reshape(shape) + eps)
    if w is not None:
        y = y * w.reshape(shape)
    return y + b.reshape(shape) if b is not None else y


def _bn_no_training(x, w, b, mean, var, momentum, eps):
    return (_batch_norm(x, w, b, mean, var, False, momentum, eps), None, None)


def _layer_norm(x, shape, w=None, b=None, eps=1e-5, cudnn=None):
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    mu = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(x - mu), axis=axes, keepdims=True)
    y = (x - mu) / jnp.sqrt(var + eps)
    if w is not None:
        y = y * w
    return y + b if b is not None else y


def _group_norm(x, groups, w=None, b=None, eps=1e-5, cudnn=None):
    n, c = x.shape[:2]
    g = x.reshape(n, groups, -1)
    mu = g.mean(-1, keepdims=True)
    var = jnp.square(g - mu).mean(-1, keepdims=True)
    y = ((g - mu) / jnp.sqrt(var + eps)).reshape(x.shape)
    shape = (1, c) + (1,) * (x.ndim - 2)
    if w is not None:
        y = y * w.reshape(shape)
    return y + b.reshape(shape) if b is not None else y


def _pool_args(n, kernel, stride, padding, dilation):
    kernel = (kernel,) * n if isinstance(kernel, int) else tuple(kernel)
    stride = kernel if stride in (None, (), []) else ((stride,) * n if isinstance(stride, int) else tuple(stride))
    padding = (padding,) * n if isinstance(padding, int) else tuple(padding)
    dilation = (dilation,) * n if isinstance(dilation, int) else tuple(dilation)
    return kernel, stride, [(p, p) for p in padding], dilation


def _max_pool(n):
    def f(x, kernel, stride=(), padding=0, dilation=1, ceil_mode=False):
        k, s, p, d = _pool_args(n, kernel, stride, padding, dilation)
        return ops.pool(x, k, s, p, d, "max", ceil_mode)
    return f


def _avg_pool(n):
    def f(x, kernel, stride=(), padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
        if divisor_override is not None:
            raise NotImplementedError("avg_pool with divisor_override")
        k, s, p, d = _pool_args(n, kernel, stride, padding, 1)
        return ops.pool(x, k, s, p, d, "avg", ceil_mode, count_include_pad)
    return f


def _gelu(x, approximate="none"):
    return jax.nn.gelu(x, approximate=approximate == "tanh")


def _softmax(x, dim, half=False, dtype=None):
    return jax.nn.softmax(x, axis=dim)


def _log_softmax(x, dim, half=False, dtype=None):
    return jax.nn.log_softmax(x, axis=dim)


def _sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    return ops.attention(q, k, v, attn_mask, is_causal, scale)


def _to(x, *args, dtype=None, **kw):
    for a in args:
        if "torch." in str(a):
            dtype = a
    return x if dtype is None else x.astype(_dtype(dtype))


def _create(fill):
    def f(size, *args, dtype=None, **kw):
        return jnp.full(tuple(size), fill, _dtype(dtype) or jnp.float32)
    return f


def _like(fill):
    def f(x, *args, dtype=None, **kw):
        return jnp.full(x.shape, fill, _dtype(dtype) or x.dtype)
    return f


def _mean(x, dims=None, keepdim=False, dtype=None):
    return jnp.mean(x, axis=_dims(x, dims), keepdims=keepdim)


def _sum(x, dims=None, keepdim=False, dtype=None):
    return jnp.sum(x, axis=_dims(x, dims), keepdims=keepdim)


def _identity(x, *args, **kw):
    return x


def _dropout(x, p=0.5, train=False):
    return x  # inference: dropout is the identity


TORCH_OPS: dict[str, Any] = {
    "add.Tensor": lambda a, b, alpha=1: a + alpha * b, "add.Scalar": lambda a, b, alpha=1: a + alpha * b,
    "sub.Tensor": lambda a, b, alpha=1: a - alpha * b, "sub.Scalar": lambda a, b, alpha=1: a - alpha * b,
    "rsub.Scalar": lambda a, b, alpha=1: b - alpha * a,
    "mul.Tensor": operator.mul, "mul.Scalar": operator.mul,
    "div.Tensor": lambda a, b, rounding_mode=None: a / b, "div.Scalar": operator.truediv,
    "neg.default": operator.neg, "pow.Tensor_Scalar": jnp.power, "pow.Tensor_Tensor": jnp.power,
    "sqrt.default": jnp.sqrt, "rsqrt.default": jax.lax.rsqrt, "exp.default": jnp.exp, "log.default": jnp.log,
    "abs.default": jnp.abs, "erf.default": jax.scipy.special.erf, "reciprocal.default": lambda x: 1 / x,
    "tanh.default": jnp.tanh, "sigmoid.default": jax.nn.sigmoid, "relu.default": jax.nn.relu,
    "relu_.default": jax.nn.relu, "gelu.default": _gelu, "silu.default": jax.nn.silu,
    "hardtanh.default": lambda x, lo=-1.0, hi=1.0: jnp.clip(x, lo, hi), "relu6.default": jax.nn.relu6,
    "hardswish.default": jax.nn.hard_swish, "hardsigmoid.default": jax.nn.hard_sigmoid,
    "leaky_relu.default": lambda x, s=0.01: jax.nn.leaky_relu(x, s),
    "elu.default": lambda x, a=1.0, *r: jax.nn.elu(x, a),
    "clamp.default": lambda x, lo=None, hi=None: jnp.clip(x, lo, hi),
    "softmax.int": _softmax, "_softmax.default": _softmax, "log_softmax.int": _log_softmax,
    "_log_softmax.default": _log_softmax,
    "mean.dim": _mean, "mean.default": _mean, "sum.dim_IntList": _sum, "sum.default": _sum,
    "amax.default": lambda x, dims=(), keepdim=False: jnp.max(x, axis=_dims(x, dims), keepdims=keepdim),
    "layer_norm.default": _layer_norm, "batch_norm.default": _batch_norm, "group_norm.default": _group_norm,
    "_native_batch_norm_legit_no_training.default": _bn_no_training,
    "dropout.default": _dropout, "feature_dropout.default": _dropout, "alpha_dropout.default": _dropout,
    "view.default": _reshape, "reshape.default": _reshape, "_unsafe_view.default": _reshape,
    "flatten.using_ints": _flatten, "unflatten.int": _unflatten,
    "transpose.int": jnp.swapaxes, "t.default": jnp.transpose,
    "permute.default": lambda x, dims: jnp.transpose(x, tuple(dims)),
    "contiguous.default": _identity, "clone.default": _identity, "alias.default": _identity,
    "detach.default": _identity, "lift_fresh_copy.default": _identity,
    "_to_copy.default": _to, "to.dtype": _to, "type_as.default": lambda x, y: x.astype(y.dtype),
    "squeeze.dim": _squeeze, "squeeze.dims": _squeeze, "squeeze.default": _squeeze,
    "unsqueeze.default": jnp.expand_dims, "select.int": _select, "slice.Tensor": _slice,
    "expand.default": _expand, "cat.default": lambda xs, dim=0: jnp.concatenate(xs, axis=dim),
    "stack.default": lambda xs, dim=0: jnp.stack(xs, axis=dim),
    "split.Tensor": _split, "split_with_sizes.default": _split, "chunk.default": _chunk,
    "unbind.int": lambda x, dim=0: [jnp.take(x, i, axis=dim) for i in range(x.shape[dim])],
    "repeat.default": lambda x, reps: jnp.tile(x, tuple(reps)),
    "max_pool1d.default": _max_pool(1), "max_pool2d.default": _max_pool(2),
    "avg_pool1d.default": _avg_pool(1), "avg_pool2d.default": _avg_pool(2),
    "adaptive_avg_pool1d.default": ops.adaptive_avg_pool, "adaptive_avg_pool2d.default": ops.adaptive_avg_pool,
    "linear.default": lambda x, w, b=None: jnp.matmul(x, w.T) + (0 if b is None else b),
    "matmul.default": jnp.matmul, "bmm.default": jnp.matmul, "mm.default": jnp.matmul,
    "baddbmm.default": lambda c, a, b, beta=1, alpha=1: beta * c + alpha * jnp.matmul(a, b),
    "scaled_dot_product_attention.default": _sdpa,
    "embedding.default": lambda w, idx, *a: jnp.take(w, idx, axis=0),
    "zeros.default": _create(0.0), "ones.default": _create(1.0),
    "full.default": lambda size, v, *a, dtype=None, **k: jnp.full(tuple(size), v, _dtype(dtype) or jnp.float32),
    "zeros_like.default": _like(0.0), "ones_like.default": _like(1.0),
    "arange.default": lambda end, *a, dtype=None, **k: jnp.arange(end, dtype=_dtype(dtype)),
    "arange.start": lambda start, end, *a, dtype=None, **k: jnp.arange(start, end, dtype=_dtype(dtype)),
    "where.self": jnp.where, "masked_fill.Scalar": lambda x, m, v: jnp.where(m, v, x),
    "sym_size.int": lambda x, d: x.shape[d],
    "getitem": operator.getitem, "mul": operator.mul, "add": operator.add, "sub": operator.sub,
    "floordiv": operator.floordiv, "truediv": operator.truediv,
    "layer": ops.call_layer, "recurrent": ops.recurrent,
}
"""ATen op (``name.overload``) -> JAX implementation of every op the torch importer runs digitally (and the
two weight-stationary entries ``layer``/``recurrent``, whose matrices are layers)."""

OP_TABLES["torch"] = TORCH_OPS

_WEIGHT_OPS = ("linear.default", "conv1d.default", "conv2d.default", "conv1d.padding", "conv2d.padding",
               "convolution.default", "matmul.default", "mm.default")
_RECURRENT_OPS = ("lstm.input", "gru.input")
_SKIP = ("_assert_tensor_metadata.default", "_assert_scalar.default", "sym_constrain_range_for_size.default")


# ----------------------------------------------------------------------------------------- capture


def _op_name(target: Any) -> str:
    if isinstance(target, str):
        return target
    name = getattr(target, "__name__", str(target))
    if hasattr(target, "_overloadpacket"):  # an OpOverload: aten.linear.default -> "linear.default"
        return f"{target._overloadpacket.__name__}.{target._overloadname}"
    return name


def _export(module: Any, example: tuple) -> Any:
    torch = _torch()
    dims = tuple({0: torch.export.Dim.AUTO} if isinstance(x, torch.Tensor) and x.ndim > 0 else None for x in example)
    try:
        return torch.export.export(module, example, dynamic_shapes=dims)
    except Exception:  # a model that fixes its batch size: export it as it is (the batch is then fixed)
        return torch.export.export(module, example)


class _Builder:
    """Walks an exported program and builds the steps, layers, params and buffers of an `ImportedNetwork`."""

    def __init__(self, ep: Any, digital: Sequence[str] | str):
        self.ep = ep
        self.state = {k: v.detach().cpu().numpy() for k, v in ep.state_dict.items()}
        self.state.update({k: v.detach().cpu().numpy() for k, v in getattr(ep, "constants", {}).items()
                           if hasattr(v, "detach")})
        self.placeholder: dict[str, tuple[str, str]] = {}  # node name -> (kind, source name)
        self.inputs: list[str] = []
        for spec in ep.graph_signature.input_specs:
            kind = spec.kind.name
            if kind == "USER_INPUT":
                self.inputs.append(spec.arg.name)
            elif kind == "PARAMETER":
                self.placeholder[spec.arg.name] = ("param", spec.target)
            elif kind in ("BUFFER", "CONSTANT_TENSOR"):
                self.placeholder[spec.arg.name] = ("buffer", spec.target)
            else:
                raise NotImplementedError(f"from_torch: input kind {kind} of {spec.arg.name!r} is not supported")
        self.steps: list[Step] = []
        self.specs: list[LayerSpec] = []
        self.layer_args: dict[str, dict] = {}
        self.used_as_weight: set[str] = set()
        self.digital = digital

    def ref(self, a: Any) -> Any:
        torch = _torch()
        if isinstance(a, torch.fx.Node):
            if a.name in self.placeholder:
                kind, target = self.placeholder[a.name]
                return Ref(target, kind)
            return Ref(a.name)
        if isinstance(a, list | tuple):
            return tuple(self.ref(x) for x in a)
        if isinstance(a, torch.dtype | torch.device | torch.layout | torch.memory_format):
            return str(a)
        return a

    def weight_name(self, node: Any) -> str | None:
        """The source parameter name if ``node`` is a parameter placeholder, else None."""
        torch = _torch()
        if isinstance(node, torch.fx.Node) and node.name in self.placeholder:
            return self.placeholder[node.name][1]
        return None

    def check_supported(self) -> None:
        bad = []
        for n in self.ep.graph.nodes:
            if n.op != "call_function":
                continue
            name = _op_name(n.target)
            if name not in TORCH_OPS and name not in _WEIGHT_OPS + _RECURRENT_OPS + _SKIP:
                bad.append(f"{name} (node {n.name!r}: {n.format_node()[:120]})")
        if bad:
            raise NotImplementedError("from_torch: unsupported op(s), nothing was computed: " + "; ".join(bad))

    def build(self) -> None:
        self.check_supported()
        for n in self.ep.graph.nodes:
            if n.op != "call_function":
                continue
            name = _op_name(n.target)
            if name in _SKIP:
                continue
            if name in _WEIGHT_OPS and self.weight_stationary(n, name):
                continue
            if name in _RECURRENT_OPS:
                self.recurrent(n, name)
                continue
            kwargs = tuple(sorted((k, self.ref(v)) for k, v in n.kwargs.items()
                                  if k not in ("device", "pin_memory", "layout", "memory_format")))
            self.steps.append(Step(n.name, name, self.ref(n.args), kwargs, n.name))

    # -- weight-stationary ops

    def weight_stationary(self, n: Any, name: str) -> bool:
        """Add a layer step for ``n`` if its weight is a parameter; False: a product of two activations."""
        args = list(n.args) + [None] * 9
        x, w = args[0], args[1]
        wname = self.weight_name(w)
        if wname is None:
            if name.startswith("conv"):
                raise NotImplementedError(f"from_torch: node {n.name!r} ({name}) convolves with a computed "
                                          "kernel; only parameter kernels are supported")
            return False  # a product with an activation: digital
        if wname in self.used_as_weight:
            raise NotImplementedError(f"from_torch: parameter {wname!r} is used by several matrix products "
                                      f"(node {n.name!r}); shared weights are not supported")
        self.used_as_weight.add(wname)
        w_arr = self.state[wname]
        bias = self.weight_name(args[2]) if name not in ("matmul.default", "mm.default") else None
        if name not in ("matmul.default", "mm.default") and args[2] is not None and bias is None:
            raise NotImplementedError(f"from_torch: node {n.name!r} ({name}) has a computed bias")
        lname = wname[: -len(".weight")] if wname.endswith(".weight") else wname.replace("_weight", "")
        if name == "linear.default":
            spec = LayerSpec(lname, wname, bias, "linear")
            self.layer_args[lname] = dict(kind="linear", kernel=w_arr.T, bias=bias)
        elif name in ("matmul.default", "mm.default"):
            if w_arr.ndim != 2:
                raise NotImplementedError(f"from_torch: node {n.name!r}: matmul with a {w_arr.ndim}-d weight")
            spec = LayerSpec(lname, wname, None, "matmul")
            self.layer_args[lname] = dict(kind="matmul", kernel=w_arr, bias=None)
        else:
            spec = self.conv_spec(n, name, args, lname, wname, bias, w_arr)
        self.specs.append(spec)
        kwargs = (("groups", spec.groups), ("kind", "conv" if spec.kind == "conv" else "linear"), ("name", lname))
        axis = _batch_axis(x) if spec.kind != "conv" else 0
        self.steps.append(Step(n.name, "layer", (self.ref(x),), kwargs + ((("batch_axis", axis),) if axis else ()),
                               n.name))
        return True

    def conv_spec(self, n, name, args, lname, wname, bias, w_arr) -> LayerSpec:
        nd = w_arr.ndim - 2
        if name == "convolution.default":
            stride, padding, dilation, transposed, _, groups = args[3:9]
            if transposed:
                raise NotImplementedError(f"from_torch: node {n.name!r}: transposed convolution is not supported")
        else:
            stride, padding, dilation, groups = args[3], args[4], args[5], args[6]
        stride = _ints(stride, nd, 1)
        dilation = _ints(dilation, nd, 1)
        groups = 1 if groups is None else int(groups)
        if isinstance(padding, str):
            pad = padding.upper()
        else:
            pad = tuple((p, p) for p in _ints(padding, nd, 0))
        self.layer_args[lname] = dict(kind="conv", kernel=np.moveaxis(w_arr, (0, 1), (-1, -2)), bias=bias,
                                      strides=stride, padding=pad, dilation=dilation, groups=groups)
        return LayerSpec(lname, wname, bias, "conv", groups)

    def recurrent(self, n: Any, name: str) -> None:
        x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first = n.args
        nd = 2 if bidirectional else 1
        per = 4 if has_biases else 2
        if len(params) != per * num_layers * nd:
            raise NotImplementedError(f"from_torch: node {n.name!r} ({name}): projections (proj_size) are "
                                      "not supported")
        names = []
        for j in range(num_layers * nd):
            p = [self.weight_name(q) for q in params[per * j: per * (j + 1)]]
            if any(q is None for q in p):
                raise NotImplementedError(f"from_torch: node {n.name!r}: recurrent weights must be parameters")
            pair = []
            for w, b in ((p[0], p[2] if has_biases else None), (p[1], p[3] if has_biases else None)):
                lname = w.replace("weight_", "")
                self.used_as_weight.add(w)
                self.layer_args[lname] = dict(kind="linear", kernel=self.state[w].T, bias=b)
                self.specs.append(LayerSpec(lname, w, b, "linear"))
                pair.append(lname)
            names.append(tuple(pair))
        cell = "lstm" if name == "lstm.input" else "gru"
        hx = self.ref(hx)
        h0, c0 = (hx[0], hx[1]) if cell == "lstm" else (hx, None)
        xin = self.ref(x)
        if batch_first:
            self.steps.append(Step(n.name + "_tm", "transpose.int", (xin, 0, 1), (), n.name))
            xin = Ref(n.name + "_tm")
        self.steps.append(Step(n.name + "_raw", "recurrent", (xin, h0, c0),
                               (("bidirectional", bool(bidirectional)), ("cell", cell), ("names", tuple(names))),
                               n.name))
        out = Ref(n.name + "_raw")
        parts = [Ref(n.name + "_y")] + [Ref(n.name + f"_s{i}") for i in range(1 if cell == "gru" else 2)]
        self.steps.append(Step(n.name + "_y0", "getitem", (out, 0), (), n.name))
        self.steps.append(Step(n.name + "_y", "transpose.int", (Ref(n.name + "_y0"), 0, 1), (), n.name)
                          if batch_first else Step(n.name + "_y", "alias.default", (Ref(n.name + "_y0"),), (), n.name))
        for i in range(len(parts) - 1):
            self.steps.append(Step(n.name + f"_s{i}", "getitem", (out, i + 1), (), n.name))
        self.steps.append(Step(n.name, "tuple", (tuple(parts),), (), n.name))


TORCH_OPS["tuple"] = lambda parts: parts


def _ints(v: Any, n: int, default: int) -> tuple[int, ...]:
    if v is None or v == [] or v == ():
        return (default,) * n
    if isinstance(v, int):
        return (v,) * n
    v = tuple(int(a) for a in v)
    return v * n if len(v) == 1 else v


def from_torch(module: Any, example_input: Any, *, digital: Sequence[str] | str = ()) -> ImportedNetwork:
    """Import a PyTorch module as a jaxcim network (an nnx module; see `jaxcim.nn.importers.torch_graph`).

    Args:
      module: a ``torch.nn.Module`` (put in eval mode: dropout off, batch norm on running statistics).
      example_input: a tensor (or a tuple of tensors) the module accepts, e.g. ``torch.randn(2, 3, 32, 32)``;
        dimension 0 is exported as a dynamic batch.
      digital: names of weight-stationary layers (torch module names, e.g. ``"conv1"``, ``"fc"``, or a prefix
        such as ``"layer1"``) to keep digital: `jaxcim.nn.analogize` and `jaxcim.nn.evaluate` leave them as
        they are.

    Returns:
      An `ImportedNetwork`: ``net(x)`` takes the source's inputs (NCHW images for a CNN) as JAX/numpy arrays.

    Raises:
      NotImplementedError: an op without a JAX mapping (names the op and the node) before anything runs.
    """
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    example = example_input if isinstance(example_input, tuple) else (example_input,)
    was_training = module.training
    module.eval()
    try:
        ep = _export(module, example)
    finally:
        module.train(was_training)
    b = _Builder(ep, digital)
    b.build()
    keep = resolve_digital(digital, list(b.layer_args))
    layers = {}
    for lname, a in b.layer_args.items():
        bias = b.state[a["bias"]] if a["bias"] is not None else None
        if a["kind"] != "conv":
            layers[lname] = linear_layer(a["kernel"], bias, lname in keep)
        elif a["groups"] == 1:
            layers[lname] = conv_layer(a["kernel"], bias, a["strides"], a["padding"], a["dilation"], lname in keep)
        else:
            g = a["groups"]
            ks, bs = np.split(a["kernel"], g, axis=-1), (np.split(bias, g) if bias is not None else [None] * g)
            for i in range(g):
                layers[f"{lname}#g{i}"] = conv_layer(ks[i], bs[i], a["strides"], a["padding"], a["dilation"],
                                                     lname in keep)
    taken = b.used_as_weight | {a["bias"] for a in b.layer_args.values() if a["bias"] is not None}
    params = {k: v for kind, k in b.placeholder.values() if kind == "param" and k not in taken
              for v in [b.state[k]]}
    buffers = {k: b.state[k] for kind, k in b.placeholder.values() if kind == "buffer"}
    out_node = next(n for n in ep.graph.nodes if n.op == "output")
    outs = b.ref(out_node.args[0])
    output = outs[0] if isinstance(outs, tuple) and len(outs) == 1 else outs
    return ImportedNetwork(layers, params, buffers, b.steps, b.inputs, output, b.specs, "torch", "torch")


def to_torch_state_dict(net: ImportedNetwork) -> dict[str, Any]:
    """The weights of ``net`` (trained in jaxcim, digital or analog layers) as a PyTorch state dict.

    ``module.load_state_dict(to_torch_state_dict(net))`` writes them back into the source module: the kernels
    of the weight-stationary layers (transposed back to PyTorch's layouts), the other parameters and buffers.
    """
    torch = _torch()
    if not isinstance(net, ImportedNetwork) or net.source != "torch":
        raise TypeError("to_torch_state_dict needs a network made by jc.nn.from_torch")
    out = {}
    for spec in net.specs:
        names = [spec.name] if spec.groups == 1 else [f"{spec.name}#g{g}" for g in range(spec.groups)]
        kernels = [np.asarray(net.layers[k].kernel[...]) for k in names]
        k = np.concatenate(kernels, axis=-1)
        if spec.kind == "linear":
            w = k.T
        elif spec.kind == "matmul":
            w = k
        else:
            w = np.moveaxis(k, (-1, -2), (0, 1))
        out[spec.weight] = torch.from_numpy(np.ascontiguousarray(w))
        if spec.bias is not None:
            out[spec.bias] = torch.from_numpy(np.concatenate([np.asarray(net.layers[k].bias[...]) for k in names]))
    for k, v in net.params.items():
        out[k] = torch.from_numpy(np.array(v[...]))
    for k, v in net.buffers.items():
        out[k] = torch.from_numpy(np.array(v[...]))
    return out


__all__ = ["TORCH_OPS", "from_torch", "to_torch_state_dict"]
