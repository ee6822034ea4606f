"""Array-API compositions of the fused operations: the fallback for any namespace, and the
oracle the Numba kernels are tested against. Every function takes ``xp`` explicitly.
"""

import math

# Activations: what backward needs saved. "y" = the output, "z" = the pre-activation.
# An output suffices wherever f is monotone and its derivative is a function of f.
SAVES = {
    None: None,
    "linear": None,
    "relu": "y",
    "relu6": "y",
    "leaky_relu": "y",
    "elu": "y",
    "selu": "y",
    "sigmoid": "y",
    "hard_sigmoid": "y",
    "tanh": "y",
    "softplus": "y",
    "softsign": "y",
    "exponential": "y",
    "softmax": "y",
    "log_softmax": "y",
    "gelu": "z",
    "gelu_tanh": "z",
    "silu": "z",
}
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

# erf is not in the array API standard. Cephes' ndtr.c rational approximations (Moshier),
# accurate to double rounding, so that exact GELU passes float64 gradient checks.
_ERF_T = (9.60497373987051638749e0, 9.00260197203842689217e1, 2.23200534594684319226e3,
          7.00332514112805075473e3, 5.55923013010394962768e4)
_ERF_U = (3.35617141647503099647e1, 5.21357949780152679795e2, 4.59432382970980127987e3,
          2.26290000613890934246e4, 4.92673942608635921086e4)
_ERFC_P = (2.46196981473530512524e-10, 5.64189564831068821977e-1, 7.46321056442269912687e0,
           4.86371970985681366614e1, 1.96520832956077098242e2, 5.26445194995477358631e2,
           9.34528527171957607540e2, 1.02755188689515710272e3, 5.57535335369399327526e2)
_ERFC_Q = (1.32281951154744992508e1, 8.67072140885989742329e1, 3.54937778887819891062e2,
           9.75708501743205489753e2, 1.82390916687909736289e3, 2.24633760818710981792e3,
           1.65666309194161350182e3, 5.57535340817727675546e2)
_ERFC_R = (5.64189583547755073984e-1, 1.27536670759978104416e0, 5.01905042251180477414e0,
           6.16021097993053585195e0, 7.40974269950448939160e0, 2.97886665372100240670e0)
_ERFC_S = (2.26052863220117276590e0, 9.39603524938001434673e0, 1.20489539808096656605e1,
           1.70814450747565897222e1, 9.60896809063285878198e0, 3.36907645100081516050e0)


def _poly(x, coefs, monic=False):
    r = x + coefs[0] if monic else x * 0.0 + coefs[0]
    for c in coefs[1:]:
        r = r * x + c
    return r


def erf(x, xp):
    """Error function, elementwise, to double rounding (max error 2.2e-16 on [-10, 10])."""
    ax = xp.abs(x)
    xs = xp.clip(x, -1.0, 1.0)  # each branch sees only its own range: no overflow warnings
    z = xs * xs
    small = xs * _poly(z, _ERF_T) / _poly(z, _ERF_U, monic=True)
    a = xp.clip(ax, 1.0, 30.0)  # keeps the unused branch finite
    e = xp.exp(-(a * a))
    erfc = xp.where(
        a < 8.0,
        e * _poly(a, _ERFC_P) / _poly(a, _ERFC_Q, monic=True),
        e * _poly(a, _ERFC_R) / _poly(a, _ERFC_S, monic=True),
    )
    return xp.where(ax < 1.0, small, xp.sign(x) * (1.0 - erfc))


def sigmoid(z, xp):
    """Logistic function, without overflow for large ``|z|``."""
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softplus(z, xp):
    """``log(1 + exp(z))`` without overflow."""
    return xp.maximum(z, 0.0) + xp.log1p(xp.exp(-xp.abs(z)))


def logsumexp(z, xp, axis=-1):
    m = xp.max(z, axis=axis, keepdims=True)
    return m + xp.log(xp.sum(xp.exp(z - m), axis=axis, keepdims=True))


