"""The bundled weights: small, loadable, and good at their jobs."""

from __future__ import annotations

import torch

from skipsearch.data.digits import digits_tensors, train_test_split_indices
from skipsearch.execution.generation import generate
from skipsearch.metrics.digits_autoencoder import DIGITS_AUTOENCODER
from skipsearch.metrics.features import DIGITS_CLASSIFIER, load_digits_classifier
from skipsearch.models.digits import DIGITS_WEIGHTS, load_digits_denoiser
from skipsearch.samplers import edm_sigmas, labels_from_seeds


def test_bundled_files_are_small_safetensors():
    for path in (DIGITS_WEIGHTS, DIGITS_CLASSIFIER, DIGITS_AUTOENCODER):
        assert path.suffix == ".safetensors"
        assert path.stat().st_size < 5 * 2**20
    assert DIGITS_AUTOENCODER.stat().st_size < 2**20


def test_classifier_held_out_accuracy_is_at_least_98_percent():
    images, labels = digits_tensors()
    _, test_idx = train_test_split_indices(len(labels), 0.2, seed=0)
    model = load_digits_classifier()
    with torch.no_grad():
        predicted = model(images[test_idx]).argmax(1)
    assert (predicted == labels[test_idx]).float().mean().item() >= 0.98


def test_bundled_model_draws_the_digits_it_is_asked_for():
    denoiser = load_digits_denoiser()
    assert len(denoiser.skips) == 6
    seeds = range(100)
    images = generate(denoiser, seeds, edm_sigmas(18))  # 35 NFE
    asked = labels_from_seeds(seeds, 10).argmax(1)
    with torch.no_grad():
        seen = load_digits_classifier()(images).argmax(1)
    assert (seen == asked).float().mean().item() >= 0.9
