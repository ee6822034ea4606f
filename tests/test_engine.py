"""The define-by-run engine: the tape, call() layers and subclassed models, tracking,
nodes with several outputs and keyword arguments, masks and errors."""

import numpy as np
import pytest
from harness import check_layer

import xpnet
from xpnet import keras
from xpnet import ops
from xpnet.keras import layers


class Linear(keras.layers.Layer):
    """The keras.io guide's layer: build + call over ops, no backward."""

    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                 initializer="random_normal")
        self.b = self.add_weight(shape=(self.units,), initializer="random_normal")

    def call(self, inputs):
        return ops.tanh(ops.matmul(inputs, self.w) + self.b)


class Block(keras.layers.Layer):
    """Layers held alone, in a list and in a dict; ops between them."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.first = layers.Dense(4, activation="tanh")
        self.stack = [Linear(4), layers.Dense(4)]
        self.heads = {"a": layers.Dense(2), "b": Linear(2)}

    def call(self, x):
        h = self.first(x)
        for layer in self.stack:
            h = layer(h) * 0.5 + h
        return ops.concatenate([self.heads["a"](h), ops.square(self.heads["b"](h))], axis=-1)


def test_call_layer_passes_the_harness(backend):
    check_layer(backend, Linear, {"units": 3}, input_shape=(4, 5),
                expected_output_shape=(4, 3), expected_weights={"variable_0": (5, 3),
                                                                 "variable_1": (3,)})


def test_composite_call_layer_passes_the_harness(backend):
    layer = check_layer(backend, Block, {}, input_shape=(3, 5), expected_output_shape=(3, 4))
    assert len(layer.weights) == 10  # every nested weight: 5 layers of kernel and bias


def test_lambda_passes_the_harness(backend):
    check_layer(backend, layers.Lambda, {"function": lambda x: ops.sin(x) * x},
                input_shape=(2, 3), expected_output_shape=(2, 3))


def test_tracking_trainable_and_weights_order():
    block = Block()
    block(np.ones((2, 5), np.float32))
    names = [v.path.split("/")[0] for v in block.weights]
    assert names[:2] == [block.first.name] * 2  # assignment order: first, stack, heads
    block.stack[1].trainable = False
    assert len(block.trainable_weights) == len(block.weights) - 2
    block.trainable = False
    assert block.trainable_weights == [] and not block.stack[0].trainable


def test_tape_semantics():
    x = np.array([1.0, 2.0, 3.0])
    w = keras.Variable(np.array([0.5, -1.0, 2.0]))
    unused = keras.Variable(np.zeros(3))
    with xpnet.GradientTape(persistent=True) as tape:
        xt = tape.watch(x)
        y = ops.sum(xt * xt * w)  # x used twice: the cotangents add
        z = ops.sum(ops.stop_gradient(xt) * w)
    gx, gw, gu = tape.gradient(y, [x, w, unused])
    np.testing.assert_allclose(gx, 2 * x * w.numpy())
    np.testing.assert_allclose(gw, x * x)
    assert gu is None  # not reached
    assert tape.gradient(z, x) is None  # stop_gradient
    np.testing.assert_allclose(tape.gradient(z, w), x)
    with xpnet.GradientTape() as once:
        y = ops.sum(once.watch(x) * 2.0)
    once.gradient(y, x)
    assert once._tape._records == []  # records are released as the walk consumes them
    with pytest.raises(RuntimeError, match="only once"):
        once.gradient(y, x)


def _fresh_model(seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape=(6,))
    h = layers.Dense(8, activation="relu")(inp)
    h = layers.Dropout(0.0)(h)
    out = layers.Dense(3)(h)
    return keras.Model(inp, out, backend="cpu")


def test_builtin_layers_through_the_tape_match_the_static_path():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 6)).astype(np.float32)
    dy = rng.standard_normal((5, 3)).astype(np.float32)
    model = _fresh_model()
    model.zero_grads()
    _, ctx = model.forward(x, training=True)
    model.backward(ctx, dy)
    static = [np.array(la.grads[k]) for la in model._all_layers() for k in la.grads]
    with xpnet.GradientTape() as tape:
        y = model(x, training=True)
        loss = ops.sum(y * dy)
    taped = tape.gradient(loss, model.trainable_weights)
    assert len(taped) == len(static)
    for a, b in zip(static, taped):
        np.testing.assert_array_equal(a, b)  # bit-identical: the same backward ran


class Encoder(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = layers.Dense(8, activation="relu")
        self.mean = layers.Dense(2)
        self.log_var = layers.Dense(2)

    def call(self, x):
        h = self.hidden(x)
        return self.mean(h), self.log_var(h)


def test_nested_two_output_models_unpack():
    inp = keras.Input(shape=(4,))
    h = layers.Dense(5)(inp)
    enc = keras.Model(inp, [layers.Dense(2, name="mu")(h), layers.Dense(2, name="lv")(h)])
    x = keras.Input(shape=(4,))
    z_mean, z_log_var = enc(x)  # a nested functional model with two outputs
    out = layers.Add()([z_mean, z_log_var])
    model = keras.Model(x, out)
    assert model.predict(np.ones((3, 4), np.float32), verbose=0).shape == (3, 2)
    sub = Encoder()
    z_mean, z_log_var = sub(np.ones((3, 4), np.float32))  # a subclassed one, eagerly
    assert z_mean.shape == (3, 2) and z_log_var.shape == (3, 2)
    z_mean, z_log_var = sub(keras.Input(shape=(4,)))  # and symbolically
    assert z_mean.shape == (None, 2)


def test_nested_two_output_model_gradients(backend):
    rng = np.random.default_rng(1)

    class TwoOut(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.enc = Encoder()

        def call(self, x):
            mu, lv = self.enc(x)
            return ops.concatenate([mu, ops.exp(0.5 * lv)], axis=-1)

    check_layer(backend, TwoOut, {}, input_shape=(3, 4), expected_output_shape=(3, 4),
                seed=int(rng.integers(100)))


def test_layer_and_model_inputs_outputs_and_feature_extraction():
    inp = keras.Input(shape=(4,), name="x")
    d1 = layers.Dense(5, name="d1")
    d2 = layers.Dense(3, name="d2")
    out = d2(d1(inp))
    model = keras.Model(inp, out)
    assert d1.output.shape == (None, 5) and d2.input is d1.output
    assert model.input is inp and model.output is out
    features = keras.Model(model.inputs, [la.output for la in model.layers])
    got = features.predict(np.ones((2, 4), np.float32), verbose=0)
    assert [g.shape for g in got] == [(2, 4), (2, 5), (2, 3)]


def test_dict_outputs_with_losses_and_metrics_per_key():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    inp = keras.Input(shape=(4,))
    h = layers.Dense(8, activation="relu")(inp)
    model = keras.Model(inp, {"reg": layers.Dense(1)(h),
                              "cls": layers.Dense(2, activation="softmax")(h)})
    model.compile("adam", loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"},
                  metrics={"cls": ["accuracy"]})
    y = {"reg": x[:, :1], "cls": (x[:, 0] > 0).astype(np.int64)}
    hist = model.fit(x, y, epochs=3, verbose=0)
    assert {"loss", "reg_loss", "cls_loss", "cls_accuracy"} <= set(hist.history)
    pred = model.predict(x, verbose=0)
    assert set(pred) == {"reg", "cls"} and pred["cls"].shape == (64, 2)


class MaskZeros(keras.layers.Layer):
    """Makes a mask: steps whose features are all zero are padding."""

    def call(self, x):
        return x

    def compute_mask(self, x, mask=None):
        return ops.any(ops.not_equal(x, 0.0), axis=-1)


class MaskedMean(keras.layers.Layer):
    """Consumes a mask: the mean over the unmasked steps."""

    def call(self, x, mask=None):
        if mask is None:
            return ops.mean(x, axis=1)
        m = ops.expand_dims(ops.cast(mask, "float32"), -1)
        return ops.sum(x * m, axis=1) / ops.sum(m, axis=1)


def test_masks_travel_through_graphs_and_subclassed_models():
    x = np.zeros((2, 4, 3), np.float32)
    x[0, :2] = 1.0
    x[1, :3] = 2.0
    inp = keras.Input(shape=(4, 3))
    out = MaskedMean()(layers.Dense(3, kernel_initializer="ones", use_bias=False,
                                    name="pass")(MaskZeros()(inp)))
    model = keras.Model(inp, out)
    np.testing.assert_allclose(model.predict(x, verbose=0), [[3.0] * 3, [6.0] * 3])

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.masker, self.pool = MaskZeros(), MaskedMean()

        def call(self, x):
            return self.pool(self.masker(x))
    np.testing.assert_allclose(Sub()(x), [[1.0] * 3, [2.0] * 3])


def test_add_loss_gradient_flows():
    class Penalised(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1],), initializer="ones")

        def call(self, x):
            self.add_loss(ops.sum(ops.square(self.w)))
            return x * self.w

    inp = keras.Input(shape=(3,))
    layer = Penalised()
    model = keras.Model(inp, layer(inp), backend="cpu")
    model.compile(keras.optimizers.SGD(0.1))  # no compiled loss: only the added one
    model.fit(np.ones((4, 3), np.float32), np.ones((4, 3), np.float32), epochs=1,
              batch_size=4, verbose=0)
    np.testing.assert_allclose(layer.w.numpy(), [0.8] * 3, rtol=1e-6)  # w -= 0.1 * 2w


def test_subclassed_model_trains_saves_and_loads(tmp_path):
    @keras.saving.register_keras_serializable(package="Tests")
    class MLP(keras.Model):
        def __init__(self, hidden=16, classes=3, **kwargs):
            super().__init__(**kwargs)
            self.hidden, self.classes = hidden, classes
            self.d1 = layers.Dense(hidden, activation="relu")
            self.drop = layers.Dropout(0.1)
            self.d2 = layers.Dense(classes)

        def call(self, x, training=None):
            return self.d2(self.drop(self.d1(x), training=training))

    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    model = MLP()
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    hist = model.fit(x, y, epochs=8, verbose=0)
    assert hist.history["loss"][-1] < 0.8 * hist.history["loss"][0]
    model.summary(print_fn=lambda s: None)
    path = tmp_path / "mlp.xpnet"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is MLP and loaded.hidden == 16
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)
    assert loaded.evaluate(x, y, verbose=0)[0] == pytest.approx(
        model.evaluate(x, y, verbose=0)[0], rel=1e-6)


def test_clear_errors():
    class NoCallNoForward(keras.layers.Layer):
        pass

    with pytest.raises(NotImplementedError, match="neither call\\(\\) nor forward\\(\\)"):
        NoCallNoForward()(np.ones((2, 2), np.float32))

    class ReturnsText(keras.layers.Layer):
        def call(self, x):
            return "nope"

    with pytest.raises(TypeError, match="call\\(\\) must return arrays"):
        ReturnsText(name="texty")(np.ones((2, 2), np.float32))
    inp = keras.Input(shape=(2,))
    model = keras.Model(inp, layers.Lambda(lambda x: x * 2.0)(inp))
    with pytest.raises(NotImplementedError, match="is a Lambda, whose function cannot be"):
        model.save("never-written.xpnet")


def test_keras_package_imports():
    from xpnet.keras.layers import Dense  # noqa: F401
    from xpnet.keras.models import clone_model  # noqa: F401
    from xpnet.keras.optimizers.schedules import ExponentialDecay  # noqa: F401
    from xpnet.keras.random import SeedGenerator  # noqa: F401
    from xpnet.keras.saving import register_keras_serializable  # noqa: F401
    for name in ("layers", "models", "ops", "random", "utils", "callbacks", "optimizers",
                 "losses", "metrics", "saving", "initializers", "regularizers",
                 "activations", "applications", "datasets"):
        assert hasattr(keras, name), name


def test_graphs_with_multi_output_nodes_keywords_and_dict_outputs_save_and_load(tmp_path):
    inp = keras.Input(shape=(4,))
    h = layers.Dense(5)(inp)
    enc = keras.Model(inp, [layers.Dense(2, name="mu")(h), layers.Dense(2, name="lv")(h)])
    x = keras.Input(shape=(4,))
    a, b = enc(x)
    d = layers.Dropout(0.3)(layers.Add()([a, b]), training=True)  # a keyword in the node
    model = keras.Model(x, {"out": layers.Dense(1)(d), "a": a})
    model.compile("adam", loss={"out": "mse", "a": "mse"})
    xx = np.random.default_rng(0).random((8, 4)).astype("float32")
    model.fit(xx, {"out": xx[:, :1], "a": xx[:, :2]}, verbose=0)
    model.save(tmp_path / "f.xpnet")
    loaded = keras.models.load_model(tmp_path / "f.xpnet")
    np.testing.assert_array_equal(loaded.predict(xx, verbose=0)["a"],
                                  model.predict(xx, verbose=0)["a"])
    again = keras.models.model_from_json(model.to_json())
    assert again.count_params() == keras.models.clone_model(model).count_params() == \
        model.count_params()


def test_an_output_mask_reaches_the_loss_as_keras_applies_it():
    """Keras 3's apply_mask: masked steps weigh 0 and the mean runs over the valid ones."""
    class Seq(keras.Model):
        def __init__(self):
            super().__init__()
            self.masker = MaskZeros()
            self.proj = layers.Dense(1, kernel_initializer="ones", use_bias=False)

        def call(self, x):
            return self.proj(self.masker(x))

    x = np.zeros((2, 3, 2), np.float32)
    x[0, :2] = 1.0  # sample 0: 2 valid steps, output 2.0 each
    x[1, :1] = 0.5  # sample 1: 1 valid step, output 1.0
    y = np.full((2, 3, 1), 100.0, np.float32)  # far off on the padded steps
    y[0, :2] = 1.0
    y[1, 0] = 0.0
    for model in (Seq(), None):
        if model is None:  # the same through a functional graph
            inp = keras.Input(shape=(3, 2))
            model = keras.Model(inp, layers.Dense(1, kernel_initializer="ones",
                                                  use_bias=False)(MaskZeros()(inp)))
        model.compile("sgd", loss="mse")
        # valid squared errors: (2-1)^2, (2-1)^2, (1-0)^2 -> mean 1.0 (padding ignored)
        assert model.evaluate(x, y, verbose=0) == pytest.approx(1.0, rel=1e-5)


