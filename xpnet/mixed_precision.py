"""Dynamic loss scaling for low-precision training: Keras 3's ``LossScaleOptimizer``.

In float16 small gradients underflow to zero. The loss (and so every gradient) is
multiplied by a scale before the backward pass, and the gradients are divided by it again
before the update. When a step's gradients overflow (an inf or NaN), the step is skipped
and the scale halved; after ``dynamic_growth_steps`` finite steps in a row it is doubled
(Keras 3's defaults: ``initial_scale=2**15``, ``dynamic_growth_steps=2000``).

Mixed-precision *policies* (``set_global_policy("mixed_float16")``: float32 weights,
float16 compute) are not here yet: they need the engine to cast each layer's inputs and
weights, which waits for the define-by-run engine (see the design in the robustness
notes). A model built in float16 (``dtype="float16"`` on its layers) trains with this
optimizer on every backend.
"""

import math

from xpnet import optimizers
from xpnet.backend import namespace

__all__ = ["LossScaleOptimizer"]


class LossScaleOptimizer(optimizers.Optimizer):
    """An optimizer that scales the loss dynamically, wrapping ``inner_optimizer``.

    Parameters
    ----------
    inner_optimizer : Optimizer or str
        The optimizer that applies the unscaled gradients.
    initial_scale : float, default=2**15
    dynamic_growth_steps : int, default=2000
        Finite steps in a row after which the scale doubles.

    Each step reads one flag back to the host (whether every gradient is finite), as
    Keras's eager backends do.
    """

    def __init__(self, inner_optimizer, initial_scale=2.0**15, dynamic_growth_steps=2000,
                 name=None, **kwargs):
        if kwargs:
            raise TypeError(f"LossScaleOptimizer: unexpected argument(s) {sorted(kwargs)}")
        inner = optimizers.get(inner_optimizer)
        if isinstance(inner, LossScaleOptimizer):
            raise ValueError("LossScaleOptimizer: the inner optimizer scales the loss already")
        if not (isinstance(initial_scale, (int, float)) and math.isfinite(initial_scale)
                and initial_scale > 0):
            raise ValueError(f"LossScaleOptimizer: initial_scale must be a finite number > 0. "
                             f"Received: initial_scale={initial_scale!r}")
        if isinstance(dynamic_growth_steps, bool) or not isinstance(dynamic_growth_steps, int) \
                or dynamic_growth_steps < 1:
            raise ValueError(f"LossScaleOptimizer: dynamic_growth_steps must be a positive "
                             f"int. Received: dynamic_growth_steps={dynamic_growth_steps!r}")
        self.inner_optimizer = inner
        self.initial_scale, self.dynamic_growth_steps = float(initial_scale), \
            dynamic_growth_steps
        self.dynamic_scale, self.step_counter = float(initial_scale), 0
        self.name = name or "loss_scale_optimizer"

    # -- the scaling -------------------------------------------------------------------
    def scale_loss(self, loss):
        """``loss * scale`` (also applied to the loss's gradient by the training step)."""
        return loss * self.dynamic_scale

    def check_model(self, model):
        for layer in model._leaf_layers():
            if getattr(layer, "activity_regularizer", None) is not None:
                raise NotImplementedError(
                    f"LossScaleOptimizer: layer {layer.name!r} has an activity regularizer, "
                    "whose gradient the engine adds unscaled; remove it or use the inner "
                    "optimizer alone")

    def apply_gradients(self, grads_and_vars):
        """Unscale, then apply with the inner optimizer if every gradient is finite; else
        skip the step and halve the scale."""
        pairs = [(g, p) for g, p in grads_and_vars if g is not None]
        if not pairs:
            return
        xp = namespace(pairs[0][0])
        finite = all(bool(xp.all(xp.isfinite(g))) for g, _ in pairs)
        if not finite:
            self.dynamic_scale /= 2.0
            self.step_counter = 0
            return
        inverse = 1.0 / self.dynamic_scale
        self.inner_optimizer.apply_gradients([(g * inverse, p) for g, p in pairs])
        self.step_counter += 1
        if self.step_counter >= self.dynamic_growth_steps:
            self.dynamic_scale *= 2.0
            self.step_counter = 0

    # -- everything else is the inner optimizer's ---------------------------------------
    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    @iterations.setter
    def iterations(self, value):
        self.inner_optimizer.iterations = value

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self.inner_optimizer.learning_rate = value

    @property
    def _learning_rate(self):
        return self.inner_optimizer._learning_rate

    @property
    def per_variable(self):
        return self.inner_optimizer.per_variable

    def name_variables(self, named):
        self.inner_optimizer.name_variables(named)

    def build_slots(self, param):
        return self.inner_optimizer.build_slots(param)

    def get_slots(self, param):
        return self.inner_optimizer.get_slots(param)

    def set_slots(self, param, slots):
        self.inner_optimizer.set_slots(param, slots)

    def variables(self):
        return self.inner_optimizer.variables()

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        self.inner_optimizer.exclude_from_weight_decay(var_list, var_names)

    def get_config(self):
        return {"name": self.name,
                "inner_optimizer": {"class_name": type(self.inner_optimizer).__name__,
                                    "config": self.inner_optimizer.get_config()},
                "initial_scale": self.initial_scale,
                "dynamic_growth_steps": self.dynamic_growth_steps}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inner = config.pop("inner_optimizer")
        inner_cls = (custom_objects or {}).get(inner.get("class_name")) or \
            optimizers._BY_NAME.get(str(inner.get("class_name", "")).lower())
        if inner_cls is None:
            raise ValueError(f"LossScaleOptimizer: unknown inner optimizer "
                             f"{inner.get('class_name')!r}; pass it in custom_objects")
        return cls(inner_cls.from_config(inner.get("config", {}), custom_objects), **config)


optimizers._BY_NAME.setdefault("lossscaleoptimizer", LossScaleOptimizer)
