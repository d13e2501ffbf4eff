"""Programs written the way outside code is written, for the checker's corpus test.

Each program is ``sim(theta, key) -> scalar`` at the point ``POINTS[name]``. A line that
the checker must report carries ``# CULPRIT: kind`` (several kinds separated by commas);
a program with no such line must be reported clean. Nothing here knows simgrad's gallery:
diffrax solves, equinox MLPs, jax.scipy and optax functions, norms, interpolation, sorting.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax import lax

# --- ODEs ---------------------------------------------------------------------------------


def _decay(t, y, args):
    return -args["k"] * y + args["c"]


def diffrax_default_adjoint_adaptive(theta, key):
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_decay), diffrax.Heun(), 0.0, 0.4, 0.1, jnp.array([1.0, 0.5]),
        args=theta, stepsize_controller=diffrax.PIDController(rtol=1e-3, atol=1e-3),
        max_steps=8,
    )  # fmt: skip
    return jnp.sum(sol.ys[-1] ** 2)


def diffrax_backsolve_with_a_kink(theta, key):
    def rhs(t, y, k):
        return -k * jnp.maximum(y, 0.2)  # CULPRIT: kink

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(rhs), diffrax.Euler(), 0.0, 0.3, 0.1, jnp.array(1.0), args=theta,
        adjoint=diffrax.BacksolveAdjoint(),
    )  # fmt: skip
    return sol.ys[-1]


def euler_scan(theta, key):
    def step(y, _):
        return y + 0.05 * (-theta[0] * y + jnp.sin(theta[1] * y)), None

    return lax.scan(step, 1.0, None, length=20)[0]


# --- networks -------------------------------------------------------------------------------

_MLP_TANH = eqx.nn.MLP(2, 1, 8, 2, activation=jnp.tanh, key=jax.random.key(1))
_MLP_RELU = eqx.nn.MLP(2, 1, 8, 2, activation=jax.nn.relu, key=jax.random.key(2))
TANH_PARAMS, TANH_STATIC = eqx.partition(_MLP_TANH, eqx.is_array)
RELU_PARAMS, RELU_STATIC = eqx.partition(_MLP_RELU, eqx.is_array)
_X = jnp.array([[0.3, -0.2], [1.0, 0.5], [-0.7, 0.9]])


def mlp_tanh_regression(params, key):
    model = eqx.combine(params, TANH_STATIC)
    pred = jax.vmap(model)(_X)[:, 0]
    return jnp.mean((pred - jnp.array([0.1, 0.4, -0.3])) ** 2)


def mlp_relu_regression(params, key):
    model = eqx.combine(params, RELU_STATIC)
    pred = jax.vmap(model)(_X)[:, 0]  # CULPRIT: kink
    return jnp.mean((pred - jnp.array([0.1, 0.4, -0.3])) ** 2)


def softmax_classifier(w, key):
    logits = _X @ w
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, jnp.array([0, 1, 0])))


def logistic_regression(w, key):
    logits = _X @ w
    labels = jnp.array([1.0, 0.0, 1.0])
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels)) + 1e-2 * jnp.sum(w**2)


def huber_regression(w, key):
    return jnp.mean(optax.losses.huber_loss(_X @ w, jnp.array([0.1, 0.4, -0.3]), delta=1.0))


def hinge_classifier(w, key):
    margins = _X @ w
    return jnp.mean(optax.losses.hinge_loss(margins, jnp.array([1.0, -1.0, 1.0])))  # CULPRIT: kink


def clipped_loss(w, key):
    err = _X @ w - jnp.array([0.1, 0.4, -0.3])
    return jnp.mean(jnp.clip(err, -0.5, 0.5) ** 2)  # CULPRIT: kink


def gelu_softplus_silu(t, key):
    return jnp.sum(jax.nn.gelu(t) + jax.nn.softplus(t) + jax.nn.silu(t) + jax.nn.sigmoid(t))


def leaky_relu(t, key):
    return jnp.sum(jax.nn.leaky_relu(t, 0.1) ** 2)  # CULPRIT: kink


def log_softmax_entropy(t, key):
    logp = jax.nn.log_softmax(t)
    return -jnp.sum(jnp.exp(logp) * logp) + jax.scipy.special.logsumexp(2 * t)


# --- jax.scipy ------------------------------------------------------------------------------


def expm_rotation(t, key):
    a = jnp.array([[0.0, t], [-t, 0.0]])
    return jax.scipy.linalg.expm(a)[0, 0]


def gaussian_log_likelihood(theta, key):
    x = jnp.array([0.3, 1.2, -0.5, 2.0])
    return jnp.sum(jax.scipy.stats.norm.logpdf(x, theta["mu"], jnp.exp(theta["log_sigma"])))


def black_scholes(theta, key):
    s0, sigma = theta
    d1 = (jnp.log(s0 / 100.0) + (0.05 + 0.5 * sigma**2)) / sigma
    cdf = jax.scipy.stats.norm.cdf
    return s0 * cdf(d1) - 100.0 * jnp.exp(-0.05) * cdf(d1 - sigma)


def special_functions(t, key):
    a = jax.scipy.special.gammaln(t) + jax.scipy.special.digamma(t)
    b = jax.scipy.special.erf(t / 3) + jax.scipy.special.xlogy(t, t) + jax.scipy.special.entr(t)
    return a + b + jax.scipy.special.betainc(2.0, 3.0, 1 / (1 + t)) + jnp.sinc(t) + jnp.hypot(t, 1)


def normal_quantile(t, key):
    return jax.scipy.stats.norm.ppf(jax.nn.sigmoid(t)) + jax.scipy.special.logit(
        0.5 * jax.nn.sigmoid(t)
    )


def linear_algebra(t, key):
    a = jnp.array([[2.0 + t, 0.3], [0.3, 1.0 + t**2]])
    sign, logdet = jnp.linalg.slogdet(a)
    chol = jnp.linalg.cholesky(a)
    x = jnp.linalg.solve(a, jnp.array([1.0, 2.0]))
    return logdet + jnp.sum(chol) + jnp.sum(x) + jnp.linalg.det(a) + jnp.trace(jnp.linalg.inv(a))


def norm_away_from_zero(x, key):
    return jnp.linalg.norm(x) + jnp.sqrt(jnp.sum(x**2) + 1.0)


def trapezoid_and_cumsum(t, key):
    grid = jnp.linspace(0.0, 1.0, 11)
    return jnp.trapezoid(jnp.exp(-t * grid), grid) + jnp.sum(jnp.cumsum(t * grid))


# --- non-smooth on purpose -------------------------------------------------------------------


def norm_at_zero(x, key):
    return jnp.linalg.norm(x)  # CULPRIT: nan_at_theta


def sqrt_of_square(t, key):
    return jnp.sqrt(t**2) + t  # CULPRIT: nan_at_theta


def interpolated_table(t, key):
    xp, fp = jnp.array([0.0, 1.0, 2.0]), jnp.array([0.0, 1.0, 3.0])
    return jnp.interp(t, xp, fp)  # CULPRIT: threshold


def bucketed_rate(t, key):
    edges = jnp.array([0.0, 0.5, 1.0, 2.0])
    bucket = jnp.searchsorted(edges, t)  # CULPRIT: threshold
    return jnp.array([0.1, 0.2, 0.4, 0.8, 1.6])[bucket] * t


def sorted_order_statistics(x, key):
    s = jnp.sort(x)  # CULPRIT: kink
    top, _ = lax.top_k(x, 2)  # CULPRIT: kink
    return s[0] + jnp.sum(top)


def robust_median(x, key):
    return jnp.median(x) + x[0]  # CULPRIT: kink


def winner_takes_all(x, key):
    i = jnp.argmax(x)  # CULPRIT: discrete_choice
    return x[i] * 2.0


def rounded_price(t, key):
    return jnp.round(100.0 * t) / 100.0 + t  # CULPRIT: rounding


def integer_steps(t, key):
    n = (t * 3.0).astype(jnp.int32)  # CULPRIT: rounding
    return jnp.sin(t) * n.astype(t.dtype)


def periodic_phase(t, key):
    return jnp.mod(t, 1.0) ** 2  # CULPRIT: rounding, threshold


def bisection_root(t, key):
    def body(c):
        lo, hi = c
        mid = 0.5 * (lo + hi)
        go_left = mid**3 > t  # CULPRIT: threshold
        return jnp.where(go_left, lo, mid), jnp.where(go_left, mid, hi)

    def wide(c):
        return c[1] - c[0] > 1e-3 * t  # CULPRIT: threshold

    lo, hi = lax.while_loop(wide, body, (0.0, 2.0))  # CULPRIT: while_loop
    return 0.5 * (lo + hi)


def regime_switch(t, key):
    return lax.cond(t > 1.0, lambda x: x**2, lambda x: 2 * x - 1, t)  # CULPRIT: threshold


@jax.jit
def _ramp(x):
    return jnp.maximum(x, 0.0)  # CULPRIT: kink


def shared_jit_helper(t, key):
    return _ramp(t - 1.0) + _ramp(2.0 * t - 2.0)


def running_maximum(x, key):
    return jnp.sum(lax.cummax(x))  # CULPRIT: kink


def absolute_error(x, key):
    return jnp.sum(jnp.abs(x - jnp.array([1.0, 2.0, 3.0])))  # CULPRIT: kink


def max_pooling(x, key):
    return jnp.max(x) - jnp.min(x)  # CULPRIT: kink


def step_response(t, key):
    return jnp.heaviside(t - 0.5, 0.5) * t  # CULPRIT: threshold


def guarded_log(t, key):
    return jnp.where(t > 0.0, jnp.log(t), 0.0)  # CULPRIT: threshold, nan_where


def safe_guarded_log(t, key):
    safe = jnp.where(t > 0.0, t, 1.0)  # CULPRIT: threshold
    return jnp.where(t > 0.0, jnp.log(safe), 0.0)  # CULPRIT: threshold


def dynamic_trip_count(t, key):
    n = jnp.floor(t).astype(jnp.int32)  # CULPRIT: rounding
    return lax.fori_loop(0, n, lambda i, c: c * 0.9 + t, 0.0)  # CULPRIT: while_loop


def one_hot_bucket(t, key):
    idx = jnp.clip((t * 4.0).astype(jnp.int32), 0, 3)  # CULPRIT: rounding
    return jnp.sum(jax.nn.one_hot(idx, 4) * jnp.array([1.0, 2.0, 3.0, 4.0])) * t


def spectral_gap(t, key):
    a = jnp.array([[2.0, t], [t, 1.0]])
    w, _ = jnp.linalg.eigh(a)  # CULPRIT: eigen
    return w[1] - w[0]


def operator_norm(t, key):
    a = jnp.array([[1.0, t], [0.5, 2.0 * t]])
    return jnp.linalg.norm(a, ord=2)  # CULPRIT: eigen


# --- randomness -----------------------------------------------------------------------------


def reparameterised_noise(theta, key):
    z = jax.random.normal(key, (8,))
    return jnp.mean((theta["mu"] + jnp.exp(theta["log_sigma"]) * z) ** 2)


def categorical_choice(logits, key):
    i = jax.random.categorical(key, logits)  # CULPRIT: discrete_draw
    return jnp.array([1.0, 2.0, 4.0])[i]


def bernoulli_coin(p, key):
    return jax.random.bernoulli(key, p, (8,)).mean() * 1.0  # CULPRIT: discrete_draw


def accept_reject(t, key):
    k1, k2 = jax.random.split(key)
    x = jax.random.uniform(k1, (32,))
    keep = jax.random.uniform(k2, (32,)) < jnp.exp(-t * x)  # CULPRIT: threshold
    return jnp.mean(jnp.where(keep, x, 0.0))


def noise_kink_not_theta(t, key):
    z = jax.random.normal(key)
    return t * jnp.maximum(z, 0.0) + jnp.floor(z)


def tiny_and_huge_scales(theta, key):
    rate, size = theta
    return jnp.exp(-rate * 1e6) * size * 1e-6 + jnp.log1p(size * 1e-6)


POINTS = {
    "diffrax_default_adjoint_adaptive": {"k": 0.7, "c": 0.1},
    "diffrax_backsolve_with_a_kink": 0.5,
    "euler_scan": jnp.array([0.8, 1.3]),
    "mlp_tanh_regression": TANH_PARAMS,
    "mlp_relu_regression": RELU_PARAMS,
    "softmax_classifier": jnp.array([[0.2, -0.1], [0.4, 0.3]]),
    "logistic_regression": jnp.array([0.3, -0.6]),
    "huber_regression": jnp.array([0.3, -0.6]),
    "hinge_classifier": jnp.array([0.3, -0.6]),
    "clipped_loss": jnp.array([0.3, -0.6]),
    "gelu_softplus_silu": jnp.array([-1.0, 0.0, 0.5]),
    "leaky_relu": jnp.array([-1.0, 0.5]),
    "log_softmax_entropy": jnp.array([0.1, 0.5, -0.3]),
    "expm_rotation": 0.7,
    "gaussian_log_likelihood": {"mu": 0.4, "log_sigma": -0.2},
    "black_scholes": (105.0, 0.2),
    "special_functions": 1.7,
    "normal_quantile": 0.3,
    "linear_algebra": 0.4,
    "norm_away_from_zero": jnp.array([0.3, -0.4]),
    "trapezoid_and_cumsum": 0.9,
    "norm_at_zero": jnp.zeros(3),
    "sqrt_of_square": 0.0,
    "interpolated_table": 0.5,
    "bucketed_rate": 0.7,
    "sorted_order_statistics": jnp.array([0.3, 1.2, -0.4]),
    "robust_median": jnp.array([0.3, 1.2, -0.4, 2.0]),
    "winner_takes_all": jnp.array([0.3, 1.2, -0.4]),
    "rounded_price": 0.123,
    "integer_steps": 0.8,
    "periodic_phase": 1.3,
    "bisection_root": 0.7,
    "regime_switch": 0.5,
    "shared_jit_helper": 1.5,
    "running_maximum": jnp.array([0.3, 1.2, -0.4]),
    "absolute_error": jnp.array([0.5, 2.5, 3.5]),
    "max_pooling": jnp.array([0.3, 1.2, -0.4]),
    "step_response": 0.3,
    "guarded_log": 0.5,
    "safe_guarded_log": 0.5,
    "dynamic_trip_count": 3.5,
    "one_hot_bucket": 0.6,
    "spectral_gap": 0.3,
    "operator_norm": 0.3,
    "reparameterised_noise": {"mu": 0.2, "log_sigma": -0.5},
    "categorical_choice": jnp.array([0.1, 0.2, 0.3]),
    "bernoulli_coin": 0.3,
    "accept_reject": 0.8,
    "noise_kink_not_theta": 1.0,
    "tiny_and_huge_scales": (3e-7, 2e6),
}
PROGRAMS = {name: globals()[name] for name in POINTS}
# Helpers whose marked lines belong to a program's findings.
HELPERS = {"shared_jit_helper": [_ramp]}

# Exact one-sided slopes at kinks, derived by hand: (f, theta, direction, left, right).
ONE_SIDED = {
    # jnp.interp through (0,0), (1,1), (2,3): slope 1 left of the knot at 1, 2 right of it.
    "interp knot": (lambda t: jnp.interp(t, jnp.array([0.0, 1.0, 2.0]), jnp.array([0.0, 1.0, 3.0])), 1.0, 1.0, 1.0, 2.0),  # noqa: E501
    # beyond the last knot interp is flat (fp[-1]).
    "interp last knot": (lambda t: jnp.interp(t, jnp.array([0.0, 1.0, 2.0]), jnp.array([0.0, 1.0, 3.0])), 2.0, 1.0, 2.0, 0.0),  # noqa: E501
    # searchsorted(side=left) of 1 in [0, 1, 2] is 1 at and left of 1, 2 right of it: f = i·t.
    "searchsorted": (lambda t: jnp.searchsorted(jnp.array([0.0, 1.0, 2.0]), t).astype(t.dtype) * t, 1.0, 1.0, 1.0, 2.0),  # noqa: E501
    "digitize": (lambda t: jnp.digitize(t, jnp.array([0.0, 1.0, 2.0])).astype(t.dtype) * t, 1.0, 1.0, 1.0, 2.0),  # noqa: E501
    # sqrt(t²) = |t|; the norm of t·(3, 4) is 5|t|.
    "sqrt of square at 0": (lambda t: jnp.sqrt(t**2), 0.0, 1.0, -1.0, 1.0),
    "norm at 0": (lambda x: jnp.linalg.norm(x), jnp.zeros(2), jnp.array([3.0, 4.0]), -5.0, 5.0),
    # min(t, 2 - t) at 1 through sort, top_k (the max), cummax, argmax and the median.
    "sort": (lambda t: jnp.sort(jnp.stack([t, 2.0 - t]))[0], 1.0, 1.0, 1.0, -1.0),
    "top_k": (lambda t: lax.top_k(jnp.stack([t, 2.0 - t, 0.0]), 1)[0][0], 1.0, 1.0, -1.0, 1.0),
    "cummax": (lambda t: lax.cummax(jnp.stack([t, 2.0 - t]))[1], 1.0, 1.0, -1.0, 1.0),
    "argmax": (lambda t: jnp.argmax(jnp.stack([t, 2.0 - t])).astype(t.dtype) * t, 1.0, 1.0, 1.0, 0.0),  # noqa: E501
    "median": (lambda t: jnp.median(jnp.stack([t, 2.0 - t, 5.0])), 1.0, 1.0, -1.0, 1.0),
    # every comparison primitive: where(t ◦ 1, 3t, t + 2) at 1.
    "gt": (lambda t: jnp.where(t > 1.0, 3 * t, t + 2), 1.0, 1.0, 1.0, 3.0),
    "ge": (lambda t: jnp.where(t >= 1.0, 3 * t, t + 2), 1.0, 1.0, 1.0, 3.0),
    "lt": (lambda t: jnp.where(t < 1.0, 3 * t, t + 2), 1.0, 1.0, 3.0, 1.0),
    "le": (lambda t: jnp.where(t <= 1.0, 3 * t, t + 2), 1.0, 1.0, 3.0, 1.0),
    "ne": (lambda t: jnp.where(t != 1.0, 3 * t, t + 2), 1.0, 1.0, 3.0, 3.0),
    # floor and truncation take the piece on each side.
    "floor": (lambda t: jnp.floor(t) * t, 1.0, 1.0, 0.0, 1.0),
    "integer cast": (lambda t: t.astype(jnp.int32).astype(t.dtype) * t, 1.0, 1.0, 0.0, 1.0),
    "round": (lambda t: jnp.round(t) * t, 0.5, 1.0, 0.0, 1.0),
    "sign": (lambda t: jnp.sign(t) * t, 0.0, 1.0, -1.0, 1.0),
    # hinge max(0, 1 - t), leaky relu, relu6, huber (C¹: no kink) and the shared jit helper.
    "hinge": (lambda t: optax.losses.hinge_loss(t, 1.0), 1.0, 1.0, -1.0, 0.0),
    "leaky_relu": (lambda t: jax.nn.leaky_relu(t, 0.1), 0.0, 1.0, 0.1, 1.0),
    "relu6 at 6": (jax.nn.relu6, 6.0, 1.0, 1.0, 0.0),
    "huber at delta": (lambda t: optax.losses.huber_loss(t, 0.0, delta=1.0), 1.0, 1.0, 1.0, 1.0),
    "shared jit helper": (lambda t: _ramp(t - 1.0) + _ramp(2.0 * t - 2.0), 1.0, 1.0, 0.0, 3.0),
    "clip at the top": (lambda t: jnp.clip(t, 0.0, 1.0), 1.0, -2.0, 0.0, -2.0),
}  # fmt: skip
