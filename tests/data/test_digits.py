"""The bundled digits: scikit-learn's, read without importing scikit-learn."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from sklearn.datasets import load_digits

from skipsearch.data.digits import digits_arrays


def test_the_digits_are_scikit_learns_to_the_bit():
    pixels, labels = digits_arrays()
    bunch = load_digits()
    assert pixels.dtype == bunch.images.dtype and labels.dtype == bunch.target.dtype
    assert np.array_equal(pixels, bunch.images) and np.array_equal(labels, bunch.target)


def test_reading_the_digits_imports_no_scikit_learn():
    """Its import costs most of a second of every command's start-up."""
    code = ("import sys\nfrom skipsearch.data.digits import digits_tensors\n"
            "images, labels = digits_tensors()\nassert images.shape == (1797, 1, 16, 16)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