def activation(kind, z, xp, alpha=None):
    """``f(z)`` for a named activation; ``alpha`` is leaky_relu's slope or elu's alpha."""
    if kind is None or kind == "linear":
        return z
    if kind == "relu":
        return xp.maximum(z, 0.0)
    if kind == "relu6":
        return xp.clip(z, 0.0, 6.0)
    if kind == "leaky_relu":
        return xp.where(z > 0, z, z * alpha)
    if kind == "elu":
        return xp.where(z > 0, z, alpha * xp.expm1(xp.minimum(z, 0.0)))
    if kind == "selu":
        neg = (_SELU_SCALE * _SELU_ALPHA) * xp.expm1(xp.minimum(z, 0.0))
        return xp.where(z > 0, _SELU_SCALE * z, neg)
    if kind == "sigmoid":
        return sigmoid(z, xp)
    if kind == "hard_sigmoid":
        return xp.clip(z / 6.0 + 0.5, 0.0, 1.0)
    if kind == "tanh":
        return xp.tanh(z)
    if kind == "softplus":
        return softplus(z, xp)
    if kind == "softsign":
        return z / (1.0 + xp.abs(z))
    if kind == "exponential":
        return xp.exp(z)
    if kind == "softmax":
        e = xp.exp(z - xp.max(z, axis=-1, keepdims=True))
        return e / xp.sum(e, axis=-1, keepdims=True)
    if kind == "log_softmax":
        return z - logsumexp(z, xp)
    if kind == "gelu":
        return 0.5 * z * (1.0 + erf(z * (1.0 / math.sqrt(2.0)), xp))
    if kind == "gelu_tanh":
        return 0.5 * z * (1.0 + xp.tanh(_SQRT_2_OVER_PI * (z + 0.044715 * z * z * z)))
    if kind == "silu":
        return z * sigmoid(z, xp)
    raise ValueError(f"unknown activation {kind!r}")


def activation_grad(kind, dy, saved, xp, alpha=None):
    """``dz = dy * f'(z)`` from ``saved`` (the output, or the input where SAVES says "z")."""
    y = z = saved
    if kind is None or kind == "linear":
        return dy
    if kind == "relu":
        return xp.where(y > 0, dy, 0.0)
    if kind == "relu6":
        return xp.where((y > 0) & (y < 6.0), dy, 0.0)
    if kind == "leaky_relu":
        return xp.where(y > 0, dy, dy * alpha)
    if kind == "elu":
        return xp.where(y > 0, dy, dy * (y + alpha))
    if kind == "selu":
        return xp.where(y > 0, dy * _SELU_SCALE, dy * (y + _SELU_SCALE * _SELU_ALPHA))
    if kind == "sigmoid":
        return dy * y * (1.0 - y)
    if kind == "hard_sigmoid":
        return xp.where((y > 0) & (y < 1.0), dy / 6.0, 0.0)
    if kind == "tanh":
        return dy * (1.0 - y * y)
    if kind == "softplus":
        return -dy * xp.expm1(-y)
    if kind == "softsign":
        s = 1.0 - xp.abs(y)
        return dy * s * s
    if kind == "exponential":
        return dy * y
    if kind == "softmax":
        return y * (dy - xp.sum(dy * y, axis=-1, keepdims=True))
    if kind == "log_softmax":
        return dy - xp.exp(y) * xp.sum(dy, axis=-1, keepdims=True)
    if kind == "gelu":
        cdf = 0.5 * (1.0 + erf(z * (1.0 / math.sqrt(2.0)), xp))
        return dy * (cdf + z * _INV_SQRT_2PI * xp.exp(-0.5 * z * z))
    if kind == "gelu_tanh":
        u = _SQRT_2_OVER_PI * (z + 0.044715 * z * z * z)
        t = xp.tanh(u)
        du = _SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * z * z)
        return dy * (0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * du)
    if kind == "silu":
        s = sigmoid(z, xp)
        return dy * s * (1.0 + z * (1.0 - s))
    raise ValueError(f"unknown activation {kind!r}")


def _targets(logits, target, xp, label_smoothing):
    """Dense (N, C) float targets from int labels (N,) or float targets (N, C)."""
    n, c = logits.shape
    if target.ndim == 1:
        classes = xp.arange(c, device=_device(logits), dtype=target.dtype)
        t = xp.astype(xp.reshape(target, (n, 1)) == classes, logits.dtype)
    else:
        t = xp.astype(target, logits.dtype)
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + label_smoothing / c
    return t


