"""A Keras 3 name xpnet lacks raises NotImplementedError naming it (README compatibility
table), and is still an AttributeError for hasattr/getattr with a default."""

import pytest

from xpnet import keras


@pytest.mark.parametrize("module,name", [
    ("keras", "quantizers"), ("keras", "visualization"), ("keras", "export"),
    ("layers", "TextVectorization"), ("ops", "fft"), ("ops", "scatter"),
    ("utils", "image_dataset_from_directory"), ("utils", "plot_model"),
    ("callbacks", "SwapEMAWeights"), ("applications", "ResNet50"),
    ("saving", "KerasFileEditor"), ("losses", "CTC"), ("optimizers", "Adafactor"),
    ("activations", "mish"), ("initializers", "Orthogonal"), ("random", "gamma")])
def test_missing_keras_names_raise_not_implemented(module, name):
    owner = keras if module == "keras" else getattr(keras, module)
    with pytest.raises(NotImplementedError, match=rf"keras\.({module}\.)?{name} is not "
                                                  "implemented in xpnet yet"):
        getattr(owner, name)


def test_missing_is_still_an_attribute_error():
    assert not hasattr(keras, "quantizers")
    assert getattr(keras.ops, "fft", None) is None
    with pytest.raises(AttributeError) as info:
        keras.layers.NoSuchLayer  # noqa: B018
    assert not isinstance(info.value, NotImplementedError)
    assert keras.callbacks.BackupAndRestore and keras.utils.PyDataset


def test_keras_only_arguments_are_named():
    with pytest.raises(NotImplementedError, match="activation 'mish'"):
        keras.layers.Dense(2, activation="mish")
    with pytest.raises(NotImplementedError, match="Adam: Keras's use_ema is not implemented"):
        keras.optimizers.Adam(use_ema=True)
    with pytest.raises(TypeError, match="unexpected argument"):
        keras.optimizers.Adam(bogus=1)
