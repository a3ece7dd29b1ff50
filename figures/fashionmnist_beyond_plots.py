"""Issue 38's FashionMNIST figures: Delta_GM_OF against epochs per setting, from plain data.

``delta_gm_figure`` takes the curves of ``figures.fashionmnist_summary.beyond_curves`` (one dict
per run: ``setting``, ``seed``, ``finished``, ``epochs``, ``values``) and draws one colour per
setting: each seed thin and light (dashed while the run is in progress; darker when no seed
of its setting has finished), the mean over the finished seeds bold (``mean_curve``), and the
UFM's predicted Delta_GM_OF as dotted horizontal lines. ``python -m figures.fashionmnist`` saves
them as ``r10_beyond/temperature.png``, ``r10_beyond/activations.png`` and (issue 35's model
complexity) ``r10_complexity/delta_gm.png``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["mean_curve", "delta_gm_figure"]


def mean_curve(curves: Sequence[Mapping[str, Any]]) -> tuple[list[int], list[float]]:
    """Per epoch, the mean of the values of the FINISHED curves that all have that epoch:
    ``(epochs, means)``, empty when no curve is finished."""
    done = [dict(zip(c["epochs"], c["values"])) for c in curves if c["finished"]]
    if not done:
        return [], []
    epochs = sorted(set.intersection(*(set(d) for d in done)))
    return epochs, [float(np.mean([d[e] for d in done])) for e in epochs]


def delta_gm_figure(curves: Sequence[Mapping[str, Any]], *, title: str,
                    labels: Mapping[str, str] | None = None,
                    levels: Sequence[tuple[str, float]] = ()) -> Any:
    """A matplotlib Figure of Delta_GM_OF against the epoch: per setting (in the order of first
    appearance in ``curves``, legend text ``labels[setting]``, default the setting) every seed
    thin (dashed: in progress) and the finished seeds' mean bold; ``levels``: ``(legend text,
    Delta_GM_OF)`` pairs drawn as dotted horizontal lines (the predictions), the value appended
    to the text."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = labels or {}
    settings = list(dict.fromkeys(c["setting"] for c in curves))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for j, setting in enumerate(settings):
        color = plt.get_cmap("tab10")(j % 10)
        mine = [c for c in curves if c["setting"] == setting]
        n_done = sum(c["finished"] for c in mine)
        for c in mine:  # light beside a bold mean; clearly visible when no seed has finished
            ax.plot(c["epochs"], c["values"], color=color, lw=0.9 if n_done else 1.6,
                    alpha=0.4 if n_done else 0.9, ls="-" if c["finished"] else "--")
        x, y = mean_curve(mine)
        name = labels.get(setting, setting)
        running = len(mine) - n_done
        text = f"{name} ({n_done} finished" + (f", {running} running)" if running else ")")
        if x:
            ax.plot(x, y, color=color, lw=2.0, label=text)
        else:  # label the (running) seeds themselves
            ax.plot([], [], color=color, lw=0.9, ls="--", label=text)
    for j, (name, value) in enumerate(levels):
        ax.axhline(value, color="0.3", lw=1.0, ls=(0, (1, 2 + 2 * j)), label=f"{name}: {value:.3f}")
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel(r"$\Delta_{GM}$ to the OF")
    ax.set_ylim(bottom=-0.02)  # a prediction of 0 (the OF) stays visible
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
