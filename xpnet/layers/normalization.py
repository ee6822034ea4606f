"""Normalization layers: BatchNormalization, LayerNormalization, GroupNormalization and
UnitNormalization, with Keras 3's defaults (epsilon 1e-3; BatchNormalization momentum 0.99
and the biased batch variance in its moving average) and weight order (gamma, beta,
moving_mean, moving_variance)."""

import math

from xpnet import initializers
from xpnet import regularizers
from xpnet.backend import namespace
from xpnet.kernels import norm as _norm
from xpnet.layers.base import Layer

__all__ = ["BatchNormalization", "LayerNormalization", "GroupNormalization",
           "UnitNormalization"]


def _axes_list(axis):
    if isinstance(axis, int) and not isinstance(axis, bool):
        return [axis]
    if isinstance(axis, (list, tuple)) and axis and all(
            isinstance(a, int) and not isinstance(a, bool) for a in axis):
        return list(axis)
    raise TypeError(f"axis must be an int or a list of ints, got axis={axis!r}")


def _normalize_backward(dxhat, xhat, inv, red, xp):
    """dL/dx of ``xhat = (x - mean) * inv`` with mean and biased variance over ``red``."""
    mean_d = xp.mean(dxhat, axis=red, keepdims=True)
    mean_dx = xp.mean(dxhat * xhat, axis=red, keepdims=True)
    return inv * (dxhat - mean_d - xhat * mean_dx)


def _synchronized(layer, x):
    """``(runtime, samples in the global batch)`` where a synchronized layer trains in a
    data-parallel fit (see :mod:`xpnet.distributed`), else None."""
    if not layer.synchronized:
        return None
    from xpnet import distributed

    dist = distributed.active()
    if dist is None:
        return None
    per_sample = math.prod(x.shape[i] for i in layer._others[1:])
    return dist, dist.global_count * per_sample


def _batch_mean(xp, x, red, sync):
    """The mean over ``red``: of this batch, or (``sync``) of every process's batch, as a
    sum over the processes divided by the global count. A zero-weighted stand-in shard
    (see :meth:`xpnet.distributed.runtime.Runtime.take`) adds nothing."""
    if sync is None:
        return xp.mean(x, axis=red, keepdims=True)
    dist, count = sync
    total = xp.sum(x, axis=red, keepdims=True)
    if not dist.sync_weight():
        total = total * 0.0
    return dist.allreduce(total) / count


def _normalize_backward_sync(dxhat, xhat, inv, red, xp, sync):
    """:func:`_normalize_backward` with the two means taken over the global batch (one
    all-reduce of both sums)."""
    dist, count = sync
    d = xp.sum(dxhat, axis=red, keepdims=True)
    both = dist.allreduce(xp.concat([d, xp.sum(dxhat * xhat, axis=red, keepdims=True)],
                                    axis=0)) / count
    mean_d, mean_dx = both[:1, ...], both[1:, ...]
    return inv * (dxhat - mean_d - xhat * mean_dx)


