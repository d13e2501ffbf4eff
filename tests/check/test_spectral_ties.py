"""sg.one_sided and sg.check at eigenvalue and singular-value ties, against the slopes
derived by hand (the largest of diag(a, b, 1) is max(a, b) near a = b; a zero singular
value is |t|) and against perturbation theory (the eigenvalues of the projected
perturbation, computed independently with NumPy).

``sg.one_sided``'s convention: ``right`` is f'(θ; h), ``left`` is -f'(θ; -h)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simgrad as sg

# A fixed rotation: the same spectra in a basis where the eigenvectors are not the axes.
Q3 = np.linalg.qr(np.random.default_rng(3).normal(size=(3, 3)))[0]


def _diag(*entries):
    return jnp.diag(jnp.stack(entries))


def top_eig(t):
    return jnp.linalg.eigvalsh(_diag(t[0], t[1], 1.0))[-1]


def top_eig_rotated(t):
    return jnp.linalg.eigvalsh(Q3 @ _diag(t[0], t[1], 1.0) @ Q3.T)[-1]


def bottom_eig(t):
    return jnp.linalg.eigh(_diag(t[0], t[1], 5.0))[0][0]


def spectrum(t):
    return jnp.linalg.eigvalsh(_diag(t[0], t[1], 1.0))


def conical(t):
    """Eigenvalues 2 ± sqrt((t0 - 1)² + t1²): a cone at (1, 0)."""
    a = jnp.array([[t[0] + 1.0, t[1]], [t[1], 3.0 - t[0]]])
    return jnp.linalg.eigvalsh(a)[1]


def top_singular(t):
    return jnp.linalg.svd(_diag(t[0], t[1]), compute_uv=False)[0]


def top_singular_with_vectors(t):
    return jnp.linalg.svd(_diag(t[0], t[1]))[1][0]


def smallest_singular(t):
    return jnp.linalg.svd(_diag(t, 1.0), compute_uv=False)[-1]


def smallest_singular_tall(t):
    a = jnp.zeros((3, 2)).at[0, 0].set(t).at[1, 1].set(1.0)
    return jnp.linalg.svd(a, full_matrices=False, compute_uv=False)[-1]


def operator_norm(t):
    return jnp.linalg.norm(_diag(t[0], t[1]), ord=2)


# (name, f, theta, h, left, right): slopes derived by hand.
TABLE = [
    # λmax(diag(a, b, 1)) = max(a, b) near a = b = 2: right max(a', b'), left min(a', b').
    ("λmax diag, h = (1, -1)", top_eig, [2.0, 2.0], [1.0, -1.0], -1.0, 1.0),
    ("λmax diag, h = (1, 2)", top_eig, [2.0, 2.0], [1.0, 2.0], 1.0, 2.0),
    ("λmax rotated, h = (1, -1)", top_eig_rotated, [2.0, 2.0], [1.0, -1.0], -1.0, 1.0),
    ("λmax rotated, h = (1, 2)", top_eig_rotated, [2.0, 2.0], [1.0, 2.0], 1.0, 2.0),
    # λmin(diag(a, b, 5)) = min(a, b): right min(a', b'), left max(a', b').
    ("λmin diag, h = (1, -1)", bottom_eig, [2.0, 2.0], [1.0, -1.0], 1.0, -1.0),
    # The cone: slopes ±|h|.
    ("cone, h = (1, 0)", conical, [1.0, 0.0], [1.0, 0.0], -1.0, 1.0),
    ("cone, h = (0.6, 0.8)", conical, [1.0, 0.0], [0.6, 0.8], -1.0, 1.0),
    # σmax(diag(a, b)) = max(|a|, |b|) near a = b = 2.
    ("σmax, h = (1, -1)", top_singular, [2.0, 2.0], [1.0, -1.0], -1.0, 1.0),
    ("σmax with vectors, h = (1, 2)", top_singular_with_vectors, [2.0, 2.0], [1.0, 2.0], 1.0, 2.0),  # noqa: E501
    ("‖·‖₂, h = (1, 2)", operator_norm, [2.0, 2.0], [1.0, 2.0], 1.0, 2.0),
    # σmin(diag(t, 1)) = |t| near 0.
    ("σmin = |t|, h = 1", smallest_singular, 0.0, 1.0, -1.0, 1.0),
    ("σmin = |t|, h = -2", smallest_singular, 0.0, -2.0, -2.0, 2.0),
    ("σmin of a 3×2, h = 1", smallest_singular_tall, 0.0, 1.0, -1.0, 1.0),
]  # fmt: skip


@pytest.mark.parametrize("name, f, theta, h, left, right", TABLE, ids=[r[0] for r in TABLE])
def test_one_sided_slopes_at_ties_are_the_hand_derived_ones(name, f, theta, h, left, right):
    d = sg.one_sided(f, jnp.asarray(theta), jnp.asarray(h))
    assert d.exact, d.note
    np.testing.assert_allclose([float(d.left), float(d.right)], [left, right], atol=1e-12)
    assert d.kink


def test_every_eigenvalue_of_the_cluster_gets_its_side():
    """eigvalsh(diag(a, b, 1)) at a = b = 2 is [1, 2, 2]; along h = (1, -1) the pair splits
    into 2 - ε and 2 + ε: right slopes [0, -1, 1]; along -h the same, so left [0, 1, -1]."""
    d = sg.one_sided(spectrum, jnp.array([2.0, 2.0]), jnp.array([1.0, -1.0]))
    assert d.exact
    np.testing.assert_allclose(d.right, [0.0, -1.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(d.left, [0.0, 1.0, -1.0], atol=1e-12)


def test_a_planted_triple_eigenvalue_moves_by_the_projected_perturbation():
    """A(t) = Q diag(1, 2, 2, 2, 3) Qᵀ + t0 B1 + t1 B2 at t = 0: the triple eigenvalue's
    one-sided slopes along h are the sorted eigenvalues of U_cᵀ (h0 B1 + h1 B2) U_c (Kato),
    computed here with NumPy; the simple ones are uᵀ H u."""
    rng = np.random.default_rng(0)
    q = np.linalg.qr(rng.normal(size=(5, 5)))[0]
    b1, b2 = (m + m.T for m in rng.normal(size=(2, 5, 5)))
    a0 = q @ np.diag([1.0, 2.0, 2.0, 2.0, 3.0]) @ q.T

    def f(t):
        return jnp.linalg.eigvalsh(a0 + t[0] * b1 + t[1] * b2)

    h = np.array([0.7, -0.4])
    d = sg.one_sided(f, jnp.zeros(2), jnp.asarray(h))
    assert d.exact

    def slopes(hh):
        p = q.T @ (hh[0] * b1 + hh[1] * b2) @ q
        return np.concatenate([[p[0, 0]], np.linalg.eigvalsh(p[1:4, 1:4]), [p[4, 4]]])

    np.testing.assert_allclose(d.right, slopes(h), atol=1e-12)
    np.testing.assert_allclose(d.left, -slopes(-h), atol=1e-12)


def test_a_planted_double_singular_value_moves_by_the_projected_perturbation():
    """σ(A) with A = U diag(3, 1.5, 1.5, 0) Vᵀ + t H at t = 0: the double σ's slopes are the
    eigenvalues of sym(U_cᵀ H V_c), descending; the zero σ's is |u₀ᵀ H v₀|."""
    rng = np.random.default_rng(1)
    u, v = (np.linalg.qr(rng.normal(size=(4, 4)))[0] for _ in range(2))
    hm = rng.normal(size=(4, 4))
    a0 = u @ np.diag([3.0, 1.5, 1.5, 0.0]) @ v.T

    def f(t):
        return jnp.linalg.svd(a0 + t * hm, compute_uv=False)

    d = sg.one_sided(f, 0.0, 1.0)
    assert d.exact

    def slopes(sign):
        p = sign * u.T @ hm @ v
        pair = np.linalg.eigvalsh((p[1:3, 1:3] + p[1:3, 1:3].T) / 2)[::-1]
        return np.concatenate([[p[0, 0]], pair, [abs(p[3, 3])]])

    np.testing.assert_allclose(d.right, slopes(1.0), atol=1e-12)
    np.testing.assert_allclose(d.left, -slopes(-1.0), atol=1e-12)


