"""The registered metrics and feature networks, by name (torch-free).

A metric is a feature network, a statistic and a reference. Adding one means an entry here
and its file under ``conf/metric/`` (and, for a new network or statistic, the module that the
entry names); the search, the records, exports and reports only ever see its name. Networks
load from local files only: nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NetworkDef:
    """A feature network: the config key of its file and what that file is."""

    name: str
    key: str  # the metric.* key of its weights file or folder
    channels: int  # image channels it scores
    file: str  # what to give, e.g. the published file's name and where it is published
    loader: str  # "module:function" taking (path, key); without a path, the bundled file
    bundled: bool = False  # null takes the file shipped with skipsearch
    folder: bool = False  # the weights are a folder (a saved transformers model)


@dataclass(frozen=True)
class StatisticDef:
    """A statistic: what it needs of the reference and the class that computes it."""

    name: str
    needs: str  # "sums" (mean and covariance), "features", or "none"
    cls: str  # "module:Class", built from the reference (or nothing, for "none")


@dataclass(frozen=True)
class MetricDef:
    """A registered metric: its network, its statistic and how it reads."""

    name: str
    network: str  # a NETWORKS key
    statistic: str  # frechet | kid | precision_recall | clip_score
    label: str  # how tables name it
    higher_is_better: bool
    about: str  # one line for the README and `sweep --info`


NETWORKS = {n.name: n for n in (
    NetworkDef("digits", "metric.weights", 1, "a digits classifier written by train-toy",
               "skipsearch.metrics.features:digits_feature_extractor", bundled=True),
    NetworkDef("digits_autoencoder", "metric.autoencoder_weights", 1,
               "a digits autoencoder written by train-toy",
               "skipsearch.metrics.digits_autoencoder:digits_autoencoder_features",
               bundled=True),
    NetworkDef("inception", "metric.inception_weights", 3,
               "weights-inception-2015-12-05-6726825d.pth, published at https://github.com/"
               "toshas/torch-fidelity/releases/download/v0.2.0/"
               "weights-inception-2015-12-05-6726825d.pth",
               "skipsearch.metrics.inception:inception_features"),
    NetworkDef("dinov2", "metric.dinov2_weights", 3,
               "dinov2_vitl14_pretrain.pth, published at https://dl.fbaipublicfiles.com/"
               "dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth",
               "skipsearch.metrics.dinov2:dinov2_features"),
    NetworkDef("clip", "metric.clip_weights", 3,
               "a local CLIP model folder, e.g. openai/clip-vit-large-patch14 saved with "
               "save_pretrained", "skipsearch.metrics.clip_score:clip_image_text",
               folder=True),
)}

STATISTICS = {s.name: s for s in (
    StatisticDef("frechet", "sums", "skipsearch.metrics.frechet:Frechet"),
    StatisticDef("kid", "features", "skipsearch.metrics.kid:KID"),
    StatisticDef("precision_recall", "features",
                 "skipsearch.metrics.precision_recall:PrecisionRecall"),
    StatisticDef("clip_score", "none", "skipsearch.metrics.clip_score:CLIPScore"),
)}

METRICS = {m.name: m for m in (
    MetricDef("digits_fid", "digits", "frechet", "digits FID", False,
              "Frechet distance of the bundled digits classifier's 64-d penultimate features"),
    MetricDef("digits_fd_ae", "digits_autoencoder", "frechet", "digits FD-AE", False,
              "Frechet distance of the bundled digits autoencoder's bottleneck features"),
    MetricDef("fid", "inception", "frechet", "FID", False,
              "Frechet distance of InceptionV3 2048-d pool features (Heusel et al. 2017)"),
    MetricDef("fd_dinov2", "dinov2", "frechet", "FD-DINOv2", False,
              "Frechet distance of DINOv2 ViT-L/14 1024-d features, as EDM2 computes it"),
    MetricDef("kid", "inception", "kid", "KID", False,
              "unbiased squared MMD of InceptionV3 features, cubic kernel (Binkowski 2018)"),
    MetricDef("precision_recall", "inception", "precision_recall", "P/R F1", True,
              "F1 of improved precision and recall, k = 3 (Kynkaanniemi et al. 2019)"),
    MetricDef("clip_score", "clip", "clip_score", "CLIP score", True,
              "100 x cosine of CLIP image and prompt embeddings (Hessel et al. 2021)"),
)}

#: what a statistic needs of the reference: summed features, the features, or nothing
REFERENCE_NEEDS = {s.name: s.needs for s in STATISTICS.values()}


def metric(name: str) -> MetricDef:
    """The registered metric ``name``; KeyError naming the registered ones."""
    if name not in METRICS:
        raise KeyError(f"{name!r} is not a registered metric; use one of {', '.join(METRICS)}")
    return METRICS[name]


def label(name: str) -> str:
    """How tables and figures name metric ``name``: its label, else the name itself."""
    return METRICS[name].label if name in METRICS else name


def network_of(name: str) -> NetworkDef:
    """The feature network of metric ``name``."""
    return NETWORKS[metric(name).network]


def direction(name: str) -> str:
    """Optuna's direction for metric ``name`` (or ``nfe``)."""
    if name == "nfe":
        return "minimize"
    return "maximize" if metric(name).higher_is_better else "minimize"
