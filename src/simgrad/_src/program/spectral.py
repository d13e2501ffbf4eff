r"""The rule table's one-sided rules and tie tests for ``eigh``, ``svd`` and ``eig``.

Where eigenvalues of a symmetric (Hermitian) matrix $A$ coincide they have no derivative,
but they have one-sided directional derivatives. For a cluster of $k$ equal eigenvalues
$\lambda$ with orthonormal eigenvectors $U_c$, the eigenvalues of $A + \epsilon H$ are
$\lambda + \epsilon \mu_i + O(\epsilon^2)$ for small $\epsilon > 0$, where
$\mu_1 \le \dots \le \mu_k$ are the eigenvalues of the projected perturbation
$U_c^H H U_c$ (Kato, *Perturbation theory for linear operators*, II §5; Lewis 1996). Sorted
as the eigenvalues are, $\mu$ is the cluster's right derivative along $H$: the largest
eigenvalue of ``diag(a, a, 1)`` moves at $\max(a_1', a_2')$. Singular values likewise: for
a cluster $\sigma > 0$ with singular vectors $U_c, V_c$, the eigenvalues of the symmetric
part of $U_c^H H V_c$; for the zero singular values, the singular values of $U_0^H H V_0$
over the whole null spaces (so ``σ(diag(t, 1))`` at $t = 0$ has slopes $\pm 1$, not JAX's
one-sided 1).

The eigenvectors (singular vectors) of a cluster have no derivative at a tie — they jump to
the basis that diagonalises the projected perturbation — and the eigenvalues of a
nonsymmetric matrix (``eig``) at a tie can have infinite slopes (a Jordan block): their
tangents are NaN there, so `sg.one_sided` falls back to difference quotients and says its
slopes are not exact. Away from ties every tangent is JAX's own.

A tie is two values within rounding: ``16 · n · eps`` of the largest in magnitude.
"""

import jax
import jax.numpy as jnp

from ._jax_compat import JaxprEqn, bind


def _h(x):
    """The conjugate transpose of the last two axes."""
    return jnp.conj(jnp.swapaxes(x, -1, -2))


def _tolerance(values):
    """Rounding-level closeness for the real ``values`` (``(..., k)``): ``(..., 1)``."""
    scale = jnp.max(jnp.abs(values), axis=-1, keepdims=True)
    return 16 * values.shape[-1] * jnp.finfo(values.dtype).eps * scale


def _clusters(values):
    """``(ids, same)`` for sorted real ``values`` (``(..., k)``, ascending or descending):
    each value's cluster number (consecutive values within rounding share one), and
    whether positions ``i`` and ``j`` are in the same cluster (``(..., k, k)``)."""
    apart = jnp.abs(jnp.diff(values, axis=-1)) > _tolerance(values)
    first = jnp.zeros((*values.shape[:-1], 1), jnp.int32)
    ids = jnp.concatenate([first, jnp.cumsum(apart, axis=-1, dtype=jnp.int32)], axis=-1)
    return ids, ids[..., :, None] == ids[..., None, :]


def _in_cluster(same):
    """Whether each position shares its cluster with another: ``(..., k)``."""
    return jnp.sum(same, axis=-1) > 1


def _block_eigenvalues(p, ids, same, descending: bool):
    """The eigenvalues of each diagonal block of the Hermitian ``p`` (positions in the same
    cluster), in the block's positions, ascending (or descending) within the block.

    The blocks are shifted apart by multiples of three times their norm, so that one
    `eigvalsh` returns them in block order; the shifts are then taken off again.
    """
    sign = -1 if descending else 1
    block = jnp.where(same, sign * p, jnp.zeros_like(p))
    shift = 3 * jnp.sqrt(jnp.sum(jnp.abs(block) ** 2, axis=(-2, -1)))[..., None]
    offset = ids.astype(shift.dtype) * shift
    eye = jnp.eye(p.shape[-1], dtype=bool)
    shifted = block + jnp.where(eye, offset[..., :, None], 0).astype(block.dtype)
    return sign * (jnp.linalg.eigvalsh(shifted) - offset)


def _nan_where(mask, x):
    return jnp.where(mask, jnp.asarray(jnp.nan, x.dtype), x)


def _jax_jvp(eqn, a, da):
    return jax.jvp(lambda a: tuple(bind(eqn, [a])), (a,), (da,))


def _partial(eqn: JaxprEqn) -> bool:
    """Only some eigen- or singular values are computed (``subset_by_index``)."""
    subset = eqn.params.get("subset_by_index")
    n = min(eqn.invars[0].aval.shape[-2:])  # pyright: ignore[reportAttributeAccessIssue]  (a jaxpr variable's aval is shaped)
    return subset is not None and tuple(subset) != (0, n)


