"""The one way simgrad makes a matplotlib figure."""


def figure(to_file: bool, **kwargs):
    """A figure to save (``to_file``) or to show.

    A figure for a file is a bare `matplotlib.figure.Figure`, no part of pyplot's state: saving
    a plot neither switches the backend nor leaves a figure open, so a notebook keeps
    showing its own. A figure to show is pyplot's, in the user's backend.
    """
    if to_file:
        from matplotlib.figure import Figure

        return Figure(**kwargs)
    import matplotlib.pyplot as plt

    return plt.figure(**kwargs)
