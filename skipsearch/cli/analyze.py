"""``skipsearch analyze``: denoising loss with and without a schedule, pixel and feature space."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from ..analysis.loss import denoising_losses, sigma_grid, write_loss_csv
from ..configuration.build import Settings, build
from ..configuration.errors import ConfigError
from ..data.digits import digits_tensors
from ..execution.runtime import build_extractor, build_model, check_metric_fits, setup_device
from ..metrics.reference import reference_images
from ..models import LoadedModel
from ..report.instruments import LOSS_CSV, save_loss
from .instruments import figure_title, instrument_folder, schedule_tag, studied_schedule


def reference_set(name: str, model: LoadedModel, n: int
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The first ``n`` images of reference set ``name`` and their one-hot labels if needed."""
    label_dim = int(model.denoiser.label_dim)
    if name == "digits":
        images, labels = digits_tensors(model.denoiser.img_resolution)
    else:
        if label_dim:
            raise ConfigError("metric.reference", name,
                              f"{model.name} is class-conditional and only the bundled digits "
                              "reference carries labels; use metric.reference=digits or an "
                              "unconditional model")
        images, labels = reference_images(name), None
    want = (model.denoiser.img_channels, model.denoiser.img_resolution)
    if (images.shape[1], images.shape[-1]) != want:
        raise ConfigError("metric.reference", name,
                          f"holds {images.shape[1]}-channel {images.shape[-1]}px images, the "
                          f"model denoises {want[0]}-channel {want[1]}px ones; give a reference "
                          "set at the model's resolution")
    images = images[:n]
    onehot = F.one_hot(labels[:n], label_dim).float() if label_dim else None
    return images, onehot


def run_analyze(cfg: DictConfig, settings: Settings | None = None) -> dict:
    """Write loss.csv and loss.png (tuned / untuned loss against sigma) to the study's folder."""
    settings = settings or build(cfg, "analyze")
    device = setup_device(settings)
    model = build_model(settings, device)
    schedule, sampler, study = studied_schedule(settings, model)
    check_metric_fits(settings, model)
    extractor = build_extractor(settings, device)
    a = settings.options
    images, labels = reference_set(settings.metric.reference, model, a.n_images)
    sigmas = sigma_grid(a.sigma_min, a.sigma_max, a.n_sigmas)
    print(f"{len(images)} reference images x {len(sigmas)} noise levels, untuned and tuned")
    rows = denoising_losses(model, schedule, images, labels, sigmas, extractor,
                            settings.execution.batch_size, device, a.seed_start)
    for r in rows:
        print(f"sigma {r.sigma:9.4g}  pixel ratio {r.pixel_ratio:7.4f}  "
              f"feature ratio {r.feature_ratio:7.4f}")
    tag = schedule_tag(settings, schedule)
    folder = instrument_folder(settings, study, tag)
    csv_path = write_loss_csv(rows, folder / LOSS_CSV)
    png = save_loss(rows, folder, figure_title("denoising loss tuned / untuned", tag, sampler,
                                               len(images), "reference images"))
    print(f"{csv_path}\n{png}")
    return {"rows": rows, "csv": csv_path, "png": png}
