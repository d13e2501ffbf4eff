"""The one way simgrad makes a matplotlib figure."""


def require_matplotlib() -> None:
    """Raise an `ImportError` that says how to install matplotlib, which only plots need."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "plots need matplotlib, which is not installed: pip install 'simgrad[plots]' "
            "(or pip install matplotlib)",
            name="matplotlib",
        ) from error


def figure(to_file: bool, **kwargs):
    """A figure to save (``to_file``) or to show.

    A figure for a file is a bare `matplotlib.figure.Figure`, no part of pyplot's state: saving
    a plot neither switches the backend nor leaves a figure open, so a notebook keeps
    showing its own. A figure to show is pyplot's, in the user's backend.
    """
    require_matplotlib()
    if to_file:
        from matplotlib.figure import Figure

        return Figure(**kwargs)
    import matplotlib.pyplot as plt

    return plt.figure(**kwargs)


def panels(ax, path, n: int, figsize: tuple) -> list:
    """The axes a result's ``plot(ax=None, *, path=None)`` draws into: ``ax`` itself (one
    Axes, or a sequence of ``n``), or ``n`` new ones side by side on a new figure (a bare
    one when it goes to ``path``)."""
    if ax is None:
        return list(figure(path is not None, figsize=figsize).subplots(1, n, squeeze=False)[0])
    import numpy as np

    axes = [ax] if hasattr(ax, "plot") else list(np.ravel(np.asarray(ax, dtype=object)))
    if len(axes) != n or not all(hasattr(a, "plot") for a in axes):
        raise TypeError(f"ax must be None or {n} matplotlib Axes (one per panel), got {ax!r}.")
    return axes


def finish(axes: list, path, laid_out: bool = True):
    """Lay out the figure of ``axes`` (``laid_out``: it is the plot's own, not a caller's),
    save it to ``path`` (if given); return the Axes (one, or all)."""
    if laid_out:
        axes[0].figure.tight_layout()
    if path is not None:
        axes[0].figure.savefig(path, dpi=90)
    return axes[0] if len(axes) == 1 else axes
