"""Nadam, Adamax, Adadelta, Ftrl and Lion with Keras 3's names, defaults and update rules
(``keras/src/optimizers/*.py``); each step is one fused kernel over the flat buffer
(:mod:`xpnet.kernels.optim`). Exported through :mod:`xpnet.optimizers`."""

from xpnet import kernels
from xpnet.backend import namespace
from xpnet.optimizers import Optimizer

__all__ = ["Nadam", "Adamax", "Adadelta", "Ftrl", "Lion"]


def _zeros_like(p):
    return namespace(p).zeros_like(p)


class Nadam(Optimizer):
    """Adam with Nesterov momentum, as Keras: the momentum schedule
    ``u_t = beta_1 (1 - 0.5 * 0.96^t)``, ``m_hat = u_{t+1} m / (1 - u_1...u_{t+1}) +
    (1 - u_t) g / (1 - u_1...u_t)``, ``p -= lr m_hat / (sqrt(v / (1 - beta_2^t)) + eps)``.

    Defaults: ``learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7``.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self._u_product = (0, 1.0)  # (step, u_1 * ... * u_step)

    def build_slots(self, param):
        return {"momentum": _zeros_like(param), "velocity": _zeros_like(param)}

    def u_product(self, step):
        """``u_1 * ... * u_step`` (Keras's ``_u_product``), advanced once per step and
        recomputed from the step count after a restore."""
        done, product = self._u_product
        if done > step:
            done, product = 0, 1.0
        for t in range(done + 1, step + 1):
            product *= kernels.nadam_u(self.beta_1, t)
        self._u_product = (step, product)
        return product

    def update_step(self, grad, param, lr, slots):
        t = self.iterations
        kernels.nadam(param, grad, slots["momentum"], slots["velocity"], lr=lr,
                      beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon, step=t,
                      u_product=self.u_product(t))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Adamax(Optimizer):
    """Adam with the infinity norm, as Keras: ``m += (g - m)(1 - beta_1)``,
    ``u = max(beta_2 u, |g|)``, ``p -= lr m / ((1 - beta_1^t)(u + epsilon))``.

    Defaults: ``learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7``.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def build_slots(self, param):
        return {"momentum": _zeros_like(param), "norm": _zeros_like(param)}

    def update_step(self, grad, param, lr, slots):
        kernels.adamax(param, grad, slots["momentum"], slots["norm"], lr=lr,
                       beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                       step=self.iterations)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Adadelta(Optimizer):
    """Adadelta as Keras: ``E[g^2] = rho E[g^2] + (1 - rho) g^2``,
    ``d = -sqrt(E[d^2] + eps) / sqrt(E[g^2] + eps) * g``,
    ``E[d^2] = rho E[d^2] + (1 - rho) d^2``, ``p += lr d``.

    Defaults: ``learning_rate=0.001, rho=0.95, epsilon=1e-7``.
    """

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho, self.epsilon = rho, epsilon

    def build_slots(self, param):
        return {"accumulated_grad": _zeros_like(param),
                "accumulated_delta_var": _zeros_like(param)}

    def update_step(self, grad, param, lr, slots):
        kernels.adadelta(param, grad, slots["accumulated_grad"],
                         slots["accumulated_delta_var"], lr=lr, rho=self.rho,
                         epsilon=self.epsilon)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Ftrl(Optimizer):
    """FTRL-proximal as Keras (McMahan et al., 2013), with L1, L2 and L2-shrinkage terms.

    Defaults: ``learning_rate=0.001, learning_rate_power=-0.5,
    initial_accumulator_value=0.1``, every regularization strength and ``beta`` 0.
    """

    def __init__(self, learning_rate=0.001, learning_rate_power=-0.5,
                 initial_accumulator_value=0.1, l1_regularization_strength=0.0,
                 l2_regularization_strength=0.0, l2_shrinkage_regularization_strength=0.0,
                 beta=0.0, **kwargs):
        super().__init__(learning_rate, **kwargs)
        checks = {"initial_accumulator_value": initial_accumulator_value,
                  "l1_regularization_strength": l1_regularization_strength,
                  "l2_regularization_strength": l2_regularization_strength,
                  "l2_shrinkage_regularization_strength": l2_shrinkage_regularization_strength}
        for name, value in checks.items():
            if value < 0.0:
                raise ValueError(f"Ftrl: `{name}` needs to be positive or zero. "
                                 f"Received: {name}={value}.")
        if learning_rate_power > 0.0:
            raise ValueError("Ftrl: `learning_rate_power` needs to be negative or zero. "
                             f"Received: learning_rate_power={learning_rate_power}.")
        self.learning_rate_power = learning_rate_power
        self.initial_accumulator_value = initial_accumulator_value
        self.l1_regularization_strength = l1_regularization_strength
        self.l2_regularization_strength = l2_regularization_strength
        self.l2_shrinkage_regularization_strength = l2_shrinkage_regularization_strength
        self.beta = beta

    def build_slots(self, param):
        xp = namespace(param)
        return {"accumulator": xp.full_like(param, self.initial_accumulator_value),
                "linear": _zeros_like(param)}

    def update_step(self, grad, param, lr, slots):
        kernels.ftrl(param, grad, slots["accumulator"], slots["linear"], lr=lr,
                     lr_power=self.learning_rate_power, l1=self.l1_regularization_strength,
                     l2=self.l2_regularization_strength,
                     l2_shrinkage=self.l2_shrinkage_regularization_strength, beta=self.beta)

    def get_config(self):
        return {**super().get_config(), "learning_rate_power": self.learning_rate_power,
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1_regularization_strength": self.l1_regularization_strength,
                "l2_regularization_strength": self.l2_regularization_strength,
                "l2_shrinkage_regularization_strength":
                    self.l2_shrinkage_regularization_strength,
                "beta": self.beta}


class Lion(Optimizer):
    """Lion (Chen et al., 2023) as Keras: ``p -= lr sign(beta_1 m + (1 - beta_1) g)``,
    then ``m = beta_2 m + (1 - beta_2) g``.

    Defaults: ``learning_rate=0.001, beta_1=0.9, beta_2=0.99``.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, **kwargs):
        super().__init__(learning_rate, **kwargs)
        if beta_1 <= 0 or beta_1 > 1:
            raise ValueError("Lion: argument `beta_1` must be in the [0, 1] range. "
                             f"Received: beta_1={beta_1}.")
        self.beta_1, self.beta_2 = beta_1, beta_2

    def build_slots(self, param):
        return {"momentum": _zeros_like(param)}

    def update_step(self, grad, param, lr, slots):
        kernels.lion(param, grad, slots["momentum"], lr=lr, beta_1=self.beta_1,
                     beta_2=self.beta_2)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}
