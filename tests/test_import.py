"""Import from PyTorch and ONNX: the imported network, run digitally (every layer digital, and the ideal
preset on crossbars), reproduces the source framework's outputs (PyTorch computes the reference)."""

import functools
import io
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxcim as jc

torch = pytest.importorskip("torch")
nn = torch.nn


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock (torchvision itself is not required)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    """torchvision.models.resnet18's architecture (11.2 M weights with 10 classes)."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        layers, cin = [], 64
        for i, c in enumerate((64, 128, 256, 512)):
            layers.append(nn.Sequential(BasicBlock(cin, c, 1 if i == 0 else 2), BasicBlock(c, c, 1)))
            cin = c
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _randomize_bn(model, gen):
    """Non-trivial running statistics, so batch normalization is really tested."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
            m.weight.data.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=gen))
            m.bias.data.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))


class Transformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(6, 16)
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1, batch_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, 2)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x)).mean(1))


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(6, 8, batch_first=True, bidirectional=True)
        self.gru = nn.GRU(16, 8, batch_first=True)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        y, _ = self.lstm(x)
        y, _ = self.gru(y)
        return self.head(y[:, -1])


class SmallCNN(nn.Module):
    """Conv1d, grouped and depthwise Conv2d, average pooling with ceil mode."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(2, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, stride=2, groups=8)
        self.grouped = nn.Conv2d(8, 4, 1, groups=2)
        self.c1d = nn.Conv1d(4, 4, 3, padding="same")
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        y = torch.nn.functional.avg_pool2d(torch.relu(self.c1(x)), 3, 2, 1, ceil_mode=True)
        y = self.grouped(torch.tanh(self.dw(y)))
        y = self.c1d(torch.flatten(y, 2)).mean(-1)
        return self.fc(y)


def _mlp():
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 32), nn.GELU(),
                         nn.Linear(32, 3))


def _models():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    resnet = ResNet18()
    _randomize_bn(resnet, g)
    return {
        "resnet18": (resnet, torch.randn(2, 3, 32, 32, generator=g)),
        "transformer": (Transformer(), torch.randn(2, 5, 6, generator=g)),
        "recurrent": (Recurrent(), torch.randn(2, 4, 6, generator=g)),
        "mlp": (_mlp(), torch.randn(3, 10, generator=g)),
        "cnn": (SmallCNN(), torch.randn(2, 2, 11, 11, generator=g)),
    }


MODELS = _models()


def _reference(name, batch=None):
    model, x = MODELS[name]
    if batch is not None:
        x = torch.randn((batch,) + tuple(x.shape[1:]), generator=torch.Generator().manual_seed(batch))
    model.eval()
    with torch.no_grad():
        return x.numpy(), model(x).numpy()


@functools.cache
def _imported(name):
    """One import per model for the whole file (torch.export is the slow part)."""
    model, x = MODELS[name]
    return jc.nn.from_torch(model.eval(), x)


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("name", list(MODELS))
def test_from_torch_matches_torch(name):
    net = _imported(name)
    x_np, ref = _reference(name)
    assert _rel(jax.jit(lambda v: net(v))(jnp.asarray(x_np)), ref) < 1e-5
    if name == "mlp":  # dynamic batch: another batch size, same network (ONNX: the transformer)
        x3, ref3 = _reference(name, batch=3)
        assert _rel(net(jnp.asarray(x3)), ref3) < 1e-5


def test_layers_on_crossbars_and_digital_choice():
    net = _imported("resnet18")
    convertible = [p for p, _ in jc.nn.convertible_layers(net)]
    # 17 3x3/7x7 convolutions, 3 downsampling 1x1 convolutions and the head
    assert len(convertible) == 21 and "layers/layer1.0.conv1" in convertible and "layers/fc" in convertible
    n_weights = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(nnx.state(net, nnx.Param)))
    assert n_weights > 11_000_000
    fresh = ResNet18()  # every weight and buffer (batch-norm statistics) goes back under its torch name
    fresh.load_state_dict(jc.nn.to_torch_state_dict(net))
    x_np, ref = _reference("resnet18")
    with torch.no_grad():
        np.testing.assert_array_equal(fresh.eval()(torch.from_numpy(x_np)).numpy(), ref)
    model, x = MODELS["mlp"]
    kept = jc.nn.from_torch(model.eval(), x, digital=("0", "5"))  # the first and the last layer
    assert [type(kept.layers[k]).__name__ for k in ("0", "3", "5")] == ["DigitalMatmul", "Linear", "DigitalMatmul"]
    analog = jc.nn.analogize(kept, jc.presets.get("ideal"))
    assert [p for p, _ in jc.nn.analog_layers(analog)] == ["layers/3"]
    with pytest.raises(ValueError, match="no weight-stationary layer named 'nope'"):
        jc.nn.from_torch(model, x, digital=("nope",))


def test_attention_projections_on_crossbars():
    net = _imported("transformer")
    names = set(net.layers.keys())
    assert {"encoder.layers.0.self_attn.in_proj", "encoder.layers.0.self_attn.out_proj",
            "encoder.layers.1.linear2", "embed", "head"} <= names
    assert len(names) == 10  # 4 per encoder layer + embed + head: the score products stay digital


def test_ideal_crossbars_match_torch_and_hwa_round_trip():
    """ideal preset (every matrix product on crossbars, no noise, 8-bit converters absent): the analog
    network equals PyTorch; hardware-aware fine-tuning in jaxcim writes back into the torch module."""
    model, _ = MODELS["mlp"]
    x_np, ref = _reference("mlp")
    net = _imported("mlp")
    analog = jc.nn.analogize(net, jc.presets.get("ideal"), mode="hwa", rngs=nnx.Rngs(params=0, noise=1))
    assert len(list(jc.nn.analog_layers(analog))) == 3
    graphdef, state = nnx.split(analog)
    assert _rel(jax.jit(lambda s, v: nnx.merge(graphdef, s)(v))(state, jnp.asarray(x_np)), ref) < 1e-5
    y = np.asarray(jnp.argmax(jnp.asarray(ref), -1), np.int32)
    res = jc.nn.evaluate(net, jc.presets.get("ideal"), (x_np, y), key=jax.random.key(0), n_instances=2)
    assert res.accuracies.shape == (2, 1) and np.all(res.accuracies == 1.0) and res.digital_accuracy == 1.0

    xt = np.random.default_rng(0).normal(size=(32, 10)).astype(np.float32)
    yt = (xt[:, 0] > 0).astype(np.int32)
    jc.nn.fit(analog, (xt, yt), key=jax.random.key(1), epochs=2, batch_size=16)
    trained = _mlp()
    trained.load_state_dict(jc.nn.to_torch_state_dict(analog))
    with torch.no_grad():
        ref2 = trained.eval()(torch.from_numpy(xt)).numpy()
    assert not np.allclose(trained[0].weight.detach().numpy(), model[0].weight.detach().numpy())
    digital = jc.nn.set_mode(nnx.clone(analog), "digital")
    assert _rel(jax.jit(lambda v: digital(v))(jnp.asarray(xt)), ref2) < 1e-5


def test_unsupported_op_is_named_before_compute():
    class Weird(nn.Module):
        def forward(self, x):
            return torch.cumsum(x, 1)

    with pytest.raises(NotImplementedError, match=r"cumsum.default \(node 'cumsum'"):
        jc.nn.from_torch(Weird(), torch.randn(2, 3))


# ----------------------------------------------------------------------------------------- ONNX

onnx = pytest.importorskip("onnx")


def _onnx_model(name):
    model, x = MODELS[name]
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the TorchScript exporter: the dynamo exporter (onnxscript) takes 15-30 s per model on a CPU
        torch.onnx.export(model.eval(), (x,), f, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "b"}})
    return onnx.load_from_string(f.getvalue())


@pytest.mark.parametrize("name", list(MODELS))
def test_from_onnx_matches_torch(name):
    net = jc.nn.from_onnx(_onnx_model(name))
    x_np, ref = _reference(name)
    assert _rel(jax.jit(lambda v: net(v))(jnp.asarray(x_np)), ref) < 1e-5
    if name == "transformer":
        x3, ref3 = _reference(name, batch=3)
        assert _rel(net(jnp.asarray(x3)), ref3) < 1e-5


def test_onnx_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no ONNX file"):
        jc.nn.from_onnx(tmp_path / "missing.onnx")
    h = onnx.helper
    node = h.make_node("Hardmax", ["x"], ["y"], name="hm")
    graph = h.make_graph([node], "g", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])],
                         [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3])])
    with pytest.raises(NotImplementedError, match=r"Hardmax \(node 'hm'\)"):
        jc.nn.from_onnx(h.make_model(graph))
