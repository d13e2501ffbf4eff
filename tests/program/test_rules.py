"""The rule table: the one place that names non-smooth primitives, and each rule against JAX.

For every primitive with a one-sided rule: a program that emits it, a point where its
operands tie (the tie test says so) and one where they do not (the tie test says no, and
both one-sided derivatives equal `jax.jvp`, the rule's value equals the primitive's).
"""

import ast
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import simgrad as sg
from simgrad._check._nan import Ties
from simgrad._src.program import dataflow, evaluate, trace
from simgrad._src.program.rules import FINDING_KINDS, KINDS, RULES, rule_for

SRC = pathlib.Path(sg.__file__).parent
V = jnp.array([0.5, 1.0, -0.5])


def _pair(t):
    return jnp.stack([t, 2.0 - t])


# primitive: (f, a point where it ties, a point where it does not)
CASES = {
    "gt": (lambda t: jnp.where(t > 1.0, 3 * t, t + 2), 1.0, 1.3),
    "ge": (lambda t: jnp.where(t >= 1.0, 3 * t, t + 2), 1.0, 1.3),
    "lt": (lambda t: jnp.where(t < 1.0, 3 * t, t + 2), 1.0, 0.7),
    "le": (lambda t: jnp.where(t <= 1.0, 3 * t, t + 2), 1.0, 0.7),
    "eq": (lambda t: jnp.where(t == 1.0, 3 * t, t + 2), 1.0, 0.7),
    "ne": (lambda t: jnp.where(t != 1.0, 3 * t, t + 2), 1.0, 0.7),
    "lt_to": (lambda t: jnp.interp(t, jnp.array([0.0, 1.0, 2.0]), jnp.array([0.0, 1.0, 3.0])), 1.0, 1.4),  # noqa: E501
    "le_to": (lambda t: jnp.searchsorted(jnp.array([0.0, 1.0, 2.0]), t).astype(t.dtype) * t, 1.0, 1.4),  # noqa: E501
    "floor": (lambda t: jnp.floor(t) * t, 1.0, 1.3),
    "ceil": (lambda t: jnp.ceil(t) * t, 1.0, 1.3),
    "round": (lambda t: jnp.round(t) * t, 0.5, 0.7),
    "sign": (lambda t: jnp.sign(t) * t, 0.0, 0.7),
    "convert_element_type": (lambda t: t.astype(jnp.int32).astype(t.dtype) * t, 1.0, 1.3),
    "min": (lambda t: jnp.minimum(t**2, 2 * t), 2.0, 1.3),
    "max": (lambda t: jnp.maximum(t**2, 2 * t), 2.0, 1.3),
    "abs": (lambda t: jnp.abs(t - 1.0) * t, 1.0, 1.3),
    "clamp": (lambda t: lax.clamp(0.0, t, 1.0) * t, 1.0, 0.3),
    "reduce_max": (lambda t: jnp.max(_pair(t)) * t, 1.0, 1.3),
    "reduce_min": (lambda t: jnp.min(_pair(t)) * t, 1.0, 1.3),
    "cummax": (lambda t: jnp.sum(lax.cummax(_pair(t)) * V[:2]), 1.0, 1.3),
    "cummin": (lambda t: jnp.sum(lax.cummin(_pair(t), reverse=True) * V[:2]), 1.0, 1.3),
    "argmax": (lambda t: jnp.argmax(_pair(t)).astype(t.dtype) * t, 1.0, 1.3),
    "argmin": (lambda t: jnp.argmin(_pair(t)).astype(t.dtype) * t, 1.0, 1.3),
    "sort": (lambda t: jnp.sum(jnp.sort(jnp.stack([t, 2.0 - t, 0.3])) * V), 1.0, 1.3),
    "top_k": (lambda t: jnp.sum(lax.top_k(jnp.stack([t, 2.0 - t, 0.3]), 2)[0] * V[:2]), 1.0, 1.3),
    "eigh": (lambda t: jnp.linalg.eigvalsh(jnp.diag(jnp.stack([t, 2.0 - t, 0.3]))) @ V, 1.0, 1.3),
    "svd": (lambda t: jnp.linalg.svd(jnp.diag(jnp.stack([t, 2.0 - t, 0.3])), compute_uv=False) @ V, 1.0, 1.3),  # noqa: E501
    "eig": (lambda t: jnp.real(jnp.linalg.eigvals(jnp.diag(jnp.stack([t, 2.0 - t, 0.3])))) @ V, 1.0, 1.3),  # noqa: E501
}  # fmt: skip
# Emitted by no jax.numpy function we know (eq_to: a total-order equality of lax's sorts).
NOT_EMITTED = {"eq_to"}
# At a tie the one-sided rule says it has no slope (NaN), and `one_sided` falls back to
# difference quotients, saying so: the eigenvalues of a nonsymmetric matrix, unsorted, have
# no one-sided derivative index by index where two meet (and infinite ones at a Jordan block).
NO_SLOPE_AT_TIES = {"eig"}


