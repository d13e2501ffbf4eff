"""Run by tests/test_devices.py in a fresh process with 4 forced CPU devices: the same key
gives the same estimate on 1, 2 and 4 devices, and the work is really split.
``python tests/devices_check.py``; prints "ok"."""

import os
import sys

assert "jax" not in sys.modules
# appended: the suite's fast-compile flags (tests/conftest.py) stay in force
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
).strip()

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import simgrad as sg  # noqa: E402

jax.config.update("jax_enable_x64", True)
assert jax.local_device_count() == 4
KEY = jax.random.key(3)


class Decay(eqx.Module):
    """An outside user's module: exponential waiting times, a vector output."""

    t_end: float = 2.0

    def __call__(self, theta, key):  # X ~ Exp(rate), outputs [X, X²] and min(X, t_end)
        x = sg.random.exponential(key, theta["rate"]) + theta["shift"]
        return {"moments": jnp.stack([x, x**2]), "capped": jnp.minimum(x, self.t_end)}


def threshold(theta, key):  # E = P(θ + Z > 0) = Φ(θ): a jump, for the score function
    return (sg.random.normal(key, theta, 1.0) > 0).astype(theta.dtype)


CASES = {
    # name: simulator, θ, method, n_samples, batch_size (neither divides over 4 devices)
    "pathwise-jacobian": (Decay(), {"rate": 1.5, "shift": 0.2}, sg.Pathwise(), 1001, 250),
    "score-loo": (threshold, jnp.asarray(0.3), sg.ScoreFunction(baseline="loo"), 999, None),
    "fd": (Decay(), {"rate": 1.5, "shift": 0.2}, sg.FiniteDifference(), 402, 101),
}


def leaves(est):
    return [np.asarray(x) for x in jax.tree.leaves((est.value, est.value_stderr, est.grad,
                                                     est.grad_stderr))]  # fmt: skip


for name, (sim, theta, method, n, batch) in CASES.items():
    runs = {}
    for k in (1, 2, 4):
        est = sg.gradient(sim, theta, KEY, method=method, n_samples=n, batch_size=batch, devices=k)
        devices = {d for x in jax.tree.leaves(est.grad) for d in x.sharding.device_set}
        assert len(devices) == k, (name, k, devices)  # really run on k devices
        runs[k] = leaves(est)
    for k in (2, 4):
        for a, b in zip(runs[1], runs[k], strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-15, err_msg=f"{name} on {k}")

# The default is every local device; an explicit list picks them.
est = sg.gradient(threshold, jnp.asarray(0.3), KEY, method=sg.ScoreFunction(), n_samples=64)
assert len(est.grad.sharding.device_set) == 4
chosen = jax.devices()[2:]
est = sg.gradient(threshold, 0.3, KEY, method=sg.Pathwise(), n_samples=8, devices=chosen)
assert est.grad.sharding.device_set == set(chosen)

# A black box runs on the host, through executor=: it refuses devices.
box = sg.BlackBox(lambda theta, seed: float(theta), progress=False)
try:
    sg.gradient(box, 1.0, KEY, method=sg.SPSA(), n_samples=4, devices=4)
    raise AssertionError("a black box took devices=4")
except TypeError as error:
    assert "executor=" in str(error)

# sg.optimize: the same steps on 1 and 4 devices.
paths = []
for k in (1, 4):
    res = sg.optimize(lambda t, key: (t - 1.0 + jax.random.normal(key)) ** 2, 0.0, KEY,
                      steps=5, n_samples=30, optimizer=optax.sgd(0.1), progress=False,
                      devices=k)  # fmt: skip
    paths.append(np.asarray(res.history.theta))
np.testing.assert_allclose(paths[1], paths[0], rtol=1e-12)
print("ok")