def test_away_from_ties_the_rules_are_jax_s_own():
    a0 = np.diag([1.0, 2.0, 4.0])

    def f(t):
        a = a0 + t * jnp.array([[0.0, 1.0, 0.5], [1.0, 0.3, 0.0], [0.5, 0.0, -1.0]])
        return jnp.concatenate([jnp.linalg.eigvalsh(a), jnp.linalg.svd(a, compute_uv=False)])

    d = sg.one_sided(f, 0.1, 1.0)
    _, tangent = jax.jvp(f, (jnp.asarray(0.1),), (jnp.asarray(1.0),))
    assert d.exact
    np.testing.assert_allclose(d.right, tangent, atol=1e-12)
    np.testing.assert_allclose(d.left, tangent, atol=1e-12)


def test_float32_ties_are_found_within_rounding():
    with jax.enable_x64(False):
        d = sg.one_sided(top_eig_rotated, jnp.array([2.0, 2.0]), jnp.array([1.0, -1.0]))
        assert d.right.dtype == jnp.float32
    np.testing.assert_allclose([float(d.left), float(d.right)], [-1.0, 1.0], atol=1e-5)


def test_eigenvectors_at_a_tie_are_not_exact_and_say_why():
    """The top eigenvector of diag(a, b, 1) jumps from e2 to e1 as a passes b: no slope."""

    def f(t):
        _, v = jnp.linalg.eigh(_diag(t[0], t[1], 1.0))
        return v[0, -1] ** 2

    d = sg.one_sided(f, jnp.array([2.0, 2.0]), jnp.array([1.0, -1.0]))
    assert not d.exact
    assert "eigh" in d.note and "tie" in d.note
    # Off the tie, the eigenvectors are the axes: no slope at all, exactly.
    off = sg.one_sided(f, jnp.array([2.0, 3.0]), jnp.array([1.0, -1.0]))
    assert off.exact and (float(off.left), float(off.right)) == (0.0, 0.0)


