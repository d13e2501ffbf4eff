"""sg.expectation and sg.Auto against closed forms, written as outside users write JAX."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.scipy.stats import norm

import simgrad as sg

KEY = jax.random.key(7)


def coin(p, key):  # E = p: a discrete draw
    return sg.random.bernoulli(key, p)


def above(theta, key):  # E = P(N(theta, 1) > 0) = Φ(theta): a jump after a continuous draw
    return (sg.random.normal(key, theta) > 0).astype(theta.dtype)


def cube(theta, key):  # E = θ³ + 3θ, E' = 3θ² + 3, E'' = 6θ: smooth
    return (theta + jax.random.normal(key)) ** 3


def stats(theta, key):  # a pytree θ, a vector output: E = (a, b²), Jacobian [[1, 0], [0, 2b]]
    return jnp.stack([theta["a"] * jax.random.exponential(key), theta["b"] ** 2])


COIN = sg.expectation(coin, n_samples=4000)
ABOVE = sg.expectation(above, n_samples=4000)
CUBE = sg.expectation(cube, n_samples=4000)


def test_calibration_loss_gradient_is_unbiased_with_independent_value_and_gradient():
    # (E[coin] - 0.7)² at p = 0.5: the derivative is 2 (0.5 - 0.7) · 1 = -0.4
    loss = lambda p, key: (COIN(p, key) - 0.7) ** 2  # noqa: E731
    value, g = jax.value_and_grad(loss)(0.5, KEY)
    est = COIN.estimate(0.5, KEY)
    assert float(est.value) == pytest.approx(float(COIN(0.5, KEY)))
    assert float(est.grad) == pytest.approx(float(jax.grad(COIN)(0.5, KEY)))
    assert float(value) == pytest.approx((float(est.value) - 0.7) ** 2)
    sd = 2 * np.hypot(0.2 * float(est.grad_stderr), float(est.value_stderr))
    assert abs(float(g) + 0.4) < 4 * sd
    # the value and the gradient use independent keys: not the same samples
    assert float(est.value) != float(sg.gradient(coin, 0.5, KEY, method=sg.StochasticTriples(),
                                                 n_samples=4000).value)  # fmt: skip


def test_a_sum_of_expectations_under_jit_sees_each_estimator():
    # Φ(θ) + θ³ + 3θ: derivative φ(θ) + 3θ² + 3, one by the score function, one pathwise
    total = jax.jit(jax.grad(lambda t, k: ABOVE(t, k) + CUBE(t, jax.random.fold_in(k, 1))))
    g = float(total(0.3, KEY))
    s1 = ABOVE.estimate(0.3, KEY).grad_stderr
    s2 = CUBE.estimate(0.3, jax.random.fold_in(KEY, 1)).grad_stderr
    exact = norm.pdf(0.3) + 3 * 0.3**2 + 3
    assert abs(g - exact) < 4 * float(jnp.hypot(s1, s2))


def test_an_equinox_network_whose_output_is_theta():
    net = eqx.nn.Linear(2, 1, key=jax.random.key(1))
    x = jnp.array([0.5, -1.0])

    def loss(net, key):  # E[cube] at θ = net(x): dL/dW = (3θ² + 3) x, dL/db = 3θ² + 3
        return CUBE(net(x)[0], key)

    g = eqx.filter_grad(loss)(net, KEY)
    theta = net(x)[0]
    est = CUBE.estimate(theta, KEY)
    exact = 3 * theta**2 + 3
    assert abs(float(g.bias[0]) - exact) < 4 * float(est.grad_stderr)
    np.testing.assert_allclose(g.weight[0], g.bias[0] * x, rtol=1e-6)


def test_vmap_over_theta_and_jacobians_of_vector_outputs():
    thetas = jnp.array([-1.0, 0.0, 2.0])
    g = jax.vmap(jax.grad(CUBE), in_axes=(0, None))(thetas, KEY)
    for t, gi in zip(thetas, g, strict=True):
        est = CUBE.estimate(t, KEY)
        assert float(gi) == pytest.approx(float(est.grad))
        assert abs(float(gi) - (3 * t**2 + 3)) < 4 * float(est.grad_stderr)
    E = sg.expectation(stats, method=sg.Pathwise(), n_samples=2000)
    theta = {"a": 2.0, "b": 3.0}
    rev, fwd = jax.jacrev(E)(theta, KEY), jax.jacfwd(E)(theta, KEY)
    for jac in (rev, fwd):
        assert float(jac["b"][0]) == 0 and float(jac["b"][1]) == 6.0 and float(jac["a"][1]) == 0
    assert float(rev["a"][0]) == pytest.approx(float(fwd["a"][0]))
    assert abs(float(rev["a"][0]) - 1.0) < 4 * float(E.estimate(theta, KEY).grad_stderr["a"][0])
    tangent = jax.jvp(lambda t: E(t, KEY), (theta,), ({"a": 1.0, "b": 1.0},))[1]
    assert float(tangent[1]) == 6.0


def test_an_optax_loop_calibrates_a_probability():
    opt = optax.adam(0.05)
    loss = lambda p, key: (COIN(p, key) - 0.7) ** 2  # noqa: E731

    @jax.jit
    def step(carry, key):
        p, state = carry
        updates, state = opt.update(jax.grad(loss)(p, key), state)
        return (optax.apply_updates(p, updates), state), None

    p0 = jnp.asarray(0.3)
    with jax.numpy_dtype_promotion("standard"):  # optax's own arithmetic mixes dtypes
        (p, _), _ = jax.lax.scan(step, (p0, opt.init(p0)), jax.random.split(KEY, 150))
    assert abs(float(p) - 0.7) < 0.03  # sampling noise of 4000 coins: sd 0.007


def test_second_derivatives_pathwise_of_pathwise_or_a_clear_error():
    h = float(jax.hessian(CUBE)(0.5, KEY))  # per-sample 6 (θ + Z): sd 6
    assert abs(h - 3.0) < 4 * 6 / np.sqrt(4000)
    with pytest.raises(TypeError, match="second derivative.*ScoreFunction"):
        jax.hessian(ABOVE)(0.3, KEY)
    kinked = sg.expectation(lambda t, k: jnp.maximum(t + jax.random.normal(k), 0.0),
                            method=sg.Pathwise(), n_samples=8)  # fmt: skip
    with pytest.raises(TypeError, match="kink"):
        jax.grad(jax.grad(kinked))(0.0, KEY)


def test_differentiating_an_estimate_by_accident_names_sg_expectation():
    for transform in (jax.grad, jax.jacfwd):
        with pytest.raises(TypeError, match="sg.expectation"):
            transform(lambda t: sg.gradient(coin, t, KEY, method=sg.Hybrid(),
                                            n_samples=8).value)(0.5)  # fmt: skip
    with pytest.raises(TypeError, match="closes over a value"):
        jax.grad(lambda a: sg.expectation(lambda t, k: a * t, n_samples=2)(1.0, KEY))(2.0)


def test_nan_samples_and_bad_arguments_raise():
    E = sg.expectation(lambda t, k: jnp.log(jax.random.uniform(k) - 0.5) * t, n_samples=16)
    with pytest.raises(sg.SimulationError, match="sg.expectation"):
        with sg.simulation_errors():
            jax.block_until_ready(E(1.0, KEY))
    with pytest.raises(ValueError, match="n_samples"):
        sg.expectation(coin, n_samples=1)
    with pytest.raises(TypeError, match="method"):
        sg.expectation(coin, method=sg.Pathwise, n_samples=4)
    with pytest.raises(TypeError, match="key"):
        COIN(0.5, 0)


# --- sg.Auto: the choice, the reason, and the answer --------------------------------------


def many_coins(p, key):  # E = Σ p_i; 6 parameters > few
    return jnp.sum(sg.random.bernoulli(key, p))


def fixed_jump(theta, key):  # E = θ² + 1 for θ < 1: a jump in θ with no randomness
    return jnp.where(theta > 1.0, 0.0, theta**2) + jax.random.normal(key) ** 2


def hidden_jump(theta, key):  # θ meets the noise where no change of variables applies
    z = jax.random.normal(key)
    return (theta * z * z < 1.0).astype(theta.dtype)


@pytest.mark.parametrize(
    ("sim", "theta", "exact", "chosen"),
    [
        (above, 0.3, norm.pdf(0.3), "ScoreFunction"),
        (coin, 0.3, 1.0, "StochasticTriples"),
        (many_coins, jnp.full(6, 0.3), jnp.ones(6), "Hybrid"),
        (cube, 0.5, 3.75, "Pathwise(mode='forward')"),
        (lambda t, k: jnp.sum(cube(t, k)), jnp.full(5, 0.5), jnp.full(5, 3.75), "Pathwise()"),
        (fixed_jump, 0.5, 1.0, "Pathwise(mode='forward')"),
    ],
)
def test_auto_chooses_by_the_rules_and_is_unbiased(sim, theta, exact, chosen):
    est = sg.gradient(sim, theta, KEY, method=sg.Auto(), n_samples=2000)
    assert est.method == f"Auto() → {chosen}" or est.method.startswith(f"Auto() → {chosen}(")
    assert est.notes and f"note: {est.notes[0]}" in repr(est)
    assert np.all(np.abs(est.grad - exact) <= 4 * est.grad_stderr + 1e-12)
    if sim is fixed_jump:
        assert "sg.smooth" in est.notes[1] and "sg.smooth" in repr(est)


def test_auto_warns_and_notes_when_no_estimator_is_unbiased():
    with pytest.warns(sg.BiasWarning, match="biased.*threshold"):
        est = sg.gradient(hidden_jump, 1.0, KEY, method=sg.Auto(), n_samples=8)
    assert "Pathwise" in est.method and est.claim == "biased"
    assert any("cannot run" in n and "sg.smooth" in n for n in est.notes)
    with pytest.raises(ValueError, match="few"):
        sg.Auto(few=-1)