class _Normalization(Layer):
    """Shared machinery: the feature axes, their weights, and the affine part."""

    supports_masking = True  # an incoming mask passes through (Keras)

    def __init__(self, axis, epsilon, center, scale, beta_initializer, gamma_initializer,
                 beta_regularizer, gamma_regularizer, **kwargs):
        super().__init__(**kwargs)
        try:
            self.axis = _axes_list(axis)
        except TypeError as e:
            raise TypeError(f"{self.name}: {e}") from None
        if not epsilon > 0:
            raise ValueError(f"{self.name}: epsilon must be > 0, got epsilon={epsilon!r}")
        self.epsilon, self.center, self.scale = float(epsilon), bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)

    def _resolve_axes(self, input_shape):
        ndim = len(input_shape)
        valid = all(-ndim <= a < ndim for a in self.axis)
        axes = sorted({a % ndim for a in self.axis}) if valid else []
        if not valid or len(axes) != len(self.axis) or 0 in axes:
            raise ValueError(f"{self.name}: axis={self.axis} is not a feature axis of "
                             f"inputs of shape {tuple(input_shape)}")
        return axes

    def check_input_shape(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) < 2:
            raise ValueError(f"{self.name}: expects one input of rank >= 2, got shape "
                             f"{input_shape}")
        axes = self._resolve_axes(input_shape)
        if any(input_shape[a] is None for a in axes):
            raise ValueError(f"{self.name}: the normalized axes {self.axis} of the input "
                             f"must be known, got shape {tuple(input_shape)}")
        if self.built and tuple(input_shape[a] for a in axes) != self._param_shape:
            raise ValueError(f"{self.name}: built for feature shape {self._param_shape} on "
                             f"axis {self.axis}, got input shape {tuple(input_shape)}")

    def build(self, input_shape):
        ndim = len(input_shape)
        self._axes = self._resolve_axes(input_shape)
        self._param_shape = tuple(input_shape[a] for a in self._axes)
        self._bshape = tuple(input_shape[i] if i in self._axes else 1 for i in range(ndim))
        self._others = tuple(i for i in range(ndim) if i not in self._axes)
        if self.scale:
            self.add_weight(name="gamma", shape=self._param_shape,
                            initializer=self.gamma_initializer,
                            regularizer=self.gamma_regularizer)
        if self.center:
            self.add_weight(name="beta", shape=self._param_shape,
                            initializer=self.beta_initializer,
                            regularizer=self.beta_regularizer)

    def _b(self, name):
        """A weight reshaped to broadcast against the input."""
        return namespace(self.params[name]).reshape(self.params[name], self._bshape)

    def _affine(self, xhat):
        y = xhat * self._b("gamma") if self.scale else xhat
        return y + self._b("beta") if self.center else y

    def _param_grads(self, dy, xhat, xp):
        """Add dL/dgamma and dL/dbeta; return dL/dxhat."""
        if self.scale:
            g = xp.sum(dy * xhat, axis=self._others)
            self.grads["gamma"] += xp.reshape(g, self._param_shape)
        if self.center:
            self.grads["beta"] += xp.reshape(xp.sum(dy, axis=self._others), self._param_shape)
        return dy * self._b("gamma") if self.scale else dy

    def get_config(self):
        return {**super().get_config(),
                "axis": self.axis[0] if len(self.axis) == 1 else list(self.axis),
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer)}


class BatchNormalization(_Normalization):
    """Normalizes each feature over the batch (and the spatial axes):
    ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta``.

    In training the mean and biased variance of the batch are used, and the moving averages
    are updated, ``moving = momentum * moving + (1 - momentum) * batch``; in inference (and
    whenever the layer is not trainable, as Keras 3) the moving averages are used.

    Parameters
    ----------
    axis : int or list of int, default=-1
        The feature axis: -1 for dense and channels-last inputs, 1 for channels-first.
    momentum : float, default=0.99
    epsilon : float, default=1e-3
    center, scale : bool, default=True
        Whether to learn ``beta`` and ``gamma``.
    beta_initializer, gamma_initializer : default="zeros", "ones"
    moving_mean_initializer, moving_variance_initializer : default="zeros", "ones"
    beta_regularizer, gamma_regularizer : default=None
    synchronized : bool, default=False
        In a data-parallel ``fit`` (:mod:`xpnet.distributed`), compute the batch mean and
        variance over the global batch, all processes together, instead of over each
        process's shard; in one process it changes nothing (Keras 3).
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, synchronized=False,
                 **kwargs):
        super().__init__(axis, epsilon, center, scale, beta_initializer, gamma_initializer,
                         beta_regularizer, gamma_regularizer, **kwargs)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{self.name}: momentum must be in [0, 1], got {momentum!r}")
        self.momentum = float(momentum)
        self.synchronized = bool(synchronized)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)

    def build(self, input_shape):
        super().build(input_shape)
        self.add_weight(name="moving_mean", shape=self._param_shape,
                        initializer=self.moving_mean_initializer,
                        trainable=False)
        self.add_weight(name="moving_variance", shape=self._param_shape,
                        initializer=self.moving_variance_initializer, trainable=False)

    def forward(self, x, training=False):
        xp = namespace(x)
        if training and self.trainable:
            sync = _synchronized(self, x)
            mean = _batch_mean(xp, x, self._others, sync)
            xc = x - mean
            var = _batch_mean(xp, xc * xc, self._others, sync)
            inv = 1.0 / xp.sqrt(var + self.epsilon)
            self._update_moving(mean, var, xp)
            xhat = xc * inv
        else:
            inv = 1.0 / xp.sqrt(self._b("moving_variance") + self.epsilon)
            xhat = (x - self._b("moving_mean")) * inv
            training = False
        return self._affine(xhat), (xhat, inv, training)

    def _update_moving(self, mean, var, xp):
        m = self.momentum
        for name, batch in (("moving_mean", mean), ("moving_variance", var)):
            moving = self.params[name]
            batch = xp.reshape(xp.astype(batch, moving.dtype), self._param_shape)
            moving[...] = moving * m + batch * (1.0 - m)

    def backward(self, ctx, dy):
        xhat, inv, training = ctx
        xp = namespace(dy)
        dxhat = self._param_grads(dy, xhat, xp)
        if not training:
            return dxhat * inv
        sync = _synchronized(self, dy)
        if sync is not None:
            return _normalize_backward_sync(dxhat, xhat, inv, self._others, xp, sync)
        return _normalize_backward(dxhat, xhat, inv, self._others, xp)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum,
                "synchronized": self.synchronized,
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer":
                    initializers.serialize(self.moving_variance_initializer)}


class LayerNormalization(_Normalization):
    """Normalizes each sample over ``axis``:
    ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta``, the same in training and
    inference.

    Parameters
    ----------
    axis : int or list of int, default=-1
    epsilon : float, default=1e-3
    center, scale : bool, default=True
    beta_initializer, gamma_initializer : default="zeros", "ones"
    beta_regularizer, gamma_regularizer : default=None
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, **kwargs):
        super().__init__(axis, epsilon, center, scale, beta_initializer, gamma_initializer,
                         beta_regularizer, gamma_regularizer, **kwargs)

    def _fused(self, x):
        return self._axes == [x.ndim - 1] and _norm.fused(x)

    def forward(self, x, training=False):
        if self._fused(x):  # the last axis, on NumPy: kernels.norm
            y, xhat, inv = _norm.layer_norm(x, self.params.get("gamma"),
                                            self.params.get("beta"), self.epsilon)
            return y, (xhat, inv)
        xp = namespace(x)
        axes = tuple(self._axes)
        mean = xp.mean(x, axis=axes, keepdims=True)
        xc = x - mean
        inv = 1.0 / xp.sqrt(xp.mean(xc * xc, axis=axes, keepdims=True) + self.epsilon)
        xhat = xc * inv
        return self._affine(xhat), (xhat, inv)

    def backward(self, ctx, dy):
        xhat, inv = ctx
        if self._fused(dy):
            dx, dgamma, dbeta = _norm.layer_norm_grad(dy, xhat, inv, self.params.get("gamma"))
            if self.scale:
                self.grads["gamma"] += dgamma
            if self.center:
                self.grads["beta"] += dbeta
            return dx
        xp = namespace(dy)
        dxhat = self._param_grads(dy, xhat, xp)
        return _normalize_backward(dxhat, xhat, inv, tuple(self._axes), xp)


