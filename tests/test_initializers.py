import math

import numpy as np
import pytest

from xpnet import initializers


@pytest.mark.parametrize("name,std", [
    ("glorot_uniform", math.sqrt(2 / (400 + 300))), ("glorot_normal", math.sqrt(2 / 700)),
    ("he_uniform", math.sqrt(2 / 400)), ("he_normal", math.sqrt(2 / 400)),
    ("lecun_uniform", math.sqrt(1 / 400)), ("lecun_normal", math.sqrt(1 / 400)),
])
def test_variance_scaling_statistics(backend, name, std):
    w = backend.to_numpy(initializers.get(name)((400, 300), backend.xp.float32, backend))
    assert w.dtype == np.float32 and w.shape == (400, 300)
    assert abs(w.std() / std - 1) < 0.02  # 120,000 draws: the std is within 1 %
    assert abs(w.mean()) < 0.01 * std * 10
    if name.endswith("uniform"):
        assert np.abs(w).max() <= std * math.sqrt(3) * (1 + 1e-6)
    else:  # truncated at two standard deviations of the untruncated normal
        assert np.abs(w).max() <= 2 * std / 0.87962566103423978 * (1 + 1e-6)


def test_conv_fans():
    # a (3, 3, 16, 32) kernel: fan_in = 9 * 16, fan_out = 9 * 32
    assert initializers._fans((3, 3, 16, 32)) == (144, 288)
    assert initializers._fans((5,)) == (5, 5)


def test_constant_and_simple(cpu):
    xp = cpu.xp
    assert np.all(initializers.get("zeros")((2, 3), xp.float32, cpu) == 0)
    assert np.all(initializers.get("ones")((2,), xp.float32, cpu) == 1)
    assert np.all(initializers.Constant(3.5)((2,), xp.float64, cpu) == 3.5)
    u = initializers.RandomUniform(-0.1, 0.2, seed=1)((1000,), xp.float32, cpu)
    assert u.min() >= -0.1 and u.max() < 0.2


def test_seeds_reproduce_across_backends(backend, cpu):
    init = initializers.HeNormal(seed=42)
    a = backend.to_numpy(init((5, 4), backend.xp.float32, backend))
    b = cpu.to_numpy(init((5, 4), cpu.xp.float32, cpu))
    np.testing.assert_array_equal(a, b)


def test_get_and_serialize():
    init = initializers.get({"class_name": "VarianceScaling",
                             "config": {"scale": 2.0, "mode": "fan_out", "seed": 3}})
    assert (init.scale, init.mode, init.seed) == (2.0, "fan_out", 3)
    again = initializers.get(initializers.serialize(init))
    assert again.get_config() == init.get_config()
    assert isinstance(initializers.get("HeNormal"), initializers.HeNormal)
    with pytest.raises(ValueError, match="unknown initializer 'he_norm'"):
        initializers.get("he_norm")