def _with_rule(eqn: JaxprEqn, invals, jvp):
    """``eqn`` evaluated with ``jvp(a, da) -> (primals, tangents)`` as its forward rule."""

    @jax.custom_jvp
    def decompose(a):
        return tuple(bind(eqn, [a]))

    @decompose.defjvp
    def decompose_jvp(primals, tangents):
        (a,), (da,) = primals, tangents
        return jvp(a, da)

    return list(decompose(invals[0]))


# --- eigh: outputs (eigenvectors, eigenvalues ascending), as the rule's ``spectrum`` ----------


def eigh_one_sided(eqn: JaxprEqn, invals):
    if _partial(eqn):
        return bind(eqn, invals)  # a cluster may extend past the subset: JAX's rule

    def jvp(a, da):
        (v, w), (dv, dw) = _jax_jvp(eqn, a, da)
        p = _h(v) @ da @ v
        ids, same = _clusters(w)
        tied = _in_cluster(same)
        mu = _block_eigenvalues((p + _h(p)) / 2, ids, same, descending=False)
        return (v, w), (_nan_where(tied[..., None, :], dv), jnp.where(tied, mu.real, dw))

    return _with_rule(eqn, invals, jvp)


def eigh_tie(eqn: JaxprEqn, invals):
    _, w = bind(eqn, invals)
    return jnp.any(_in_cluster(_clusters(w)[1]))


# --- svd: outputs (singular values descending[, U, Vᴴ]) ---------------------------------------


def _svd_ties(s):
    """``(ids, same, tied, zero)``: clusters of the positive singular values ``s``
    (descending), which positions share one, and which singular values are zero."""
    zero = s <= _tolerance(s)
    ids, same = _clusters(s)
    same = same & ~zero[..., :, None] & ~zero[..., None, :]
    return ids, same, _in_cluster(same), zero


def svd_one_sided(eqn: JaxprEqn, invals):
    if _partial(eqn):
        return bind(eqn, invals)

    def jvp(a, da):
        outs, touts = _jax_jvp(eqn, a, da)
        s = outs[0]
        m, n = a.shape[-2:]
        k = s.shape[-1]
        u, _, vh = jnp.linalg.svd(a, full_matrices=True)
        p = _h(u) @ da @ _h(vh)  # (..., m, n): Uᴴ H V over the full bases
        ids, same, tied, zero = _svd_ties(s)
        pk = p[..., :k, :k]
        mu = _block_eigenvalues((pk + _h(pk)) / 2, ids, same, descending=True).real
        # The zero singular values: those of U₀ᴴ H V₀ over the full null spaces, descending,
        # in the zero positions (the last ``count``).
        ones = jnp.ones(s.shape[:-1], bool)[..., None]
        left = jnp.concatenate([zero, jnp.broadcast_to(ones, (*s.shape[:-1], m - k))], -1)
        right = jnp.concatenate([zero, jnp.broadcast_to(ones, (*s.shape[:-1], n - k))], -1)
        q = jnp.where(left[..., :, None] & right[..., None, :], p, jnp.zeros_like(p))
        nu = jnp.linalg.svd(q, compute_uv=False)
        count = jnp.sum(zero, axis=-1, keepdims=True)
        index = jnp.clip(jnp.arange(k) - (k - count), 0, k - 1)
        ds = touts[0]
        ds = jnp.where(zero, jnp.take_along_axis(nu, index, axis=-1),
                       jnp.where(tied, mu, ds)).astype(ds.dtype)  # fmt: skip
        if len(outs) == 1:
            return tuple(outs), (ds,)
        bad = tied | zero  # U's columns, Vᴴ's rows
        du, dvh = _nan_where(bad[..., None, :], touts[1]), _nan_where(bad[..., :, None], touts[2])
        return tuple(outs), (ds, du, dvh)

    return _with_rule(eqn, invals, jvp)


def svd_tie(eqn: JaxprEqn, invals):
    _, _, tied, zero = _svd_ties(bind(eqn, invals)[0])
    return jnp.any(tied | zero)


# --- eig: outputs (eigenvalues[, left vectors][, right vectors]), unsorted, complex ----------


def _eig_tied(w):
    """Which eigenvalues (unsorted, complex) equal another within rounding."""
    close = jnp.abs(w[..., :, None] - w[..., None, :]) <= _tolerance(jnp.abs(w))[..., None]
    return jnp.sum(close, axis=-1) > 1


def eig_one_sided(eqn: JaxprEqn, invals):
    def jvp(a, da):
        outs, touts = _jax_jvp(eqn, a, da)
        tied = _eig_tied(outs[0])
        vectors = [_nan_where(tied[..., None, :], t) for t in touts[1:]]
        return tuple(outs), (_nan_where(tied, touts[0]), *vectors)

    return _with_rule(eqn, invals, jvp)


def eig_tie(eqn: JaxprEqn, invals):
    return jnp.any(_eig_tied(bind(eqn, invals)[0]))
