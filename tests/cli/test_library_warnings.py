"""No raw library warning reaches the user of the command line."""

from __future__ import annotations

import warnings

import numpy as np

from bayes_ablation.cli.console import configure_logging


def test_a_library_warning_is_said_in_the_package_words(capsys):
    with warnings.catch_warnings(), np.errstate(invalid="warn"):
        warnings.simplefilter("always")
        configure_logging()
        np.log(np.array([-1.0]))  # NumPy: RuntimeWarning: invalid value encountered in log
    err = capsys.readouterr().err
    assert "note: a library warned RuntimeWarning: invalid value encountered in log" in err
    assert "test_library_warnings.py:" in err
    assert "the command went on" in err
    assert "np.log(" not in err  # no raw source line, no file path dump
