import contextlib

import numpy as np
import pytest

from xpnet import applications
from xpnet import optimizers
from xpnet import utils

# Each architecture at a small size, with its input shape and output shape per sample.
ARCHS = [
    (applications.lenet, {"input_shape": (12, 12, 1)}, (10,)),
    (applications.cnn1d, {"input_shape": (24, 2), "classes": 4}, (4,)),
    (applications.cnn3d, {"input_shape": (4, 6, 6, 1), "classes": 3, "filters": (4, 8)}, (3,)),
    (applications.vgg, {"input_shape": (8, 8, 3), "classes": 5, "dense": (16,)}, (5,)),
    (applications.resnet, {"input_shape": (8, 8, 3), "classes": 4, "filters": (8, 16),
                           "stages": (1, 1), "batch_norm": False}, (4,)),
    (applications.resnet, {"input_shape": (8, 8, 3), "classes": 4, "filters": (4, 8),
                           "stages": (2, 1), "block": "bottleneck", "batch_norm": False}, (4,)),
    (applications.densenet, {"input_shape": (8, 8, 3), "classes": 4, "batch_norm": False},
     (4,)),
    (applications.resnet, {"input_shape": (8, 8, 3), "classes": 4, "filters": (8, 16),
                           "stages": (1, 1)}, (4,)),
    (applications.densenet, {"input_shape": (8, 8, 3), "classes": 4}, (4,)),
    (applications.inception, {"input_shape": (8, 8, 3), "classes": 4, "width": 4}, (4,)),
    (applications.fcn, {"input_shape": (8, 8, 3), "classes": 3, "filters": (8, 16)},
     (8, 8, 3)),
]