def test_a_softmax_head_keeps_the_mask_for_the_loss_and_metrics():
    """A Dense(softmax) head trained through the fused softmax-cross-entropy still weighs
    (batch, time) tokens by the mask that reaches it (it used to drop it), exactly as the
    same head on logits with from_logits=True does."""
    ids = np.array([[3, 1, 0, 0], [2, 2, 1, 0], [4, 0, 0, 0]])
    tgt = np.array([[1, 2, 3, 3], [3, 1, 2, 4], [2, 1, 1, 1]])
    models = []
    for activation, loss in (("softmax", "sparse_categorical_crossentropy"),
                             (None, keras.losses.SparseCategoricalCrossentropy(True))):
        keras.utils.set_random_seed(0)
        inp = keras.Input((4,), dtype="int64")
        x = layers.Embedding(5, 6, mask_zero=True)(inp)
        model = keras.Model(inp, layers.Dense(5, activation=activation)(x))
        model.compile(keras.optimizers.SGD(0.5), loss, metrics=["accuracy"])
        models.append(model)
    p = models[0].predict(ids, verbose=0)
    valid = ids != 0
    nll = -np.log(np.take_along_axis(p, tgt[..., None], -1)[..., 0])
    hits = p.argmax(-1) == tgt
    want = [nll[valid].mean(), hits[valid].mean()]
    for model in models:
        np.testing.assert_allclose(model.evaluate(ids, tgt, verbose=0), want, rtol=1e-5)
        model.train_on_batch(ids, tgt)
    for a, b in zip(*(m.get_weights() for m in models)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_ignore_class_trains_as_the_mask_does():
    """SparseCategoricalCrossentropy(ignore_class=0) on targets that are 0 where the input
    is padding: the same loss and the same step as the embedding's mask, alone or both
    together (the two normalise once), on logits and through a fused softmax head."""
    ids = np.array([[3, 1, 0, 0], [2, 2, 1, 0], [4, 0, 0, 0]])
    tgt = np.where(ids != 0, np.array([[1, 2, 3, 3], [3, 1, 2, 4], [2, 1, 1, 1]]), 0)
    scce = keras.losses.SparseCategoricalCrossentropy
    models = []
    for mask_zero, activation, loss in ((True, None, scce(True)),
                                        (False, None, scce(True, ignore_class=0)),
                                        (True, None, scce(True, ignore_class=0)),
                                        (False, "softmax", scce(ignore_class=0))):
        keras.utils.set_random_seed(0)
        inp = keras.Input((4,), dtype="int64")
        x = layers.Embedding(5, 6, mask_zero=mask_zero)(inp)
        model = keras.Model(inp, layers.Dense(5, activation=activation)(x))
        model.compile(keras.optimizers.SGD(0.5), loss)
        models.append(model)
    want = models[0].evaluate(ids, tgt, verbose=0)
    for model in models:
        assert model.evaluate(ids, tgt, verbose=0) == pytest.approx(want, rel=1e-5)
        model.train_on_batch(ids, tgt)
    for other in models[1:]:
        for a, b in zip(models[0].get_weights(), other.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_subclassed_and_call_layer_models_train_on_strict_with_a_short_last_batch():
    """array-api-strict (every NumPy call fails): 23 samples at batch 8 leave a last batch of
    7; a subclassed model and a functional model holding a call() layer both train."""
    from conftest import make_backend

    strict = make_backend("strict")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((23, 5)).astype(np.float32)
    y = (x[:, :1] - x[:, 1:2]).astype(np.float32)

    class Sub(keras.Model):
        def __init__(self):
            super().__init__(backend=strict)
            self.block = Block()
            self.out = layers.Dense(1)

        def call(self, x):
            return self.out(self.block(x))

    inp = keras.Input(shape=(5,))
    functional = keras.Model(inp, layers.Dense(1)(Linear(4)(inp)), backend=strict)
    for model in (Sub(), functional):
        model.compile(keras.optimizers.Adam(0.01), loss="mse")
        hist = model.fit(x, y, batch_size=8, epochs=6, verbose=0)
        assert hist.history["loss"][-1] < hist.history["loss"][0]
        assert model.predict(x, batch_size=8, verbose=0).shape == (23, 1)