def test_every_rule_is_complete_and_of_a_known_kind():
    assert {"floor", "gt", "max", "lt_to", "le_to", "sign", "clamp", "rem", "select_n",
            "argmax", "argmin", "sort", "top_k", "eigh", "eig", "svd", "cummax",
            "random_gamma"} <= set(RULES)  # fmt: skip
    for rule in RULES.values():
        assert rule.kind in KINDS or rule.kind in ("nan_trap", "draw", "logic"), rule
        if rule.tie is not None:
            assert rule.one_sided is not None, rule.primitive  # a tie needs a side rule
        if rule.kind in KINDS or rule.kind == "nan_trap":
            ad_returns, remedy = rule.texts(random=False)
            assert ad_returns and remedy, rule.primitive
    assert set(FINDING_KINDS) == set(KINDS)
    with_tie = {p for p, r in RULES.items() if r.tie is not None}
    assert with_tie == set(CASES) | NOT_EMITTED


def _sites(f, theta, primitive):
    program = trace(f, jnp.asarray(theta))
    flows, _ = dataflow(program, [1])
    return program, [fl for fl in flows if rule_for(fl.eqn) is RULES[primitive]]


@pytest.mark.parametrize("primitive", list(CASES))
def test_rule_ties_and_agrees_with_jax_away_from_ties(primitive):
    f, tie, away = CASES[primitive]
    for theta, expect in ((tie, True), (away, False)):
        program, sites = _sites(f, theta, primitive)
        assert sites, primitive
        _, ties = evaluate(program, [jnp.asarray(theta)], Ties(sites))
        assert any(bool(t) for t in ties) == expect, (primitive, theta)
    d = sg.one_sided(f, away, 1.0)
    value, tangent = jax.jvp(f, (jnp.asarray(away),), (jnp.asarray(1.0),))
    np.testing.assert_allclose([float(d.left), float(d.right)], [tangent, tangent], atol=1e-12)
    np.testing.assert_allclose(float(d.value), float(value), atol=1e-12)
    # the rules, not the difference-quotient fallback (except where they say they cannot)
    assert sg.one_sided(f, tie, 1.0).exact == (primitive not in NO_SLOPE_AT_TIES)


@pytest.mark.parametrize("primitive", [p for p in CASES if RULES[p].relax is not None])
def test_relaxation_tends_to_the_primitive(primitive):
    f, _, away = CASES[primitive]
    soft = sg.smooth(lambda t, key: f(t), 1e-6)
    np.testing.assert_allclose(soft(away, jax.random.key(0)), f(jnp.asarray(away)), rtol=1e-5)


def _string_constants(tree):
    """String constants of a module that are not docstrings."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings:
                yield node


def test_the_rule_table_is_the_only_place_that_names_non_smooth_primitives():
    """No module but the table spells a non-smooth primitive's name in code (simgrad.reference
    has its own small table of NumPy operations, not JAX primitives)."""
    names = {p for p, r in RULES.items() if r.kind in KINDS and r.kind != "while_loop"}
    names |= {p for p, r in RULES.items() if r.kind == "draw"}
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name == "rules.py" or "reference" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in _string_constants(tree):
            if node.value in names:
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno} {node.value!r}")
    assert not offenders, offenders
