"""Feature-network files for tests: Meta's DINOv2 format and torch-fidelity's InceptionV3.

Random weights in the layouts of the published files, small where the format allows.
"""

from __future__ import annotations

from pathlib import Path

import torch

DIM, DEPTH, HEADS, PATCH, SIDE = 128, 2, 2, 14, 37  # a tiny ViT; its table is for 518 pixels


def official_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict in the format of Meta's dinov2_vit*14_pretrain.pth files."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale + shift

    state = {"cls_token": rand(1, 1, DIM), "pos_embed": rand(1, SIDE * SIDE + 1, DIM),
             "mask_token": rand(1, DIM), "norm.weight": rand(DIM, scale=0.2, shift=1.0),
             "norm.bias": rand(DIM, scale=0.1),
             "patch_embed.proj.weight": rand(DIM, 3, PATCH, PATCH, scale=(3 * PATCH**2) ** -0.5),
             "patch_embed.proj.bias": rand(DIM, scale=0.1)}
    shapes = {"norm1": None, "attn.qkv": 3 * DIM, "attn.proj": DIM, "ls1": None, "norm2": None,
              "mlp.fc1": 4 * DIM, "mlp.fc2": DIM, "ls2": None}
    for i in range(DEPTH):
        for name, rows in shapes.items():
            prefix = f"blocks.{i}.{name}"
            if name.startswith("ls"):
                state[f"{prefix}.gamma"] = rand(DIM, scale=0.3, shift=0.5)
            elif name.startswith("norm"):
                state[f"{prefix}.weight"] = rand(DIM, scale=0.2, shift=1.0)
                state[f"{prefix}.bias"] = rand(DIM, scale=0.1)
            else:
                cols = 4 * DIM if name == "mlp.fc2" else DIM
                state[f"{prefix}.weight"] = rand(rows, cols, scale=cols**-0.5)
                state[f"{prefix}.bias"] = rand(rows, scale=0.1)
    return state



def write_dinov2(path: Path, seed: int = 0) -> Path:
    """A tiny DINOv2 ViT in the official state-dict format at ``path``."""
    torch.save(official_state(seed), path)
    return path


def write_random_inception(folder: Path) -> Path:
    """torch-fidelity's InceptionV3 at its random initialisation, saved as a state dict."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class RandomInception(FeatureExtractorInceptionV3):
        """The network that keeps its random initialisation."""

        def load_state_dict(self, state_dict, strict=True, assign=False):
            return None

    folder.mkdir(parents=True, exist_ok=True)
    torch.save({}, folder / "empty.pt")
    torch.manual_seed(0)
    net = RandomInception("inception-v3-compat", ["2048"],
                          feature_extractor_weights_path=str(folder / "empty.pt"))
    torch.save(net.state_dict(), folder / "inception.pth")
    return folder / "inception.pth"
