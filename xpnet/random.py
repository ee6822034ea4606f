"""``keras.random``: random numbers on the current layer's backend, from seeds.

``seed`` is an int (the same numbers at every call, as Keras), a :class:`SeedGenerator`
(a stream that advances at every draw, and is saved with the layer that holds it), or None
(a global stream seeded by ``keras.utils.set_random_seed``).
"""

from xpnet.engine.calls import current_backend
from xpnet.engine.tape import unwrap
from xpnet.utils import next_seed

__all__ = ["SeedGenerator", "normal", "uniform", "truncated_normal", "randint", "dropout",
           "shuffle", "categorical"]


class SeedGenerator:
    """A stateful source of random numbers (``keras.random.SeedGenerator(seed)``).

    Its generator is made on the backend of the first draw (the layer being called), so a
    model on any backend draws on its own device.
    """

    def __init__(self, seed=None, **kwargs):
        self.seed = seed
        self._seed = next_seed(seed)
        self._rng = None

    def rng(self):
        backend = current_backend()
        if self._rng is None or self._rng.backend is not backend:
            self._rng = backend.rng(self._seed)
        return self._rng

    def get_state(self):
        return None if self._rng is None else self._rng.get_state()

    def set_state(self, state):
        if state is not None:
            self.rng().set_state(state)

    def get_config(self):
        return {"seed": self.seed}


_GLOBAL = {}


def _rng(seed, like=None):
    if isinstance(seed, SeedGenerator):
        return seed.rng()
    if like is not None and hasattr(unwrap(like), "shape"):
        from xpnet.backend import backend_of

        backend = backend_of(unwrap(like))
    else:
        backend = current_backend()
    if seed is None:
        gen = _GLOBAL.get(id(backend))
        if gen is None:
            gen = _GLOBAL[id(backend)] = SeedGenerator(None)
        return gen.rng()
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"keras.random: seed must be an int, a SeedGenerator or None, "
                        f"got {seed!r}")
    return backend.rng(seed)  # an int seed: the same draw every call, as Keras


def _dtype(rng, dtype):
    xp = rng.backend.xp
    return getattr(xp, str(dtype or "float32").rsplit(".", 1)[-1])


def _shape(shape):
    return (shape,) if isinstance(shape, int) else tuple(int(unwrap(d)) for d in shape)


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    rng = _rng(seed)
    return rng.normal(_shape(shape), _dtype(rng, dtype), mean=mean, stddev=stddev)


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    rng = _rng(seed)
    return rng.uniform(_shape(shape), _dtype(rng, dtype), minval=minval, maxval=maxval)


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    rng = _rng(seed)
    return rng.truncated_normal(_shape(shape), _dtype(rng, dtype), mean=mean, stddev=stddev)


def randint(shape, minval, maxval, dtype="int32", seed=None):
    rng = _rng(seed)
    xp = rng.backend.xp
    return xp.astype(rng.integers(minval, maxval, _shape(shape)), _dtype(rng, dtype))


def categorical(logits, num_samples, dtype="int32", seed=None):
    """Draws from the categorical distributions whose unnormalised log-probabilities are
    the rows of ``logits``: ``(batch, num_samples)`` class indices."""
    from xpnet import ops

    rng = _rng(seed, logits)
    xp = rng.backend.xp
    z = unwrap(logits)
    p = unwrap(ops.softmax(z))
    cdf = xp.cumulative_sum(p, axis=-1)
    u = rng.uniform((z.shape[0], num_samples), p.dtype)
    idx = xp.sum(xp.astype(xp.expand_dims(u, axis=-1) > xp.expand_dims(cdf, axis=1),
                           xp.int64), axis=-1)
    return xp.astype(xp.clip(idx, 0, z.shape[-1] - 1), _dtype(rng, dtype))


def dropout(inputs, rate, noise_shape=None, seed=None):
    """Inverted dropout: entries zeroed with probability ``rate``, the rest scaled by
    ``1 / (1 - rate)``; differentiable in ``inputs``."""
    from xpnet import ops

    rng = _rng(seed, inputs)
    x = unwrap(inputs)
    shape = tuple(x.shape) if noise_shape is None else tuple(
        n if d is None else d for d, n in zip(noise_shape, x.shape))
    keep = rng.bernoulli(1.0 - rate, shape, x.dtype)
    return ops.multiply(inputs, keep * (1.0 / (1.0 - rate)))


def shuffle(x, axis=0, seed=None):
    from xpnet import ops

    rng = _rng(seed, x)
    perm = rng.permutation(ops.shape(x)[axis])
    return ops.take(x, perm, axis=axis)