def test_nonsymmetric_eigenvalues_at_a_tie_are_not_exact_and_say_why():
    def f(t):
        return jnp.max(jnp.real(jnp.linalg.eigvals(_diag(t[0], t[1]))))

    d = sg.one_sided(f, jnp.array([2.0, 2.0]), jnp.array([1.0, -1.0]))
    assert not d.exact and "eig" in d.note and "tie" in d.note
    # The difference quotients still find max(a, b)'s slopes.
    np.testing.assert_allclose([float(d.left), float(d.right)], [-1.0, 1.0], atol=1e-6)


def test_check_reports_the_kink_of_an_eigenvalue_tie_along_each_parameter():
    """λmax(diag(a, b, 1)) = max(a, b) at a = b = 2: along a the slopes are 0 (left) and 1
    (right); along b the same."""
    report = sg.check(lambda t, key: top_eig(t), jnp.array([2.0, 2.0]))
    kinks = report.of_kind("kink_at_theta")
    assert [k.primitive for k in kinks] == ["eigh", "eigh"]
    assert kinks[0].detail.startswith("slope 0 from the left, 1 from the right along θ[0]")
    assert kinks[1].detail.startswith("slope 0 from the left, 1 from the right along θ[1]")
    assert report.of_kind("degenerate_eigenvalues")
