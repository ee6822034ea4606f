"""Programs from the keras.io guides, with only the import line changed (``tf.GradientTape``
becomes ``xpnet.GradientTape``, ``tf.*`` array calls ``keras.ops``): each runs and learns.

- "Making new layers and models via subclassing"
- "The Functional API"
- "Customizing what happens in fit()" (a train_step, a two-optimizer GAN, a VAE)
- "Writing a training loop from scratch"
"""

import numpy as np
import pytest

import xpnet
from xpnet import keras
from xpnet.keras import layers
from xpnet.keras import ops


def _digits():
    (x, y), (xt, yt) = xpnet.datasets.load_digits()
    x = x.reshape(len(x), -1).astype("float32") / 16.0
    xt = xt.reshape(len(xt), -1).astype("float32") / 16.0
    return x, y.astype("int64"), xt, yt.astype("int64")


# -- "Making new layers and models via subclassing" ---------------------------------------
class Sampling(layers.Layer):
    """Uses (z_mean, z_log_var) to sample z, the vector encoding a digit."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        batch = ops.shape(z_mean)[0]
        dim = ops.shape(z_mean)[1]
        epsilon = keras.random.normal(shape=(batch, dim), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon


class Encoder(layers.Layer):
    def __init__(self, latent_dim=8, intermediate_dim=32, name="encoder", **kwargs):
        super().__init__(name=name, **kwargs)
        self.dense_proj = layers.Dense(intermediate_dim, activation="relu")
        self.dense_mean = layers.Dense(latent_dim)
        self.dense_log_var = layers.Dense(latent_dim)
        self.sampling = Sampling()

    def call(self, inputs):
        x = self.dense_proj(inputs)
        z_mean = self.dense_mean(x)
        z_log_var = self.dense_log_var(x)
        z = self.sampling((z_mean, z_log_var))
        return z_mean, z_log_var, z


class Decoder(layers.Layer):
    def __init__(self, original_dim, intermediate_dim=32, name="decoder", **kwargs):
        super().__init__(name=name, **kwargs)
        self.dense_proj = layers.Dense(intermediate_dim, activation="relu")
        self.dense_output = layers.Dense(original_dim, activation="sigmoid")

    def call(self, inputs):
        x = self.dense_proj(inputs)
        return self.dense_output(x)


class VariationalAutoEncoder(keras.Model):
    def __init__(self, original_dim, intermediate_dim=32, latent_dim=8, name="autoencoder",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.original_dim = original_dim
        self.encoder = Encoder(latent_dim=latent_dim, intermediate_dim=intermediate_dim)
        self.decoder = Decoder(original_dim, intermediate_dim=intermediate_dim)

    def call(self, inputs):
        z_mean, z_log_var, z = self.encoder(inputs)
        reconstructed = self.decoder(z)
        kl_loss = -0.5 * ops.mean(z_log_var - ops.square(z_mean) - ops.exp(z_log_var) + 1)
        self.add_loss(kl_loss)
        return reconstructed


def test_subclassing_guide_vae_learns():
    keras.utils.set_random_seed(0)
    x, _, xt, _ = _digits()
    vae = VariationalAutoEncoder(64)
    vae.compile(keras.optimizers.Adam(learning_rate=3e-3),
                loss=keras.losses.MeanSquaredError())
    hist = vae.fit(x, x, epochs=4, batch_size=64, verbose=0)
    assert hist.history["loss"][-1] < 0.7 * hist.history["loss"][0]
    assert len(vae.losses) == 1  # the KL term of the last call
    assert len(vae.trainable_weights) == 10


def test_subclassing_guide_custom_training_loop_with_tape():
    keras.utils.set_random_seed(1)
    x, _, _, _ = _digits()
    vae = VariationalAutoEncoder(64)
    optimizer = keras.optimizers.Adam(learning_rate=3e-3)
    mse_loss_fn = keras.losses.MeanSquaredError()
    loss_metric = keras.metrics.Mean()
    first = None
    for _epoch in range(3):
        loss_metric.reset_state()
        for step in range(0, len(x) - 63, 64):
            x_batch_train = x[step:step + 64]
            with xpnet.GradientTape() as tape:
                reconstructed = vae(x_batch_train)
                loss = mse_loss_fn(x_batch_train, reconstructed)
                loss += sum(vae.losses)  # Add KLD regularization loss
            grads = tape.gradient(loss, vae.trainable_weights)
            optimizer.apply_gradients(zip(grads, vae.trainable_weights))
            loss_metric.update_state(loss)
        result = float(loss_metric.result())
        first = result if first is None else first
    assert result < 0.8 * first


# -- "The Functional API" -------------------------------------------------------------------
def test_functional_guide_multi_input_multi_output():
    keras.utils.set_random_seed(2)
    num_tags, num_words, num_departments = 12, 100, 4
    title_input = keras.Input(shape=(None,), name="title")
    body_input = keras.Input(shape=(None,), name="body")
    tags_input = keras.Input(shape=(num_tags,), name="tags")
    # (Embedding/LSTM come with the recurrent family; a mean of one-hot words stands in)
    title_features = layers.Lambda(lambda t: ops.mean(ops.one_hot(ops.cast(t, "int32"),
                                                                  num_words), axis=1))(
        title_input)
    body_features = layers.Lambda(lambda t: ops.mean(ops.one_hot(ops.cast(t, "int32"),
                                                                 num_words), axis=1))(body_input)
    title_features = layers.Dense(16, activation="relu")(title_features)
    body_features = layers.Dense(8, activation="relu")(body_features)
    x = layers.concatenate([title_features, body_features, tags_input])
    priority_pred = layers.Dense(1, name="priority")(x)
    department_pred = layers.Dense(num_departments, name="department")(x)
    model = keras.Model(inputs=[title_input, body_input, tags_input],
                        outputs={"priority": priority_pred, "department": department_pred})
    model.compile(optimizer=keras.optimizers.RMSprop(1e-2),
                  loss={"priority": keras.losses.BinaryCrossentropy(from_logits=True),
                        "department": keras.losses.CategoricalCrossentropy(from_logits=True)},
                  loss_weights={"priority": 1.0, "department": 0.2})
    rng = np.random.default_rng(0)
    title_data = rng.integers(num_words, size=(160, 10))
    body_data = rng.integers(num_words, size=(160, 20))
    tags_data = rng.integers(2, size=(160, num_tags)).astype("float32")
    priority_targets = (tags_data[:, :1] > 0.5).astype("float32")
    dept_targets = np.eye(num_departments, dtype="float32")[tags_data[:, 1:5].argmax(1)]
    hist = model.fit({"title": title_data, "body": body_data, "tags": tags_data},
                     {"priority": priority_targets, "department": dept_targets},
                     epochs=12, batch_size=32, verbose=0)
    assert hist.history["loss"][-1] < 0.6 * hist.history["loss"][0]
    assert set(hist.history) == {"loss", "priority_loss", "department_loss"}


def test_functional_guide_shared_layers_and_feature_extraction():
    keras.utils.set_random_seed(3)
    inputs = keras.Input(shape=(64,))
    shared = layers.Dense(16, activation="relu", name="shared")
    a = shared(inputs)
    b = shared(layers.Dense(64, name="pre")(inputs))
    outputs = layers.Dense(10, activation="softmax")(layers.add([a, b]))
    model = keras.Model(inputs, outputs)
    features = keras.Model(inputs=model.inputs,
                           outputs=[layer.output for layer in model.layers
                                    if layer.name != "shared"])
    x = np.zeros((2, 64), np.float32)
    assert len(features.predict(x, verbose=0)) == len(model.layers) - 1
    with pytest.raises(AttributeError, match="ambiguous"):
        shared.output  # noqa: B018 - called twice: Keras refuses too


def test_functional_guide_mixing_subclassed_and_functional():
    class CustomRNN(layers.Layer):
        def __init__(self):
            super().__init__()
            self.units = 8
            self.projection_1 = layers.Dense(units=self.units, activation="tanh")
            self.projection_2 = layers.Dense(units=self.units, activation="tanh")
            inputs = keras.Input((None, self.units))
            x = layers.GlobalAveragePooling1D()(inputs)
            outputs = layers.Dense(1)(x)
            self.classifier = keras.Model(inputs, outputs)

        def call(self, inputs):
            outputs = []
            state = ops.zeros(shape=(inputs.shape[0], self.units))
            for t in range(inputs.shape[1]):
                x = inputs[:, t, :]
                h = self.projection_1(x)
                y = h + self.projection_2(state)
                state = y
                outputs.append(y)
            features = ops.stack(outputs, axis=1)
            return self.classifier(features)

    rnn_model = CustomRNN()
    out = rnn_model(ops.zeros((1, 10, 5)))
    assert tuple(out.shape) == (1, 1)
    assert len(rnn_model.trainable_weights) == 6


# -- "Customizing what happens in fit()" --------------------------------------------------
class CustomModel(keras.Model):
    def train_step(self, data):
        x, y = data
        with xpnet.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
        trainable_vars = self.trainable_variables
        gradients = tape.gradient(loss, trainable_vars)
        self.optimizer.apply(gradients, trainable_vars)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}


def test_customizing_fit_guide_train_step():
    keras.utils.set_random_seed(4)
    inputs = keras.Input(shape=(32,))
    outputs = keras.layers.Dense(1)(inputs)
    model = CustomModel(inputs, outputs)
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    x = np.random.random((1000, 32)).astype("float32")
    y = x[:, :1] * 2.0 - x[:, 1:2]
    hist = model.fit(x, y, epochs=3, verbose=0)
    assert set(hist.history) == {"loss", "mae"}
    assert hist.history["loss"][-1] < hist.history["loss"][0]


class GAN(keras.Model):
    def __init__(self, discriminator, generator, latent_dim):
        super().__init__()
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = latent_dim
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.seed_generator = keras.random.SeedGenerator(1337)

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn

    def train_step(self, real_images):
        if isinstance(real_images, tuple):
            real_images = real_images[0]
        batch_size = ops.shape(real_images)[0]
        random_latent_vectors = keras.random.normal(shape=(batch_size, self.latent_dim),
                                                    seed=self.seed_generator)
        generated_images = self.generator(random_latent_vectors)
        combined_images = ops.concatenate([generated_images, real_images], axis=0)
        labels = ops.concatenate([ops.ones((batch_size, 1)), ops.zeros((batch_size, 1))],
                                 axis=0)
        labels += 0.05 * keras.random.uniform(ops.shape(labels), seed=self.seed_generator)
        with xpnet.GradientTape() as tape:
            predictions = self.discriminator(combined_images)
            d_loss = self.loss_fn(labels, predictions)
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))
        random_latent_vectors = keras.random.normal(shape=(batch_size, self.latent_dim),
                                                    seed=self.seed_generator)
        misleading_labels = ops.zeros((batch_size, 1))
        with xpnet.GradientTape() as tape:
            predictions = self.discriminator(self.generator(random_latent_vectors))
            g_loss = self.loss_fn(misleading_labels, predictions)
        grads = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {"d_loss": self.d_loss_tracker.result(), "g_loss": self.g_loss_tracker.result()}


def test_customizing_fit_guide_gan_two_optimizers():
    keras.utils.set_random_seed(5)
    latent_dim = 8
    discriminator = keras.Sequential([keras.Input(shape=(64,)),
                                      layers.Dense(32), layers.LeakyReLU(negative_slope=0.2),
                                      layers.Dense(1)], name="discriminator")
    generator = keras.Sequential([keras.Input(shape=(latent_dim,)),
                                  layers.Dense(32), layers.LeakyReLU(negative_slope=0.2),
                                  layers.Dense(64, activation="sigmoid")], name="generator")
    gan = GAN(discriminator=discriminator, generator=generator, latent_dim=latent_dim)
    gan.compile(d_optimizer=keras.optimizers.Adam(learning_rate=3e-4),
                g_optimizer=keras.optimizers.Adam(learning_rate=3e-4),
                loss_fn=keras.losses.BinaryCrossentropy(from_logits=True))
    x, _, _, _ = _digits()
    d_before = [w.copy() for w in discriminator.get_weights()]
    g_before = [w.copy() for w in generator.get_weights()]

    # one generator step alone must leave the discriminator untouched, and the reverse
    z = keras.random.normal((16, latent_dim), seed=0)
    with xpnet.GradientTape() as tape:
        g_loss = gan.loss_fn(ops.zeros((16, 1)), discriminator(generator(z)))
    grads = tape.gradient(g_loss, generator.trainable_weights)
    gan.g_optimizer.apply_gradients(zip(grads, generator.trainable_weights))
    for a, b in zip(discriminator.get_weights(), d_before):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(generator.get_weights(), g_before))

    hist = gan.fit(x, epochs=2, batch_size=64, verbose=0)
    assert set(hist.history) == {"d_loss", "g_loss"}
    assert all(np.isfinite(v) for vs in hist.history.values() for v in vs)


# -- "Writing a training loop from scratch" ------------------------------------------------
def test_training_loop_from_scratch_guide():
    keras.utils.set_random_seed(6)
    x_train, y_train, x_val, y_val = _digits()
    inputs = keras.Input(shape=(64,), name="digits")
    x1 = keras.layers.Dense(64, activation="relu")(inputs)
    x2 = keras.layers.Dense(64, activation="relu")(x1)
    outputs = keras.layers.Dense(10, name="predictions")(x2)
    model = keras.Model(inputs=inputs, outputs=outputs)
    optimizer = keras.optimizers.Adam(learning_rate=1e-3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    train_acc_metric = keras.metrics.SparseCategoricalAccuracy()
    val_acc_metric = keras.metrics.SparseCategoricalAccuracy()
    batch_size = 32
    for _epoch in range(4):
        for step in range(len(x_train) // batch_size):
            x_batch_train = x_train[step * batch_size:(step + 1) * batch_size]
            y_batch_train = y_train[step * batch_size:(step + 1) * batch_size]
            with xpnet.GradientTape() as tape:
                logits = model(x_batch_train, training=True)
                loss_value = loss_fn(y_batch_train, logits)
            grads = tape.gradient(loss_value, model.trainable_weights)
            optimizer.apply_gradients(zip(grads, model.trainable_weights))
            train_acc_metric.update_state(y_batch_train, logits)
        train_acc_metric.reset_state()
    val_logits = model(x_val, training=False)
    val_acc_metric.update_state(y_val, val_logits)
    assert float(val_acc_metric.result()) > 0.9
