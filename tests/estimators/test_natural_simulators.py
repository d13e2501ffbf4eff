r"""Simulators written the way practitioners write them (issue 28): standard noise drawn
with `jax.random` (or `simgrad.random`'s standard draws), transformed by θ, then a jump.

Each program has an exact answer computed independently of simgrad — a closed form, or
scipy quadrature — and cross-checked during development by a plain-numpy Monte Carlo with
10^7 samples (likelihood-ratio weights with θ in the distribution of the transformed draw,
numpy's own generator); the numbers are in the comments beside each reference.

Three groups of tests:

* ``test_natural_*``: `sg.Auto()` on the program as written must be right within 4.5σ of
  its reported standard error, with a standard error small enough to mean something
  (below ``REL`` of the answer, so 0 ± 0 and a huge error bar both fail). These are the
  issue's acceptance table: they fail until the change of variables and the `jax.random`
  sites are in the program core.
* ``test_theta_in_distribution_twin``: the same model with θ inside the draw's
  distribution (``sg.random.normal(key, x, 0.5) < 0``), by `sg.Auto()` and
  `sg.ScoreFunction()`: code that already works validates the table's exact answers.
* ``test_natural_simulator_means``: the programs as written simulate the right model (their
  Monte Carlo mean against the exact value, no gradient), so a failure of the first group
  is the estimator's, not the test's.

Two more acceptance tests of the issue: the README's "Ten lines" with a digital payoff,
as written there, and the variance of an affine location map (``x + 0.5 ε``) equal to the
θ-in-the-distribution score function's within 10 %.

Run time (2 shared cores, ``-n 0``): 35-55 s for the file, each case under 2 s.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from scipy import integrate
from scipy.special import ndtr

import simgrad as sg

SIGMAS = 4.5  # tolerance in reported standard errors
REL = 0.2  # a standard error must be below REL * |exact| to count as an answer
N = 2**16

# The two ways a user draws standard noise: JAX's own samplers, or simgrad's with their
# default (standard) parameters. Both are called as ``rnd.normal(key, shape=...)``.
SOURCES = {"jax.random": jax.random, "sg.random": sg.random}


def _phi(x):
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


# ---------------------------------------------------------------------------------------
# 1. Digital (cash-or-nothing) call, r = 0, T = 1: S_T = S0 exp(-σ²/2 + σ z), pays 1{S_T > K}.
# ---------------------------------------------------------------------------------------


def digital_exact(theta, K):
    r"""Black–Scholes: price $N(d_2)$, $d_2 = (\ln(S_0/K) - \sigma^2/2)/\sigma$,
    $d_1 = d_2 + \sigma$; delta $= \varphi(d_2)/(S_0\sigma)$, vega $= -\varphi(d_2) d_1/\sigma$.

    S0 = 100, σ = 0.2, K = 100: price 0.4601722, delta 0.01984763, vega -0.1984763.
      scipy quad of ∫φ(z)1{S_T(z) > K}dz, central differences: 0.01984763, -0.1984763;
      numpy MC 10^7: price 0.460162 ± 0.000158, delta 0.019844 ± 0.000009,
      vega -0.198801 ± 0.001430.
    K = 110: price 0.2821214, delta 0.01689266, vega 0.6360945.
      quad + differences: 0.01689266, 0.6360947; numpy MC 10^7: 0.282013 ± 0.000142,
      0.016888 ± 0.000010, 0.636270 ± 0.001271.
    """
    S0, s = theta["S0"], theta["sigma"]
    d2 = (math.log(S0 / K) - 0.5 * s * s) / s
    d1 = d2 + s
    return float(ndtr(d2)), {"S0": _phi(d2) / (S0 * s), "sigma": -_phi(d2) * d1 / s}


def digital(rnd, K):
    def sim(theta, key):
        z = rnd.normal(key)
        s_T = theta["S0"] * jnp.exp(-0.5 * theta["sigma"] ** 2 + theta["sigma"] * z)
        return jnp.where(s_T > K, 1.0, 0.0)

    return sim


def digital_twin(K):
    def sim(theta, key):
        mu = jnp.log(theta["S0"]) - 0.5 * theta["sigma"] ** 2
        return jnp.where(sg.random.lognormal(key, mu, theta["sigma"]) > K, 1.0, 0.0)

    return sim


# ---------------------------------------------------------------------------------------
# 2. Discretely monitored barrier options, 3 dates t = 1/3, 2/3, 1, r = 0:
#    S_j = S_{j-1} exp(σ√Δ Z_j - σ²Δ/2), Δ = 1/3, Z_j standard normals, in a lax.scan.
# ---------------------------------------------------------------------------------------

DATES = 3
DT = 1.0 / DATES
STRIKE = 100.0
DOWN = 90.0  # down-and-out call: (S_3 - K)^+ 1{S_1 > 90, S_2 > 90, S_3 > 90}
UP = 120.0  # up-and-out digital: 1{S_3 > K} 1{S_1 < 120, S_2 < 120, S_3 < 120}
ZMAX = 12.0  # |z| beyond 12: φ(12) ~ 1e-32, nothing left to integrate


def _barrier_value(kind, S0, s):
    """The price by nested quadrature over Z_1, Z_2, the last date in closed form.

    Down-and-out call (K = 100 > B = 90, so S_3 > K implies S_3 > B): given S_2 the last
    step is a Black–Scholes call with τ = Δ. Up-and-out digital: given S_2,
    P(K < S_3 < U) = N(z_U) - N(z_K). The knock-out dates cut the z-ranges at
    z_L(S) = (ln(L/S) + v²/2)/v, v = σ√Δ (S_next < L ⇔ z < z_L(S)).
    """
    v = s * math.sqrt(DT)

    def z_at(S, L):
        return (math.log(L / S) + 0.5 * v * v) / v

    def step(S, z):
        return S * math.exp(v * z - 0.5 * v * v)

    if kind == "down_and_out_call":

        def last(S2):
            d1 = (math.log(S2 / STRIKE) + 0.5 * v * v) / v
            return S2 * ndtr(d1) - STRIKE * ndtr(d1 - v)

        def span(S):
            return z_at(S, DOWN), ZMAX
    else:

        def last(S2):
            return ndtr(z_at(S2, UP)) - ndtr(z_at(S2, STRIKE))

        def span(S):
            return -ZMAX, z_at(S, UP)

    def inner(z1):
        S1 = step(S0, z1)
        f = lambda z2: _phi(z2) * last(step(S1, z2))  # noqa: E731
        return _phi(z1) * integrate.quad(f, *span(S1), epsabs=1e-14, epsrel=1e-12)[0]

    return integrate.quad(inner, *span(S0), epsabs=1e-13, epsrel=1e-12)[0]


@functools.cache
def _barrier_reference(kind, S0, s):
    """Price, and delta and vega by central differences of the quadrature (h = 1e-3 in S0,
    1e-4 in σ; halving or doubling h moves neither by more than 1e-6 relative)."""
    f = functools.partial(_barrier_value, kind)
    hS, hs = 1e-3, 1e-4
    delta = (f(S0 + hS, s) - f(S0 - hS, s)) / (2 * hS)
    vega = (f(S0, s + hs) - f(S0, s - hs)) / (2 * hs)
    return f(S0, s), {"S0": delta, "sigma": vega}


def barrier_exact(theta, kind):
    """S0 = 100, σ = 0.2.

    down_and_out_call: price 7.639460, delta 0.5679842, vega 34.36588 (Richardson on h,
      2h: 0.5679842, 34.36588); numpy MC 10^7: 7.634362 ± 0.004158, 0.567557 ± 0.000538,
      34.421517 ± 0.092551. (Vanilla call for scale: 7.966, 0.5398, 39.69.)
    up_and_out_digital: price 0.2630415, delta 0.003384279, vega -1.479277 (h = 1e-2, 1e-3
      in S0: 0.003384278, 0.003384279); numpy MC 10^7: 0.263202 ± 0.000139,
      0.003392 ± 0.000010, -1.480751 ± 0.001596.
    """
    return _barrier_reference(kind, theta["S0"], theta["sigma"])


def barrier(rnd, kind):
    def sim(theta, key):
        z = rnd.normal(key, shape=(DATES,))
        vol = theta["sigma"] * math.sqrt(DT)

        def step(carry, z_j):
            s, alive = carry
            s = s * jnp.exp(vol * z_j - 0.5 * vol**2)
            alive = alive & ((s > DOWN) if kind == "down_and_out_call" else (s < UP))
            return (s, alive), None

        (s_T, alive), _ = lax.scan(step, (theta["S0"], jnp.array(True)), z)
        if kind == "down_and_out_call":
            return jnp.where(alive, jnp.maximum(s_T - STRIKE, 0.0), 0.0)
        return jnp.where(alive & (s_T > STRIKE), 1.0, 0.0)

    return sim


def barrier_twin(kind):
    """The log-price as a Markov chain of `sg.random.normal` draws whose mean and scale hold
    θ: x_j ~ N(x_{j-1} - v²/2, v), x_0 = ln S0."""

    def sim(theta, key):
        vol = theta["sigma"] * math.sqrt(DT)

        def step(carry, k):
            x, alive = carry
            x = sg.random.normal(k, x - 0.5 * vol**2, vol)
            s = jnp.exp(x)
            alive = alive & ((s > DOWN) if kind == "down_and_out_call" else (s < UP))
            return (x, alive), None

        init = (jnp.log(theta["S0"]), jnp.array(True))
        (x_T, alive), _ = lax.scan(step, init, jax.random.split(key, DATES))
        s_T = jnp.exp(x_T)
        if kind == "down_and_out_call":
            return jnp.where(alive, jnp.maximum(s_T - STRIKE, 0.0), 0.0)
        return jnp.where(alive & (s_T > STRIKE), 1.0, 0.0)

    return sim


# ---------------------------------------------------------------------------------------
# 3. A clock by inverse transform: t = -log(u)/λ, output 1{t < 1}.
# ---------------------------------------------------------------------------------------


def clock_exact(lam):
    """E = 1 - e^{-λ}, d/dλ = e^{-λ}. λ = 2: 0.8646647, 0.1353353;
    numpy MC 10^7: 0.864679 ± 0.000108, 0.135417 ± 0.000079."""
    return 1 - math.exp(-lam), math.exp(-lam)


def clock(rnd):
    def sim(lam, key):
        u = rnd.uniform(key)
        t = -jnp.log(u) / lam
        return (t < 1.0).astype(float)

    return sim


def clock_twin(lam, key):
    return (sg.random.exponential(key, lam) < 1.0).astype(float)


# ---------------------------------------------------------------------------------------
# 4. Noise, then a threshold: 1{x + 0.5 ε < 0}.
# ---------------------------------------------------------------------------------------


def threshold_exact(x):
    """E = Φ(-x/0.5), d/dx = -φ(x/0.5)/0.5. x = 0: 0.5, -0.7978846;
    numpy MC 10^7: -0.797605 ± 0.000369."""
    return float(ndtr(-x / 0.5)), -_phi(x / 0.5) / 0.5


def threshold(rnd):
    def sim(x, key):
        return jnp.where(x + 0.5 * rnd.normal(key) < 0, 1.0, 0.0)

    return sim


def threshold_twin(x, key):
    return jnp.where(sg.random.normal(key, x, 0.5) < 0, 1.0, 0.0)


# ---------------------------------------------------------------------------------------
# 5. An M/M/1 queue, 5 customers, Lindley's recursion W_1 = 0,
#    W_{k+1} = max(W_k + S_k - A_{k+1}, 0): service S_k = -log(u)/μ (θ = μ), interarrivals
#    A = -log(u)/λ with λ = 1 fixed; output 1{W_5 > 1}.
# ---------------------------------------------------------------------------------------

CUSTOMERS = 5
ARRIVAL_RATE = 1.0
WAIT_LEVEL = 1.0


def _mm1_tail(mu, n, w, lam):
    r"""P(W_n > w), exactly: X = S - A has density c e^{-μx} (x > 0), c e^{λx} (x < 0),
    c = λμ/(λ+μ), and every W_k is an atom p_k at 0 plus a density e^{-μy} P_k(y) on
    y > 0 with P_k a polynomial (closed under W ↦ (W + X)^+):
    $P_{k+1}(t) = c\,[p_k + \int_0^t P_k + e^{(λ+μ)t}\int_t^\infty P_k(y) e^{-(λ+μ)y}dy]$,
    $p_{k+1} = 1 - \int_0^\infty e^{-μy}P_{k+1}$. Written for complex μ (complex-step
    derivative)."""
    al = lam + mu
    c = lam * mu / al
    fact = math.factorial
    p, a = 1.0, []
    for _ in range(n - 1):
        b = [p] + [0.0] * len(a)
        for j, aj in enumerate(a):
            b[j + 1] += aj / (j + 1)
            for i in range(j + 1):
                b[i] += aj * fact(j) / fact(i) / al ** (j - i + 1)
        a = [c * bj for bj in b]
        p = 1 - sum(aj * fact(j) / mu ** (j + 1) for j, aj in enumerate(a))
    return np.exp(-mu * w) * sum(
        aj * sum(fact(j) / fact(i) * w**i / mu ** (j - i + 1) for i in range(j + 1))
        for j, aj in enumerate(a)
    )


def mm1_exact(mu):
    """μ = 1.5: P(W_5 > 1) = 0.2526476, d/dμ = -0.3282991 (complex step, h = 1e-30).
    The recursion against scipy quadrature of Lindley's recursion: n = 3, P(W_3 > 1) =
    0.16422380 both, d/dμ -0.21848905 both; n = 4 (nested quad): 0.21627560 both,
    -0.28210792 vs -0.28210792. numpy MC 10^7 at n = 5: 0.252812 ± 0.000137,
    d/dμ -0.328355 ± 0.000276."""
    value = _mm1_tail(mu, CUSTOMERS, WAIT_LEVEL, ARRIVAL_RATE)
    h = 1e-30
    grad = _mm1_tail(complex(mu, h), CUSTOMERS, WAIT_LEVEL, ARRIVAL_RATE).imag / h
    return float(value), float(grad)


def _lindley(service, interarrival):
    def step(w, sa):
        s, a = sa
        return jnp.maximum(w + s - a, 0.0), None

    w, _ = lax.scan(step, jnp.zeros_like(service[0]), (service, interarrival))
    return jnp.where(w > WAIT_LEVEL, 1.0, 0.0)


def mm1(rnd):
    def sim(mu, key):
        k_service, k_arrival = jax.random.split(key)
        service = -jnp.log(rnd.uniform(k_service, shape=(CUSTOMERS - 1,))) / mu
        interarrival = -jnp.log(rnd.uniform(k_arrival, shape=(CUSTOMERS - 1,))) / ARRIVAL_RATE
        return _lindley(service, interarrival)

    return sim


def mm1_twin(mu, key):
    k_service, k_arrival = jax.random.split(key)
    service = sg.random.exponential(k_service, mu, shape=(CUSTOMERS - 1,))
    interarrival = jax.random.exponential(k_arrival, shape=(CUSTOMERS - 1,)) / ARRIVAL_RATE
    return _lindley(service, interarrival)


# ---------------------------------------------------------------------------------------
# 6. One Gillespie step: reactions A → ∅ (propensity a1 = k1·n_A) and B → ∅ (a2 = k2·n_B);
#    τ = -log(u1)/a0, reaction 1 fires when u2·a0 < a1; output 1{τ < 1, reaction 1}.
# ---------------------------------------------------------------------------------------

N_A, N_B = 2, 2


def gillespie_exact(theta):
    r"""E = (a1/a0)(1 - e^{-a0}); ∂E/∂a1 = (a2/a0²)(1 - e^{-a0}) + (a1/a0)e^{-a0},
    ∂E/∂a2 = -(a1/a0²)(1 - e^{-a0}) + (a1/a0)e^{-a0}; ∂/∂k1 = n_A ∂/∂a1, ∂/∂k2 = n_B ∂/∂a2.
    k1 = 0.4, k2 = 0.3: 0.4305160, ∂k1 0.7430923, ∂k2 -0.3331978; numpy MC 10^7:
    0.430453 ± 0.000157, 0.743079 ± 0.000293, -0.333052 ± 0.000166."""
    a1, a2 = theta["k1"] * N_A, theta["k2"] * N_B
    a0 = a1 + a2
    fired, stay = 1 - math.exp(-a0), math.exp(-a0)
    d_a1 = a2 / a0**2 * fired + a1 / a0 * stay
    d_a2 = -a1 / a0**2 * fired + a1 / a0 * stay
    return a1 / a0 * fired, {"k1": N_A * d_a1, "k2": N_B * d_a2}


def gillespie(rnd):
    def sim(theta, key):
        k_time, k_which = jax.random.split(key)
        a1 = theta["k1"] * N_A
        a2 = theta["k2"] * N_B
        a0 = a1 + a2
        tau = -jnp.log(rnd.uniform(k_time)) / a0
        first = rnd.uniform(k_which) * a0 < a1
        return jnp.where((tau < 1.0) & first, 1.0, 0.0)

    return sim


def gillespie_twin(theta, key):
    k_time, k_which = jax.random.split(key)
    a1 = theta["k1"] * N_A
    a0 = a1 + theta["k2"] * N_B
    tau = sg.random.exponential(k_time, a0)
    first = sg.random.bernoulli(k_which, a1 / a0)
    return jnp.where(tau < 1.0, first, 0.0)


# ---------------------------------------------------------------------------------------
# The table: name -> (program factory taking the draw source, θ, exact (value, grad),
# θ-in-the-distribution twin, fixed key).
# ---------------------------------------------------------------------------------------

BS = {"S0": 100.0, "sigma": 0.2}
GILLESPIE = {"k1": 0.4, "k2": 0.3}

CASES = {
    "digital_K100": (
        lambda r: digital(r, 100.0),
        BS,
        lambda: digital_exact(BS, 100.0),
        digital_twin(100.0),
        101,
    ),
    "digital_K110": (
        lambda r: digital(r, 110.0),
        BS,
        lambda: digital_exact(BS, 110.0),
        digital_twin(110.0),
        102,
    ),
    "down_and_out_call": (
        lambda r: barrier(r, "down_and_out_call"),
        BS,
        lambda: barrier_exact(BS, "down_and_out_call"),
        barrier_twin("down_and_out_call"),
        103,
    ),
    "up_and_out_digital": (
        lambda r: barrier(r, "up_and_out_digital"),
        BS,
        lambda: barrier_exact(BS, "up_and_out_digital"),
        barrier_twin("up_and_out_digital"),
        104,
    ),
    "clock": (clock, 2.0, lambda: clock_exact(2.0), clock_twin, 105),
    "threshold": (threshold, 0.0, lambda: threshold_exact(0.0), threshold_twin, 106),
    "mm1": (mm1, 1.5, lambda: mm1_exact(1.5), mm1_twin, 107),
    "gillespie": (gillespie, GILLESPIE, lambda: gillespie_exact(GILLESPIE), gillespie_twin, 108),
}


def assert_exact(est, exact):
    """Every gradient entry within SIGMAS reported standard errors of the exact one, with a
    standard error that is positive and below REL of the answer."""
    got = jax.tree.leaves(est.grad)
    se = jax.tree.leaves(est.grad_stderr)
    want = jax.tree.leaves(exact)
    for g, s, w in zip(got, se, want, strict=True):
        g, s = float(g), float(s)
        assert 0 < s < REL * abs(w), (g, s, w, est.method, est.notes)
        assert abs(g - w) <= SIGMAS * s, (g, s, w, (g - w) / s, est.method, est.notes)


@pytest.mark.parametrize("source", list(SOURCES))
@pytest.mark.parametrize("name", list(CASES))
def test_natural_simulator_gradient_by_auto(name, source):
    make, theta, exact, _, seed = CASES[name]
    sim = make(SOURCES[source])
    est = sg.gradient(sim, theta, jax.random.key(seed), method=sg.Auto(), n_samples=N)
    assert_exact(est, exact()[1])


@pytest.mark.parametrize("method", [sg.Auto(), sg.ScoreFunction()], ids=["Auto", "ScoreFunction"])
@pytest.mark.parametrize("name", list(CASES))
def test_theta_in_distribution_twin(name, method):
    _, theta, exact, twin, seed = CASES[name]
    est = sg.gradient(twin, theta, jax.random.key(seed), method=method, n_samples=N)
    assert_exact(est, exact()[1])
    value = exact()[0]
    assert abs(float(est.value) - value) <= SIGMAS * float(est.value_stderr), (est.value, value)


@pytest.mark.parametrize("source", list(SOURCES))
@pytest.mark.parametrize("name", list(CASES))
def test_natural_simulator_means(name, source):
    make, theta, exact, _, seed = CASES[name]
    sim = make(SOURCES[source])
    keys = jax.random.split(jax.random.key(seed), N)
    out = np.asarray(jax.jit(jax.vmap(sim, in_axes=(None, 0)))(theta, keys))
    value = exact()[0]
    assert abs(out.mean() - value) <= SIGMAS * out.std(ddof=1) / math.sqrt(N), (out.mean(), value)


def test_affine_location_map_has_the_twins_variance():
    """x + 0.5 ε < 0 (an affine location map of a standard normal) must be estimated with the
    variance of the score function with θ in the distribution, within 10 %."""
    key = jax.random.key(106)
    natural = sg.gradient(threshold(jax.random), 0.0, key, method=sg.Auto(), n_samples=N)
    twin = sg.gradient(threshold_twin, 0.0, key, method=sg.Auto(), n_samples=N)
    assert float(twin.grad_std) > 0
    assert abs(float(natural.grad_std) / float(twin.grad_std) - 1) < 0.1, (
        natural.grad_std,
        twin.grad_std,
    )


def test_readme_example_with_a_digital_payoff():
    """README "Ten lines", payoff changed from a call to a digital, as written there: drawn
    with `jax.random.normal`, `sg.Auto()`, key 0, 100 000 samples. Exact (Black–Scholes,
    S0 = K = 100, σ = 0.2): delta 0.01984763, vega -0.1984763."""

    def sim(theta, key):  # one Monte Carlo replicate
        z = jax.random.normal(key)
        s_T = theta["S0"] * jnp.exp(-0.5 * theta["sigma"] ** 2 + theta["sigma"] * z)
        return jnp.where(s_T > 100, 1.0, 0.0)  # a digital option's payoff

    theta = {"S0": 100.0, "sigma": 0.2}
    est = sg.gradient(sim, theta, jax.random.key(0), method=sg.Auto(), n_samples=100_000)
    assert_exact(est, digital_exact(theta, 100.0)[1])


def test_smooth_baseline_runs_through_a_change_of_variables():
    """baseline='smooth' on the digital call written with standard noise: unbiased (its
    control variates come from the smoothed program, which has no jump to score)."""
    make, theta, exact, _, seed = CASES["digital_K100"]
    method = sg.ScoreFunction(baseline="smooth")
    est = sg.gradient(make(jax.random), theta, jax.random.key(seed), method=method, n_samples=N)
    assert est.claim == "unbiased"
    assert_exact(est, exact()[1])
