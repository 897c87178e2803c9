"""helpers.plots: the learning curves' x axes."""

import pytest


def test_plots_draw_curves_against_seconds():
    import matplotlib

    matplotlib.use("Agg")
    from helpers import plots

    fig = plots.learning_curves({"a": [{"step": 0, "train_seconds": 0, "seconds": 5, "dev": {"step": 0.2}}]},
                                tasks=("step",), x="seconds")
    assert fig.axes[0].get_xlabel().startswith("training wall-clock seconds")
    assert list(fig.axes[0].lines[0].get_xdata()) == [5]
    with pytest.raises(ValueError, match="x must be one of"):
        plots.learning_curves({}, x="minutes")
