"""InceptionV3 (the standard FID network, 2048-d pool features) from a local weights file.

The network is torch-fidelity's, through torchmetrics; nothing is downloaded. torch-fidelity
unpickles the file itself, so it is first read here with ``weights_only=True``: a file that is
not a plain state dict is refused before anything else opens it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..configuration.errors import ConfigError
from ..configuration.weights import file_sha256
from ..execution.images import quantize
from ..execution.precision import autocast

INCEPTION_NAME = "inception-v3-compat"
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                 + INCEPTION_FILE)


class InceptionFeatures(nn.Module):
    """Images in [-1, 1] (or uint8) to float64 InceptionV3 pool features, for torchmetrics."""

    img_channels = 3
    num_features = 2048
    precision = "fp32"  # autocast dtype of the network (precision.features)

    def __init__(self, network: nn.Module, sha256: str) -> None:
        super().__init__()
        self.network = network.eval().requires_grad_(False)
        self.name, self.sha256 = INCEPTION_NAME, sha256

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """2048-d features of RGB images, quantized to 8 bits as saved images would be."""
        if images.dtype != torch.uint8:
            images = quantize(images)
        with autocast(images.device, self.precision):
            return self.network(images).double()


def check_state_dict_file(path: Path, key: str) -> None:
    """Refuse a missing file, or one that is more than tensors (unpickling would run code)."""
    if not path.is_file():
        raise ConfigError(key, str(path), f"no such file; InceptionV3 needs {INCEPTION_FILE}, "
                          f"published at {INCEPTION_URL}; download it and give its path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any failure means: not a plain state dict
        raise ConfigError(key, str(path), f"not a plain InceptionV3 state dict ({err})") from None
    if not isinstance(state, dict) or "fc.weight" not in state:
        raise ConfigError(key, str(path), "not an InceptionV3 state dict (no fc.weight); "
                          f"expected {INCEPTION_FILE} from {INCEPTION_URL}")


def inception_features(path: Path, key: str = "metric.inception_weights") -> InceptionFeatures:
    """The FID InceptionV3 of torch-fidelity with the weights at ``path``."""
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3
    except ImportError:  # pragma: no cover - depends on the installation
        raise ConfigError(key, str(path), "InceptionV3 needs torch-fidelity: "
                          "pip install torch-fidelity") from None
    check_state_dict_file(path, key)
    network = NoTrainInceptionV3(name=INCEPTION_NAME, features_list=["2048"],
                                 feature_extractor_weights_path=str(path))
    return InceptionFeatures(network, file_sha256(path))
