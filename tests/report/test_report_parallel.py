"""Figures drawn in a forked child are the same bytes, in the same order, as drawn serially;
a child that fails costs nothing but time."""

from __future__ import annotations

import os

import numpy as np


def _figure(i: int):
    from bayes_ablation.report.plots import subplots

    fig, ax = subplots(figsize=(2, 1.5))
    ax.plot(np.arange(10) * (i + 1))
    ax.set_title(f"figure {i}")
    return fig


def _makers(names):
    return {name: (lambda i=i: _figure(i)) for i, name in enumerate(names)}


NAMES = ["km_posterior", "ppc_sites", "hr_posterior", "traces"]


def test_parallel_figures_equal_serial(monkeypatch):
    from bayes_ablation.report import html

    monkeypatch.setenv("BAYES_ABLATION_SERIAL_REPORT", "1")
    serial = html.render_pngs(_makers(NAMES))
    monkeypatch.delenv("BAYES_ABLATION_SERIAL_REPORT")
    messages: list[str] = []
    parallel = html.render_pngs(_makers(NAMES), messages.append)
    assert list(parallel) == NAMES == list(serial)
    assert parallel == serial
    if html._can_fork():
        assert "figure ppc_sites (drawn in parallel)" in messages


def test_figure_the_child_failed_is_drawn_here():
    from bayes_ablation.report import html

    parent = os.getpid()

    def fails_in_child():
        if os.getpid() != parent:
            raise RuntimeError("child failure")
        return _figure(7)

    makers = _makers(NAMES)
    makers["ppc_sites"] = fails_in_child
    pngs = html.render_pngs(makers)
    assert list(pngs) == NAMES
    assert pngs["ppc_sites"] == html.figure_png(_figure(7))


def test_figures_are_shared_out_from_one_queue(monkeypatch):
    """Eight figures, the parent slow: the child takes the next figure whenever it is free,
    so it draws several; every figure is delivered once, with the serial bytes."""
    import time

    from bayes_ablation.report import html

    names = [f"figure_{i}" for i in range(8)]
    parent = os.getpid()

    def maker(i):
        def draw():
            if os.getpid() == parent:
                time.sleep(0.3)
            return _figure(i)
        return draw

    makers = {name: maker(i) for i, name in enumerate(names)}
    monkeypatch.setenv("BAYES_ABLATION_SERIAL_REPORT", "1")
    serial = html.render_pngs({name: (lambda i=i: _figure(i)) for i, name in enumerate(names)})
    monkeypatch.delenv("BAYES_ABLATION_SERIAL_REPORT")
    messages: list[str] = []
    shared = html.render_pngs(makers, messages.append)
    assert shared == serial and list(shared) == names
    if html._can_fork():
        in_child = [m for m in messages if m.endswith("(drawn in parallel)")]
        assert len(in_child) >= 3
        assert len(messages) == len(names)      # each figure once