def _batch(input_shape, out_shape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((8,) + input_shape).astype(np.float32)
    if len(out_shape) > 1:  # segmentation: each pixel's class is its largest input channel
        return x, np.argmax(x[..., :out_shape[-1]], axis=-1)
    return x, rng.integers(0, out_shape[-1], size=8)


@pytest.mark.slow
@pytest.mark.parametrize("build,kwargs,out_shape", ARCHS,
                         ids=[f"{b.__name__}-{k.get('block', '')}-"
                              f"{'bn' if k.get('batch_norm', True) else 'nobn'}"
                              for b, k, _ in ARCHS])
def test_architecture_trains_and_reports_its_parameters(build, kwargs, out_shape):
    utils.set_random_seed(0)  # the loss falls to <= 0.45x in 20 steps from every seed 0-7
    model = build(backend="cpu", **kwargs)
    assert model.outputs[0].shape == (None,) + out_shape
    lines = []
    model.summary(print_fn=lines.append)
    total = model.count_params()
    assert total == sum(w.size for w in model.get_weights()) > 0
    assert f"Total params: {total:,}" in lines[0]
    model.compile(optimizer=optimizers.Adam(learning_rate=1e-2),
                  loss="sparse_categorical_crossentropy")
    x, y = _batch(kwargs["input_shape"], out_shape)
    first = model.train_on_batch(x, y)
    for _ in range(19):
        last = model.train_on_batch(x, y)
    assert np.isfinite(first) and last < 0.8 * first, (first, last)
    assert model.predict(x, verbose=0).shape == (8,) + out_shape


def test_lenet_parameter_count_as_lenet5():
    """conv 5x5x1x6 + 6, conv 5x5x6x16 + 16, dense 784x120 + 120, 120x84 + 84, 84x10 + 10."""
    model = applications.lenet(backend="cpu")
    expected = 156 + 2416 + (7 * 7 * 16 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    assert model.count_params() == expected
    assert [type(la).__name__ for la in model.layers[1:]] == [
        "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dense",
        "Dense"]


def test_resnet_has_projection_shortcuts_and_residual_adds():
    model = applications.resnet(input_shape=(8, 8, 3), filters=(4, 8), stages=(1, 1),
                                batch_norm=False, backend="cpu")
    names = [type(la).__name__ for la in model.layers]
    assert names.count("Add") == 2
    # 1 stem + 2 per basic block + 1 projection where the second stage changes shape
    assert names.count("Conv2D") == 1 + 2 * 2 + 1
    bottleneck = applications.resnet(input_shape=(8, 8, 3), filters=(4,), stages=(1,),
                                     block="bottleneck", batch_norm=False, backend="cpu")
    assert bottleneck.outputs[0].shape == (None, 10)
    assert bottleneck.get_layer("predictions").params["kernel"].shape == (16, 10)


def test_densenet_concatenates_and_transitions():
    model = applications.densenet(input_shape=(8, 8, 3), blocks=(2, 2), growth_rate=4,
                                  stem_filters=6, batch_norm=False, backend="cpu")
    names = [type(la).__name__ for la in model.layers]
    assert names.count("Concatenate") == 4 and names.count("AveragePooling2D") == 1
    # block 1: 6 + 2*4 = 14 channels; transition halves to 7; block 2: 7 + 2*4 = 15
    assert model.get_layer("predictions").params["kernel"].shape == (15, 10)


def test_inception_module_concatenates_four_branches():
    model = applications.inception(input_shape=(8, 8, 3), modules=1, width=4,
                                   backend="cpu")
    concat = [la for la in model.layers if type(la).__name__ == "Concatenate"]
    assert len(concat) == 1 and concat[0].output_shape == (None, 8, 8, 4 + 8 + 2 + 2)


def test_batch_norm_argument():
    for build in (applications.resnet, applications.densenet):
        with_bn = build(input_shape=(8, 8, 3), backend="cpu")
        without = build(input_shape=(8, 8, 3), batch_norm=False, backend="cpu")
        kinds = [type(la).__name__ for la in with_bn.layers]
        assert "BatchNormalization" in kinds
        assert "BatchNormalization" not in [type(la).__name__ for la in without.layers]
        # gamma, beta (trainable) and the moving statistics (not) of every BN layer
        bn = [la for la in with_bn.layers if type(la).__name__ == "BatchNormalization"]
        assert len(with_bn.non_trainable_weights) == 2 * len(bn)


def test_fcn_rejects_indivisible_sizes():
    with pytest.raises(ValueError, match="must be divisible by 4"):
        applications.fcn(input_shape=(10, 12, 3), filters=(4, 8, 16), backend="cpu")
    model = applications.fcn(input_shape=(None, None, 3), filters=(4, 8), backend="cpu")
    assert model.predict(np.zeros((1, 6, 10, 3), np.float32), verbose=0).shape == (1, 6, 10, 3)


def test_architecture_trains_on_array_api_strict():
    """The graph, the conv engine and the optimizer run on standard operations only."""
    from conftest import make_backend

    backend = make_backend("strict")
    model = applications.resnet(input_shape=(6, 6, 2), classes=3, filters=(4, 8),
                                stages=(1, 1), batch_norm=False, backend=backend)
    model.compile(optimizer=optimizers.Adam(learning_rate=1e-2),
                  loss="sparse_categorical_crossentropy")
    x, y = _batch((6, 6, 2), (3,))
    first = model.train_on_batch(x, y)
    for _ in range(9):
        last = model.train_on_batch(x, y)
    assert last < first


def _one_blas_thread():
    """Two BLAS threads on a 2-core machine whose other core is busy ran these trainings 40x
    slower (900 against 20 ms per step: the threads spin-wait for each other); one thread
    is safe everywhere. The tests check what is learned, never how fast."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _example(name):
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "examples", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_cnn_example_reaches_97_5_percent_on_the_mnist_split(mnist_dir):
    """examples/cnn.py on the MNIST test set: first 8,000 images train, last 2,000 test."""
    with _one_blas_thread():
        accuracy, times = _example("cnn").main(["--data", mnist_dir, "--backend", "cpu",
                                                "--quiet"])
    assert len(times) == 7
    assert accuracy >= 0.975


@pytest.mark.slow
def test_fcn_learns_to_segment_the_synthetic_shapes():
    """examples/fcn_shapes.py at 16x16: disks and squares on random backgrounds, separated
    from the background and from each other on held-out images (the all-background guess
    scores about 0.8 pixel accuracy and IoU 0 for both shapes)."""
    with _one_blas_thread():
        accuracy, ious = _example("fcn_shapes").main(["--size", "16", "--epochs", "9",
                                                      "--backend", "cpu", "--quiet"])
    assert accuracy >= 0.95
    assert min(ious) >= 0.7, ious
