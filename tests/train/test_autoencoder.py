"""Training the digits autoencoder: seeded, deterministic on the CPU, and it learns."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from skipsearch.train.autoencoder import train_autoencoder

ONE_EPOCH = SimpleNamespace(epochs=1, batch_size=128, lr=2e-3, test_fraction=0.2, width=4,
                            feature_dim=8)


def test_one_epoch_is_reproducible_and_logged():
    first, mse, lines = train_autoencoder(ONE_EPOCH, seed=3)
    second, again, _ = train_autoencoder(ONE_EPOCH, seed=3)
    assert mse == again and 0 < mse < 1
    assert all(torch.equal(v, second.state_dict()[k]) for k, v in first.state_dict().items())
    assert len(lines) == 1 and lines[0].startswith("epoch   1") and "held-out mse" in lines[0]
    assert first.config.feature_dim == 8 and not first.training


def test_another_seed_gives_another_network():
    first, _, _ = train_autoencoder(ONE_EPOCH, seed=0)
    other, _, _ = train_autoencoder(ONE_EPOCH, seed=1)
    assert not torch.equal(first.encoder[0].weight, other.encoder[0].weight)