def l2_normalize(x, axes, epsilon):
    """``(x / sqrt(max(sum(x ** 2, axes), epsilon ** 2)), ctx)``: Keras's
    ``ops.normalize(x, axis, order=2, epsilon)``."""
    xp = namespace(x)
    s = xp.sum(x * x, axis=axes, keepdims=True)
    inv = 1.0 / xp.sqrt(xp.maximum(s, epsilon * epsilon))
    return x * inv, (x, inv, s > epsilon * epsilon, axes)


def l2_normalize_grad(ctx, dy):
    """dL/dx of :func:`l2_normalize`; where the norm was clamped, ``x`` only scales."""
    x, inv, unclamped, axes = ctx
    xp = namespace(dy)
    proj = xp.sum(dy * x, axis=axes, keepdims=True) * inv * inv * inv
    return dy * inv - x * xp.where(unclamped, proj, xp.zeros_like(proj))


class GroupNormalization(Layer):
    """Normalizes each sample over groups of channels:
    ``y = gamma * (x - mean_g) / sqrt(var_g + epsilon) + beta``, where the mean and biased
    variance of group ``g`` run over every non-batch axis and the ``channels / groups``
    channels of that group (Wu & He, 2018).

    Parameters
    ----------
    groups : int, default=32
        Number of groups; must divide the channel count. ``-1``: one group per channel
        (instance normalization); ``1``: layer normalization over all axes.
    axis : int, default=-1
        The channel axis.
    epsilon : float, default=1e-3
    center, scale : bool, default=True
    beta_initializer, gamma_initializer : default="zeros", "ones"
    beta_regularizer, gamma_regularizer : default=None
    """

    supports_masking = True  # an incoming mask passes through (Keras)

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(groups, bool) or not isinstance(groups, int) or (
                groups <= 0 and groups != -1):
            raise ValueError(f"{self.name}: groups must be a positive int or -1, got "
                             f"groups={groups!r}")
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"{self.name}: axis must be an int, got axis={axis!r}")
        if beta_constraint is not None or gamma_constraint is not None:
            raise NotImplementedError(f"{self.name}: weight constraints are not supported "
                                      "yet")
        if not epsilon > 0:
            raise ValueError(f"{self.name}: epsilon must be > 0, got epsilon={epsilon!r}")
        self.groups, self.axis, self.epsilon = groups, axis, float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)

    def check_input_shape(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) < 2:
            raise ValueError(f"{self.name}: expects one input of rank >= 2, got shape "
                             f"{input_shape}")
        ndim = len(input_shape)
        if not -ndim <= self.axis < ndim or self.axis % ndim == 0:
            raise ValueError(f"{self.name}: axis={self.axis} is not a feature axis of "
                             f"inputs of shape {tuple(input_shape)}")
        dim = input_shape[self.axis]
        groups = dim if self.groups == -1 else self.groups
        if dim is None or dim < groups or dim % groups:
            raise ValueError(f"{self.name}: the channel axis {self.axis} must be known and "
                             f"divisible by groups={self.groups}, got input shape "
                             f"{tuple(input_shape)}")

    def build(self, input_shape):
        ndim, dim = len(input_shape), input_shape[self.axis]
        self._axis = self.axis % ndim
        self._groups = dim if self.groups == -1 else self.groups
        self._dim = dim
        if self.scale:
            self.add_weight(name="gamma", shape=(dim,), initializer=self.gamma_initializer,
                            regularizer=self.gamma_regularizer)
        if self.center:
            self.add_weight(name="beta", shape=(dim,), initializer=self.beta_initializer,
                            regularizer=self.beta_regularizer)

    def _group_shape(self, shape):
        a = self._axis
        return tuple(shape[:a]) + (self._groups, self._dim // self._groups) + tuple(
            shape[a + 1:])

    def _b(self, name, ndim):
        """A weight shaped to broadcast against the grouped input."""
        shape = [1] * (ndim + 1)
        shape[self._axis], shape[self._axis + 1] = self._groups, self._dim // self._groups
        return namespace(self.params[name]).reshape(self.params[name], tuple(shape))

    def forward(self, x, training=False):
        xp = namespace(x)
        xg = xp.reshape(x, self._group_shape(x.shape))
        red = tuple(i for i in range(1, xg.ndim) if i != self._axis)
        xc = xg - xp.mean(xg, axis=red, keepdims=True)
        inv = 1.0 / xp.sqrt(xp.mean(xc * xc, axis=red, keepdims=True) + self.epsilon)
        xhat = xc * inv
        y = xhat * self._b("gamma", x.ndim) if self.scale else xhat
        y = y + self._b("beta", x.ndim) if self.center else y
        return xp.reshape(y, tuple(x.shape)), (xhat, inv, red)

    def backward(self, ctx, dy):
        xhat, inv, red = ctx
        xp = namespace(dy)
        dyg = xp.reshape(dy, tuple(xhat.shape))
        others = tuple(i for i in range(xhat.ndim) if i not in (self._axis, self._axis + 1))
        if self.scale:
            g = xp.sum(dyg * xhat, axis=others)
            self.grads["gamma"] += xp.reshape(g, (self._dim,))
            dyg = dyg * self._b("gamma", dy.ndim)
        if self.center:
            self.grads["beta"] += xp.reshape(xp.sum(xp.reshape(dy, tuple(xhat.shape)),
                                                    axis=others), (self._dim,))
        return xp.reshape(_normalize_backward(dyg, xhat, inv, red, xp), tuple(dy.shape))

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "axis": self.axis,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": None, "gamma_constraint": None}


class UnitNormalization(Layer):
    """Scales each sample to unit L2 norm over ``axis``:
    ``y = x / sqrt(max(sum(x ** 2), 1e-24))`` (Keras's ``ops.normalize`` with epsilon 1e-12,
    clamped before the square root).

    Parameters
    ----------
    axis : int or list of int, default=-1
    """

    supports_masking = True  # an incoming mask passes through (Keras)

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            self.axis = list(axis)
        elif isinstance(axis, int) and not isinstance(axis, bool):
            self.axis = axis
        else:
            raise TypeError(f"{self.name}: invalid value for axis: expected an int or a "
                            f"list/tuple of ints. Received: axis={axis!r}")
        self.supports_masking = True

    def _axes(self, ndim):
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        return tuple(a % ndim for a in axes)

    def check_input_shape(self, input_shape):
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        if isinstance(input_shape, list) or any(
                not -len(input_shape) <= a < len(input_shape) for a in axes):
            raise ValueError(f"{self.name}: axis {self.axis} is out of bounds for input "
                             f"shape {input_shape}")

    def forward(self, x, training=False):
        return l2_normalize(x, self._axes(x.ndim), 1e-12)

    def backward(self, ctx, dy):
        return l2_normalize_grad(ctx, dy)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
