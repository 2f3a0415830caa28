"""The ``model`` group, checked: its kind, and the files and settings that kind needs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..configuration.errors import check
from ..configuration.keys import get_choice, get_float
from .kinds import MODEL_KINDS, TEXT_TO_IMAGE_KINDS


@dataclass(frozen=True)
class ModelSpec:
    """A checked ``model`` group: ``section`` is what the kind's loader reads."""

    kind: str
    name: str
    path: Path | None
    section: DictConfig

    @property
    def latent(self) -> bool:
        """Whether the model denoises an autoencoder's latents (decoded for scoring)."""
        return (self.kind == "ldm"
                or OmegaConf.select(self.section, "schedule") == "discrete")

    @classmethod
    def from_config(cls, cfg: DictConfig, command: str) -> ModelSpec:
        """The checked ``model`` group for ``command`` (inspect needs no autoencoder)."""
        kind = get_choice(cfg, "model.kind", MODEL_KINDS)
        name = str(OmegaConf.select(cfg, "model.name") or kind)
        if kind == "digits":
            weights = OmegaConf.select(cfg, "model.weights")
            check(weights is None or Path(weights).is_file(), "model.weights", weights,
                  "no such file; give the path of the model's weights, or null for the "
                  "bundled one")
            if weights is not None:
                from ..configuration.weights import DENOISER_FILE, check_network_file

                check_network_file(Path(weights), "model.weights", DENOISER_FILE)
            return cls(kind, name, Path(weights) if weights else None, cfg.model)
        path = OmegaConf.select(cfg, "model.path", throw_on_missing=False)
        check(path not in (None, "???"), "model.path", path,
              f"model.kind={kind} needs the local path of its checkpoint: model.path=PATH")
        check(Path(path).exists(), "model.path", path,
              "no such file or folder; give a local path")
        spec = cls(kind, name, Path(path), cfg.model)
        if kind in TEXT_TO_IMAGE_KINDS:
            check_text_to_image(cfg, command)
        if kind in ("adm", "ldm", "uvit"):
            from .settings import check_model_settings

            check_model_settings(cfg)
        if kind in ("ldm", "uvit"):
            check_autoencoder(cfg, spec.latent, command)
        if kind in ("edm", "edm2"):
            check_nvlabs_pickle(cfg, kind, Path(path))
        return spec


def check_text_to_image(cfg: DictConfig, command: str) -> None:
    """Prompts for sampling; sweeps and scores need the InceptionV3 metric."""
    from ..metrics.registry import METRICS, NETWORKS

    name = OmegaConf.select(cfg, "metric.name")
    rgb_metric = name in METRICS and NETWORKS[METRICS[name].network].channels == 3
    check(command != "sweep" or rgb_metric, "metric.name", name,
          "text-to-image sweeps score RGB images: use metric=fid (or clip_score)")
    if command in ("sample", "sweep"):
        from .prompts import read_prompt_set

        prompts = OmegaConf.select(cfg, "model.prompts")
        check(prompts is not None, "model.prompts", prompts,
              "give a prompt set: model.prompts=FILE (.txt, one prompt a line; .csv or .jsonl)")
        read_prompt_set(prompts, "model.prompts", check_images=False)  # each problem one line
    if command == "sample":
        check(cfg.sample.score is False or rgb_metric, "sample.score", cfg.sample.score,
              "scoring RGB images needs metric=fid; or set sample.score=false")
    scale = get_float(cfg, "model.guidance_scale", 0.0)
    check(scale >= 1.0, "model.guidance_scale", scale, "must be >= 1 (1: no guidance)")


def check_autoencoder(cfg: DictConfig, latent: bool, command: str) -> None:
    """Latent models need their autoencoder folder to sample (not to inspect)."""
    folder = OmegaConf.select(cfg, "model.autoencoder")
    check(folder is None or Path(folder).is_dir(), "model.autoencoder", folder,
          "no such folder; give a local diffusers AutoencoderKL or VQModel folder")
    check(folder is not None or not latent or command == "inspect", "model.autoencoder", folder,
          "latent models decode their samples: give the autoencoder folder, "
          "model.autoencoder=PATH")


def check_nvlabs_pickle(cfg: DictConfig, kind: str, path: Path) -> None:
    """EDM and EDM2 snapshots: trusted explicitly, one pickle file, an optional VAE folder."""
    trust = OmegaConf.select(cfg, "model.trust_pickle")
    check(trust is True, "model.trust_pickle", trust,
          "EDM checkpoints are pickles and unpickling runs code; set "
          "model.trust_pickle=true only for a file you trust")
    check(path.is_file(), "model.path", str(path),
          f"a folder; give the snapshot file itself (model.kind={kind} reads one .pkl)")
    vae = OmegaConf.select(cfg, "model.vae")
    check(vae is None or Path(vae).is_dir(), "model.vae", vae,
          "no such folder; give the local diffusers AutoencoderKL folder, or null")
    check_pickle_file("model.path", path, kind)
    guide = OmegaConf.select(cfg, "model.guide_path") if kind == "edm2" else None
    if guide is not None:
        check(Path(guide).is_file(), "model.guide_path", guide,
              "no such file; give the guiding network's snapshot (.pkl), or null")
        check_pickle_file("model.guide_path", Path(guide), kind)
    scale = OmegaConf.select(cfg, "model.guidance_scale") if kind == "edm2" else None
    if scale is not None:
        scale = get_float(cfg, "model.guidance_scale", 0.0)
        check(scale == 1.0 or guide is not None, "model.guidance_scale", scale,
              "autoguidance needs a guiding network: set model.guide_path, or 1")


def check_pickle_file(key: str, path: Path, kind: str) -> None:
    """A file that starts as a pickle does (protocol 2 or later); else one line naming ``key``."""
    with open(path, "rb") as f:
        magic = f.read(2)
    check(len(magic) == 2 and magic[0] == 0x80 and magic[1] >= 2, key, str(path),
          f"not a pickle; give an NVlabs {kind.upper()} network snapshot (.pkl)")