def _device(x):
    return getattr(x, "device", None)


def softmax_cross_entropy(logits, target, xp, sample_weight=None, label_smoothing=0.0):
    """Per-row cross-entropy of ``softmax(logits)`` against ``target``, and its gradient.

    Parameters
    ----------
    logits : array (N, C), float
    target : int array (N,) of class indices, or float array (N, C) of (soft) targets
    sample_weight : array (N,) or None
    label_smoothing : float, default=0.0

    Returns
    -------
    loss : array (N,), ``-sum(t * log_softmax(logits))`` per row (unweighted)
    dlogits : array (N, C), the gradient of ``sum(w * loss) / N``: ``w * (p * sum(t) - t) / N``
    """
    n = logits.shape[0]
    shifted = logits - xp.max(logits, axis=-1, keepdims=True)
    e = xp.exp(shifted)
    s = xp.sum(e, axis=-1, keepdims=True)
    logp = shifted - xp.log(s)
    p = e / s
    t = _targets(logits, target, xp, label_smoothing)
    loss = -xp.sum(t * logp, axis=-1)
    dlogits = p * xp.sum(t, axis=-1, keepdims=True) - t
    scale = 1.0 / max(n, 1)
    if sample_weight is not None:
        w = xp.reshape(xp.astype(sample_weight, logits.dtype), (n, 1))
        return loss, dlogits * (w * scale)
    return loss, dlogits * scale


def adam(param, grad, m, v, xp, *, lr, beta_1, beta_2, epsilon, step, vhat=None, decay=0.0):
    """One Adam step in place, as Keras: ``epsilon`` is added to ``sqrt(v)`` and the bias
    corrections fold into the step size ``lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``.
    ``vhat`` (AMSGrad) keeps the running maximum of ``v``. ``decay`` (AdamW: the learning
    rate times the weight decay) first shrinks the weights, ``p -= decay * p``.
    """
    if decay:
        param -= decay * param
    alpha = lr * math.sqrt(1.0 - beta_2**step) / (1.0 - beta_1**step)
    m += (grad - m) * (1.0 - beta_1)
    v += (grad * grad - v) * (1.0 - beta_2)
    denom = v
    if vhat is not None:
        vhat[...] = xp.maximum(vhat, v)
        denom = vhat
    param -= (alpha * m) / (xp.sqrt(denom) + epsilon)


def rmsprop(param, grad, v, xp, *, lr, rho, epsilon, momentum_buf=None, momentum=0.0, mg=None):
    """One RMSprop step in place, as Keras: ``v = rho v + (1 - rho) g^2``,
    ``step = lr g / sqrt(v - mg^2 + epsilon)`` (``mg``, the mean gradient, when centered),
    then heavy-ball momentum on the step when ``momentum > 0``.
    """
    v *= rho
    v += (1.0 - rho) * (grad * grad)
    denom = v
    if mg is not None:
        mg *= rho
        mg += (1.0 - rho) * grad
        denom = v - mg * mg
    step = lr * grad / xp.sqrt(denom + epsilon)
    if momentum_buf is not None:
        momentum_buf *= momentum
        momentum_buf += step
        step = momentum_buf
    param -= step


def sgd(param, grad, xp, *, lr, momentum=0.0, nesterov=False, velocity=None):
    """One SGD step in place, as Keras: ``v = momentum v - lr g``; ``p += v`` or, with
    Nesterov, ``p += momentum v - lr g``.
    """
    if velocity is None:
        param -= lr * grad
        return
    velocity *= momentum
    velocity -= lr * grad
    if nesterov:
        param += momentum * velocity - lr * grad
    else:
        param += velocity


def adagrad(param, grad, acc, xp, *, lr, epsilon):
    """One Adagrad step in place, as Keras: ``acc += g^2``, ``p -= lr g / sqrt(acc + epsilon)``."""
    acc += grad * grad
    param -= lr * grad / xp.sqrt(acc + epsilon)
