"""The core's forward dataflow: flags through calls, scan carries, while and cond."""

import jax
import jax.numpy as jnp
from jax import lax

from simgrad._src.program import dataflow, depends_on, trace


def _flows(fn, *args, seeds):
    flows, outs = dataflow(trace(fn, *args), seeds)
    return flows, outs


def test_flags_travel_through_a_scan_carry_to_a_fixed_point():
    """θ enters the carry only at the second of three slots' rotation: it takes two passes
    of the body to reach the first slot; an untouched slot stays clean."""

    def f(t, c):
        def body(carry, _):
            a, b, d = carry
            return (b, t * 1.0, d), None

        return lax.scan(body, (0.0, 0.0, c), None, length=3)[0]

    _, outs = _flows(f, 1.0, 2.0, seeds=[1, 2])
    assert outs == [1, 1, 2]


def test_while_stopping_condition_flags_everything_it_decides():
    def f(t, c):
        return lax.while_loop(lambda s: s[0] < t, lambda s: (s[0] + 1.0, s[1] * 2.0), (0.0, c))

    flows, outs = _flows(f, 3.0, 1.0, seeds=[1, 2])
    assert outs == [1, 3]  # the count and the doubled value both depend on the trip count
    (loop,) = [fl for fl in flows if fl.eqn.primitive.name == "while"]
    assert loop.decides == 1


def test_cond_index_flags_outputs_and_dead_code_is_not_live():
    def f(t, c):
        _ = jnp.floor(t)  # dead
        return lax.cond(t > 0, lambda: c, lambda: 2.0 * c)

    flows, outs = _flows(f, 1.0, 1.0, seeds=[1, 2])
    assert outs == [3]
    floor = [fl for fl in flows if fl.eqn.primitive.name == "floor"]
    assert floor and not floor[0].live
    (branch,) = [fl for fl in flows if fl.eqn.primitive.name == "cond"]
    assert branch.decides == 1 and branch.live


def test_transfer_can_add_flags_and_stop_the_walk():
    def f(t):
        return jax.jit(lambda x: jnp.sin(x))(t) + t

    def transfer(eqn, ins):
        if eqn.primitive.name == "sin":
            return (ins[0] | 4,)
        return None

    flows, outs = dataflow(trace(f, 1.0), [1], transfer)
    assert outs == [5]
    assert any(fl.eqn.primitive.name == "sin" and fl.outer for fl in flows)


def test_depends_on_takes_literal_inputs():
    """A Python number in an equation is a literal (unhashable in JAX): it depends on
    nothing, and asking is not an error (issue 27: negative_binomial(key, 3.0, p))."""

    def f(t, c):
        return jnp.sin(t) * 3.0 + c

    program = trace(f, 1.0, 2.0)
    taint = depends_on(program, [True, False]) & depends_on(program, [True, True])
    (mul,) = [eqn for eqn in program.jaxpr.eqns if eqn.primitive.name == "mul"]
    assert [type(v).__name__ for v in mul.invars] == ["Var", "Literal"]
    assert [v in taint for v in mul.invars] == [True, False]
    (add,) = [eqn for eqn in program.jaxpr.eqns if eqn.primitive.name == "add"]
    assert add.invars[1] not in taint
