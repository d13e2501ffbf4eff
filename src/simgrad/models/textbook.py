"""Two textbook examples: one forward-Euler step, and a kink."""

import jax.numpy as jnp

from .base import AbstractModel


class EulerDecay(AbstractModel):
    r"""One forward-Euler step of the decay $\dot y = -p\,y^2$: $y_1 = y_0 - h\,p\,y_0^2$.

    The textbook example of forward-mode AD: seeding $(p, 1)$ gives
    $\partial y_1 / \partial p = -h\,y_0^2$ exactly. Deterministic; ``theta`` is ``p``.

    >>> import jax, simgrad as sg
    >>> model = sg.models.EulerDecay(y0=2.0, h=0.1)
    >>> float(model(0.5, jax.random.key(0))), model.exact_grad(0.5)
    (1.8, -0.4)
    """

    y0: float = 1.0
    h: float = 0.1

    name = "euler"
    summary = "one forward-Euler step y1 = y0 - h·p·y0² of dy/dt = -p·y²; ∂y1/∂p = -h·y0²"
    stochastic = False
    n_samples = 2

    def __call__(self, theta, key):
        return self.y0 - self.h * theta * self.y0**2

    def default_theta(self):
        return 0.5

    def exact_value(self, theta):
        return self.y0 - self.h * float(theta) * self.y0**2

    def exact_grad(self, theta):
        return -self.h * self.y0**2


class Kink(AbstractModel):
    r"""The kink $f(\theta) = \min(\theta^2, 2\theta)$, not differentiable at $\theta = 2$.

    At $\theta = 2$ both branches tie: the slope is 4 from the left ($\theta^2$) and 2 from
    the right ($2\theta$). AD silently returns one number anyway, and central finite
    differences return their average, 3. ``exact_grad`` is ``None`` at the kinks
    $\theta \in \{0, 2\}$.
    """

    name = "kink"
    summary = (
        "min(θ², 2θ) at θ = 2 has no derivative: slope 4 from the left, 2 from the right. "
        "AD and central differences silently return 3, forward differences 2"
    )
    stochastic = False
    n_samples = 2

    def __call__(self, theta, key):
        return jnp.minimum(theta**2, 2 * theta)

    def default_theta(self):
        return 2.0

    def exact_value(self, theta):
        t = float(theta)
        return min(t * t, 2 * t)

    def exact_grad(self, theta):
        t = float(theta)
        if t in (0.0, 2.0):
            return None
        return 2 * t if 0 < t < 2 else 2.0
