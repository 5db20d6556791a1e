"""Import an ONNX model by walking its graph: every node maps to JAX.

    net = jc.nn.from_onnx("resnet18.onnx", digital=("conv1",))

Which ops go where (see `jaxcim.nn.importers.network`):

- crossbars (``net.layers``): ``Conv`` with a constant kernel (one matrix per group), ``Gemm`` and ``MatMul``
  with a constant second operand, the input and hidden projections of ``LSTM``/``GRU``;
- digital: every other op in `ONNX_OPS`. Shape computations (``Shape``, ``Gather`` on shapes, ``Concat``,
  ...) are evaluated while tracing, in numpy, so reshapes see concrete sizes.

Layer names are the names of the weight initializers without a trailing ``.weight``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
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


@dataclasses.dataclass(frozen=True, eq=False)
class Const:
    """A small constant of the graph kept static (shapes, axes), hashable by value."""

    data: bytes
    dtype: str
    shape: tuple

    @staticmethod
    def of(a: np.ndarray) -> Const:
        a = np.array(a, order="C")  # not ascontiguousarray: it makes 0-d arrays 1-d
        return Const(a.tobytes(), a.dtype.str, a.shape)

    def array(self) -> np.ndarray:
        return np.frombuffer(self.data, np.dtype(self.dtype)).reshape(self.shape)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Const) and (self.data, self.dtype, self.shape) == (other.data, other.dtype,
                                                                                    other.shape)

    def __hash__(self) -> int:
        return hash((self.data, self.dtype, self.shape))


def _onnx():
    try:
        import onnx
        import onnx.numpy_helper
    except ImportError:
        raise ImportError("jc.nn.from_onnx needs the onnx package: pip install 'jaxcim[torch]'") from None
    return onnx


def _xp(*args: Any) -> Any:
    """numpy when every array argument is concrete (shape arithmetic at trace time), else jax.numpy."""
    return jnp if any(isinstance(a, jax.Array) for a in args) else np


def _arr(a: Any) -> Any:
    return a.array() if isinstance(a, Const) else a


def _ints(a: Any) -> list[int]:
    return [int(v) for v in np.asarray(_arr(a)).reshape(-1)]


def _binary(name: str):
    def f(a, b):
        a, b = _arr(a), _arr(b)
        return getattr(_xp(a, b), name)(a, b)
    return f


def _unary(fn_np, fn_jnp):
    def f(x):
        x = _arr(x)
        return fn_jnp(x) if isinstance(x, jax.Array) else fn_np(x)
    return f


def _reshape(x, shape, allowzero=0):
    x, shape = _arr(x), _ints(shape)
    if not allowzero:
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return _xp(x).reshape(x, shape)


def _axes(x, axes):
    return None if axes is None else tuple(int(a) % x.ndim for a in _ints(axes))


def _unsqueeze(x, axes=None, **attr):
    x = _arr(x)
    axes = _ints(axes if axes is not None else attr["axes_attr"])
    n = x.ndim + len(axes)
    for a in sorted(int(v) % n for v in axes):
        x = _xp(x).expand_dims(x, a)
    return x


def _squeeze(x, axes=None):
    x = _arr(x)
    ax = tuple(i for i, s in enumerate(x.shape) if s == 1) if axes is None else _axes(x, axes)
    return _xp(x).squeeze(x, ax)


def _slice(x, starts, ends, axes=None, steps=None):
    x = _arr(x)
    starts, ends = _ints(starts), _ints(ends)
    axes = list(range(len(starts))) if axes is None else _ints(axes)
    steps = [1] * len(starts) if steps is None else _ints(steps)
    idx = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
        big = 2 ** 62
        idx[a % x.ndim] = slice(s, None if e >= big else (e if e > -big else None), st)
    return x[tuple(idx)]


def _gather(x, idx, axis=0):
    x, idx = _arr(x), _arr(idx)
    return _xp(x, idx).take(x, idx, axis=axis)


def _concat(*xs, axis=0):
    xs = [_arr(v) for v in xs]
    return _xp(*xs).concatenate([v if v.ndim else v.reshape(1) for v in xs], axis=axis)


def _shape(x, start=0, end=None):
    return np.asarray(_arr(x).shape[start:end], np.int64)


def _cast(x, to):
    x = _arr(x)
    dt = {1: np.float32, 6: np.int32, 7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64}[to]
    if isinstance(x, jax.Array):
        return x.astype(jnp.int32 if dt is np.int64 else dt)
    return np.asarray(x).astype(dt)


def _reduce_mean(x, axes=None, keepdims=1, **attr):
    x = _arr(x)
    axes = axes if axes is not None else attr.get("axes_attr")
    return _xp(x).mean(x, axis=_axes(x, axes), keepdims=bool(keepdims))


def _reduce_sum(x, axes=None, keepdims=1, **attr):
    x = _arr(x)
    axes = axes if axes is not None else attr.get("axes_attr")
    return _xp(x).sum(x, axis=_axes(x, axes), keepdims=bool(keepdims))


def _layer_norm(x, w, b=None, axis=-1, epsilon=1e-5, stash_type=1):
    axes = tuple(range(axis % x.ndim, x.ndim))
    mu = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(x - mu), axis=axes, keepdims=True)
    y = (x - mu) / jnp.sqrt(var + epsilon) * w
    return y + b if b is not None else y


def _batch_norm(x, w, b, mean, var, epsilon=1e-5, momentum=0.9, training_mode=0):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean.reshape(shape)) / jnp.sqrt(var.reshape(shape) + epsilon) * w.reshape(shape) + \
        b.reshape(shape)


def _pool_attrs(x, kernel_shape, strides=None, pads=None, dilations=None, auto_pad="NOTSET"):
    n = len(kernel_shape)
    strides = tuple(strides or (1,) * n)
    dilations = tuple(dilations or (1,) * n)
    if auto_pad not in ("NOTSET", "VALID"):
        raise NotImplementedError(f"pooling with auto_pad={auto_pad}")
    pads = tuple(pads or (0,) * (2 * n))
    return tuple(kernel_shape), strides, [(pads[i], pads[i + n]) for i in range(n)], dilations


def _max_pool(x, kernel_shape, strides=None, pads=None, dilations=None, ceil_mode=0, auto_pad="NOTSET",
              storage_order=0):
    k, s, p, d = _pool_attrs(x, kernel_shape, strides, pads, dilations, auto_pad)
    return ops.pool(x, k, s, p, d, "max", bool(ceil_mode))


def _avg_pool(x, kernel_shape, strides=None, pads=None, dilations=None, ceil_mode=0, auto_pad="NOTSET",
              count_include_pad=0):
    k, s, p, d = _pool_attrs(x, kernel_shape, strides, pads, dilations, auto_pad)
    return ops.pool(x, k, s, p, d, "avg", bool(ceil_mode), bool(count_include_pad))


def _flatten(x, axis=1):
    x = _arr(x)
    lead = int(np.prod(x.shape[:axis]))
    return _xp(x).reshape(x, (lead, -1))


def _matmul(a, b):
    return jnp.matmul(_arr(a), _arr(b))


def _gemm(a, b, c=None, alpha=1.0, beta=1.0, transA=0, transB=0):
    a, b = (a.T if transA else a), (b.T if transB else b)
    y = alpha * jnp.matmul(a, b)
    return y + beta * c if c is not None else y


def _split(x, split=None, axis=0, num_outputs=None, **attr):
    x = _arr(x)
    sizes = _ints(split) if split is not None else attr.get("split_attr")
    if sizes is None:
        n = num_outputs
        sizes = [-(-x.shape[axis] // n)] * n
        sizes[-1] = x.shape[axis] - sum(sizes[:-1])
    return _xp(x).split(x, np.cumsum(sizes)[:-1].tolist(), axis=axis)


def _constant_of_shape(shape, value=None):
    v = np.zeros(1, np.float32) if value is None else _arr(value)
    return np.full(_ints(shape), v.reshape(-1)[0], v.dtype)


def _expand(x, shape):
    x, shape = _arr(x), _ints(shape)
    out = np.broadcast_shapes(x.shape, tuple(shape))
    return _xp(x).broadcast_to(x, out)


def _clip(x, lo=None, hi=None):
    return jnp.clip(x, None if lo is None else _arr(lo), None if hi is None else _arr(hi))


def _transpose(x, perm=None):
    x = _arr(x)
    return _xp(x).transpose(x, perm)


def _range(start, limit, delta):
    return np.arange(_arr(start).item(), _arr(limit).item(), _arr(delta).item())


def _where(c, a, b):
    c, a, b = _arr(c), _arr(a), _arr(b)
    return _xp(c, a, b).where(c, a, b)


ONNX_OPS: dict[str, Any] = {
    "Identity": lambda x: _arr(x), "Dropout": lambda x, *a, **k: x, "Constant": lambda value: value,
    "Add": _binary("add"), "Sub": _binary("subtract"), "Mul": _binary("multiply"), "Div": _binary("divide"),
    "Pow": _binary("power"), "Mod": _binary("mod"), "Equal": _binary("equal"), "Less": _binary("less"),
    "Greater": _binary("greater"), "Max": _binary("maximum"), "Min": _binary("minimum"),
    "Sqrt": _unary(np.sqrt, jnp.sqrt), "Exp": _unary(np.exp, jnp.exp), "Log": _unary(np.log, jnp.log),
    "Neg": _unary(np.negative, jnp.negative), "Abs": _unary(np.abs, jnp.abs),
    "Reciprocal": _unary(np.reciprocal, jnp.reciprocal),
    "Relu": jax.nn.relu, "Sigmoid": jax.nn.sigmoid, "Tanh": jnp.tanh, "Erf": jax.scipy.special.erf,
    "Gelu": lambda x, approximate="none": jax.nn.gelu(x, approximate=approximate == "tanh"),
    "LeakyRelu": lambda x, alpha=0.01: jax.nn.leaky_relu(x, alpha), "Clip": _clip,
    "HardSigmoid": lambda x, alpha=0.2, beta=0.5: jnp.clip(alpha * x + beta, 0, 1),
    "Softmax": lambda x, axis=-1: jax.nn.softmax(x, axis=axis),
    "LogSoftmax": lambda x, axis=-1: jax.nn.log_softmax(x, axis=axis),
    "LayerNormalization": _layer_norm, "BatchNormalization": _batch_norm,
    "MaxPool": _max_pool, "AveragePool": _avg_pool,
    "GlobalAveragePool": lambda x: jnp.mean(x, axis=tuple(range(2, x.ndim)), keepdims=True),
    "GlobalMaxPool": lambda x: jnp.max(x, axis=tuple(range(2, x.ndim)), keepdims=True),
    "Flatten": _flatten, "Reshape": _reshape, "Transpose": _transpose, "Shape": _shape, "Gather": _gather,
    "Unsqueeze": _unsqueeze, "Squeeze": _squeeze, "Slice": _slice, "Concat": _concat, "Cast": _cast,
    "ReduceMean": _reduce_mean, "ReduceSum": _reduce_sum, "Split": _split, "Expand": _expand,
    "ConstantOfShape": _constant_of_shape, "Range": _range, "Where": _where,
    "MatMul": _matmul, "Gemm": _gemm, "layer": ops.call_layer, "recurrent": ops.recurrent,
    "onnx_rnn_out": lambda res, nd: (jnp.transpose(res[0].reshape(res[0].shape[:2] + (nd, -1)), (0, 2, 1, 3)),
                                     *res[1:]),
    "getitem": lambda x, i: x[i],
}
"""ONNX op type -> JAX implementation of every op the ONNX importer runs digitally (``layer`` and
``recurrent`` are the weight-stationary entries)."""

OP_TABLES["onnx"] = ONNX_OPS

_STATIC_LIMIT = 64
"""Constants with at most this many elements, or of integer type, stay static (shapes, axes, scalars)."""


class _Builder:
    def __init__(self, model: Any):
        onnx = _onnx()
        self.onnx = onnx
        g = model.graph
        self.graph = g
        self.init = {t.name: onnx.numpy_helper.to_array(t) for t in g.initializer}
        self.inputs = [i.name for i in g.input if i.name not in self.init]
        self.steps: list[Step] = []
        self.layer_args: dict[str, dict] = {}
        self.specs: list[LayerSpec] = []
        self.taken: set[str] = set()

    def ref(self, name: str) -> Any:
        if name == "":
            return None
        if name in self.init:
            a = self.init[name]
            if a.dtype.kind in "iub" or a.size <= 1:
                return Const.of(a)
            return Ref(name, "param")
        return Ref(name)

    def attrs(self, node: Any) -> dict[str, Any]:
        out = {}
        for a in node.attribute:
            v = self.onnx.helper.get_attribute_value(a)
            if isinstance(v, bytes):
                v = v.decode()
            elif isinstance(v, list):
                v = tuple(x.decode() if isinstance(x, bytes) else x for x in v)
            elif hasattr(v, "dims"):  # a TensorProto (Constant, ConstantOfShape)
                v = self.onnx.numpy_helper.to_array(v)
            out[a.name] = v
        return out

    def check_supported(self) -> None:
        bad = [f"{n.op_type} (node {n.name!r})" for n in self.graph.node
               if n.op_type not in ONNX_OPS and n.op_type not in ("Conv", "LSTM", "GRU")
               or n.domain not in ("", "ai.onnx")]
        if bad:
            raise NotImplementedError("from_onnx: unsupported op(s), nothing was computed: " + "; ".join(bad))

    def build(self) -> None:
        self.check_supported()
        for n in self.graph.node:
            attrs = self.attrs(n)
            if n.op_type == "Constant":
                self.constant(n, attrs)
            elif n.op_type == "Identity" and n.input[0] in self.init:  # exporters alias repeated weights
                self.init[n.output[0]] = self.init[n.input[0]].copy()
            elif n.op_type == "Conv" and n.input[1] in self.init:
                self.conv(n, attrs)
            elif n.op_type == "Gemm" and n.input[1] in self.init:
                self.gemm(n, attrs)
            elif n.op_type == "MatMul" and n.input[1] in self.init and self.init[n.input[1]].ndim == 2:
                self.add_layer(n, n.input[1], None, self.init[n.input[1]], "matmul", n.input[0])
            elif n.op_type in ("LSTM", "GRU"):
                self.rnn(n, attrs)
            elif n.op_type == "Conv":
                raise NotImplementedError(f"from_onnx: Conv node {n.name!r} has a computed kernel")
            else:
                for k in ("axes", "split"):  # older opsets: attributes that became inputs
                    if k in attrs:
                        attrs[k + "_attr"] = attrs.pop(k)
                kwargs = tuple(sorted((k, _static(v)) for k, v in attrs.items()))
                self.emit(n, n.op_type, tuple(self.ref(i) for i in n.input), kwargs)

    def emit(self, n: Any, op: str, args: tuple, kwargs: tuple = ()) -> None:
        if len(n.output) == 1:
            self.steps.append(Step(n.output[0], op, args, kwargs, n.name))
            return
        tmp = f"{n.name or n.output[0]}#out"
        self.steps.append(Step(tmp, op, args, kwargs, n.name))
        for i, o in enumerate(n.output):
            if o:
                self.steps.append(Step(o, "getitem", (Ref(tmp), i), (), n.name))

    def constant(self, n: Any, attrs: dict) -> None:
        v = attrs.get("value")
        if v is None:
            v = np.asarray(next(iter(attrs.values())))
        v = np.asarray(v)
        if v.dtype.kind in "iub" or v.size <= _STATIC_LIMIT:
            self.steps.append(Step(n.output[0], "Constant", (), (("value", Const.of(v)),), n.name))
        else:
            self.init[n.output[0]] = v
            self.steps.append(Step(n.output[0], "Identity", (Ref(n.output[0], "param"),), (), n.name))

    def add_layer(self, n, wname, bname_or_arr, kernel, kind, x, **conv) -> None:
        if wname in self.taken:
            raise NotImplementedError(f"from_onnx: initializer {wname!r} is used by several matrix products "
                                      f"(node {n.name!r}); shared weights are not supported")
        self.taken.add(wname)
        lname = wname[: -len(".weight")] if wname.endswith(".weight") else wname
        bias = bname_or_arr
        if isinstance(bias, str):
            self.taken.add(bias)
            bias = self.init[bias]
        self.layer_args[lname] = dict(kind=kind, kernel=kernel, bias=bias, **conv)
        self.specs.append(LayerSpec(lname, wname, None, kind, conv.get("groups", 1)))
        self.steps.append(Step(n.output[0], "layer", (self.ref(x),),
                               (("groups", conv.get("groups", 1)), ("kind", "conv" if kind == "conv" else "linear"),
                                ("name", lname)), n.name))

    def conv(self, n: Any, a: dict) -> None:
        w = self.init[n.input[1]]
        nd = w.ndim - 2
        auto = a.get("auto_pad", "NOTSET")
        if auto in ("SAME_UPPER", "VALID", "SAME_LOWER"):
            pad = {"SAME_UPPER": "SAME", "VALID": "VALID", "SAME_LOWER": "SAME_LOWER"}[auto]
        else:
            p = a.get("pads", (0,) * (2 * nd))
            pad = tuple((p[i], p[i + nd]) for i in range(nd))
        bias = n.input[2] if len(n.input) > 2 and n.input[2] else None
        if bias is not None and bias not in self.init:
            raise NotImplementedError(f"from_onnx: Conv node {n.name!r} has a computed bias")
        self.add_layer(n, n.input[1], bias, np.moveaxis(w, (0, 1), (-1, -2)), "conv", n.input[0],
                       strides=tuple(a.get("strides", (1,) * nd)), padding=pad,
                       dilation=tuple(a.get("dilations", (1,) * nd)), groups=int(a.get("group", 1)))

    def gemm(self, n: Any, a: dict) -> None:
        b = self.init[n.input[1]]
        kernel = (b.T if a.get("transB", 0) else b) * a.get("alpha", 1.0)
        c = n.input[2] if len(n.input) > 2 and n.input[2] else None
        if c is not None and c not in self.init:
            raise NotImplementedError(f"from_onnx: Gemm node {n.name!r} has a computed C operand")
        bias = None if c is None else (self.init[c] * a.get("beta", 1.0)).reshape(-1)
        if bias is not None:
            self.taken.add(c)
        x = n.input[0]
        if a.get("transA", 0):
            self.steps.append(Step(n.output[0] + "#A", "Transpose", (self.ref(x),), (), n.name))
            x = n.output[0] + "#A"
        self.add_layer(n, n.input[1], bias, kernel, "linear", x)

    def rnn(self, n: Any, a: dict) -> None:
        cell = n.op_type.lower()
        direction = a.get("direction", "forward")
        if direction == "reverse" or a.get("layout", 0) or "activations" in a or "clip" in a:
            raise NotImplementedError(f"from_onnx: {n.op_type} node {n.name!r}: only the default activations, "
                                      "layout 0 and forward/bidirectional directions are supported")
        if cell == "gru" and not a.get("linear_before_reset", 0):
            raise NotImplementedError(f"from_onnx: GRU node {n.name!r} needs linear_before_reset=1 (PyTorch's GRU)")
        inp = list(n.input) + [""] * 8
        w, r = self.init.get(inp[1]), self.init.get(inp[2])
        if w is None or r is None or (inp[3] and inp[3] not in self.init) or inp[4]:
            raise NotImplementedError(f"from_onnx: {n.op_type} node {n.name!r}: W, R, B must be initializers "
                                      "and sequence_lens is not supported")
        nd, hidden = w.shape[0], r.shape[-1]
        g = 4 if cell == "lstm" else 3
        bias = self.init[inp[3]] if inp[3] else np.zeros((nd, 2 * g * hidden), np.float32)
        # ONNX gate orders (i, o, f, c) and (z, r, h) -> PyTorch's (i, f, g, o) and (r, z, n)
        order = [0, 2, 3, 1] if cell == "lstm" else [1, 0, 2]

        def reorder(m):
            return np.concatenate([np.split(m, g, axis=0)[k] for k in order], axis=0)

        names = []
        for d in range(nd):
            pair = []
            for tag, mat, b in (("W", w[d], bias[d, : g * hidden]), ("R", r[d], bias[d, g * hidden:])):
                lname = f"{n.name or n.output[0]}.{tag}{'_reverse' if d else ''}"
                self.layer_args[lname] = dict(kind="linear", kernel=reorder(mat).T, bias=reorder(b))
                self.specs.append(LayerSpec(lname, inp[1 if tag == "W" else 2], None, "onnx-rnn"))
                pair.append(lname)
            names.append(tuple(pair))
        self.taken |= {inp[1], inp[2], inp[3]}
        x = self.ref(inp[0])
        zeros = f"{n.output[0] or n.name}#h0"
        self.steps.append(Step(zeros, "rnn_zeros", (x,), (("shape", (nd, hidden)),), n.name))
        h0 = self.ref(inp[5]) if inp[5] else Ref(zeros)
        c0 = (self.ref(inp[6]) if inp[6] else Ref(zeros)) if cell == "lstm" else None
        raw = f"{n.output[0] or n.name}#raw"
        self.steps.append(Step(raw, "recurrent", (x, h0, c0), (("bidirectional", nd == 2), ("cell", cell),
                                                                ("names", tuple(names))), n.name))
        fixed = raw + "#onnx"
        self.steps.append(Step(fixed, "onnx_rnn_out", (Ref(raw), nd), (), n.name))
        for i, o in enumerate(n.output):
            if o:
                self.steps.append(Step(o, "getitem", (Ref(fixed), i), (), n.name))


ONNX_OPS["rnn_zeros"] = lambda x, shape: jnp.zeros((shape[0], x.shape[1], shape[1]), x.dtype)


def _static(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return Const.of(v)
    if isinstance(v, list):
        return tuple(v)
    return v


def from_onnx(model: Any, *, digital: Sequence[str] | str = ()) -> ImportedNetwork:
    """Import an ONNX model as a jaxcim network (an nnx module; see `jaxcim.nn.importers.onnx_graph`).

    Args:
      model: a path to a ``.onnx`` file or an ``onnx.ModelProto``.
      digital: layer names (weight initializer names without ``.weight``, or a prefix such as ``"layer1"``)
        to keep digital.

    Returns:
      An `ImportedNetwork` taking the graph's inputs, in order, and returning its output (or a tuple).

    Raises:
      FileNotFoundError: no such file. NotImplementedError: an op without a JAX mapping (names the op and the
      node), before anything runs.
    """
    onnx = _onnx()
    if isinstance(model, str | Path):
        if not Path(model).is_file():
            raise FileNotFoundError(f"from_onnx: no ONNX file at {model}")
        model = onnx.load(str(model))
    if not isinstance(model, onnx.ModelProto):
        raise TypeError(f"model must be a path or an onnx.ModelProto, got {type(model).__name__}")
    b = _Builder(model)
    b.build()
    keep = resolve_digital(digital, list(b.layer_args))
    layers = {}
    for lname, a in b.layer_args.items():
        if a["kind"] != "conv":
            layers[lname] = linear_layer(a["kernel"], a["bias"], lname in keep)
            continue
        g = a["groups"]
        ks = np.split(a["kernel"], g, axis=-1)
        bs = np.split(a["bias"], g) if a["bias"] is not None else [None] * g
        for i in range(g):
            key = lname if g == 1 else f"{lname}#g{i}"
            layers[key] = conv_layer(ks[i], bs[i], a["strides"], a["padding"], a["dilation"], lname in keep)
    params = {k: v for k, v in b.init.items() if k not in b.taken and v.dtype.kind == "f" and v.size > 1}
    outs = tuple(Ref(o.name) for o in model.graph.output)
    return ImportedNetwork(layers, params, {}, b.steps, b.inputs, outs[0] if len(outs) == 1 else outs, b.specs,
                           "onnx", "onnx")


__all__ = ["ONNX_OPS", "from_onnx"]
