"""Validation of the composed Hydra config: every bad value becomes a one-line ConfigError."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from .compile_modes import COMPILE_MODES
from .errors import ConfigError, check
from .models.kinds import MODEL_KINDS, TEXT_TO_IMAGE_KINDS
from .paths import REPO_DIR
from .precision import NETWORK_DTYPES, SAMPLER_DTYPES
from .preflight import check_port_free, check_study_file, check_writable, unwritable_reason
from .samplers.discretization import positive_levels
from .samplers.names import SAMPLER_NAMES, SAMPLER_OPTIONS, WINDOW_SAMPLERS
from .samplers.spec import SamplerSpec
from .schedule import (
    PARAMETERIZATIONS,
    PROFILES,
    RHO_RANGE,
    SkipSchedule,
    coefficient_problem,
    param_names,
)
from .search.names import OPTUNA_SAMPLERS, PRUNERS, stage_counts
from .tracking import LOGGER_KINDS, WANDB_MODES

if TYPE_CHECKING:  # torch-heavy: imported where a builder needs it
    from .search.results import Protocol

FEATURES = ("digits", "inception")
DISCRETIZATIONS = ("edm", "list")
OBJECTIVES = (["fid"], ["fid", "nfe"])
SINGLE_OBJECTIVE_SAMPLERS = ("cmaes",)


def get(cfg: DictConfig, key: str) -> Any:
    """The value at dotted ``key``; ConfigError if it is missing."""
    value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
    check(value is not None, key, value, "this key is required; set it in conf/ or as an override")
    return value


def get_int(cfg: DictConfig, key: str, minimum: int) -> int:
    """An integer at ``key`` that is at least ``minimum``."""
    value = get(cfg, key)
    check(isinstance(value, int) and not isinstance(value, bool), key, value,
          f"must be an integer >= {minimum}")
    check(value >= minimum, key, value, f"must be >= {minimum}")
    return value


def get_float(cfg: DictConfig, key: str, low: float, high: float = float("inf")) -> float:
    """A number at ``key`` in (low, high]."""
    value = get(cfg, key)
    check(isinstance(value, (int, float)) and not isinstance(value, bool), key, value,
          "must be a number")
    check(low < value <= high, key, value, f"must lie in ({low:g}, {high:g}]")
    return float(value)


def get_choice(cfg: DictConfig, key: str, choices: tuple[str, ...]) -> str:
    """A string at ``key`` out of ``choices``."""
    value = get(cfg, key)
    check(value in choices, key, value, f"choose one of: {', '.join(choices)}")
    return str(value)


def check_device_name(value: str) -> str:
    """``device`` must be auto, cpu, cuda or cuda:N (checked without torch)."""
    check(value in ("auto", "cpu") or value == "cuda" or (
        value.startswith("cuda:") and value[5:].isdigit()), "device", value,
        "choose auto, cpu, cuda or cuda:N")
    return value


def resolve_device(value: str) -> str:
    """``auto`` picks cuda when available; an unavailable cuda device is a ConfigError."""
    check_device_name(value)
    if value == "cpu":
        return value
    import torch

    if value == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    check(torch.cuda.is_available(), "device", value,
          "no CUDA device is visible; use device=cpu or device=auto")
    return value


# What of a schedule file each command reads (export.REQUIRED_KEYS).
SCHEDULE_SECTIONS = {"sample": ("model", "sampler", "score"), "inspect": ("model",),
                     "windows": ("model", "sampler"), "analyze": ("model", "sampler")}
# The folders each command writes, besides out_dir (its logs and caches).
WRITES = {"sweep": ("export_dir",), "export": ("export_dir",), "report": ("report.dir",),
          "sample": ("sample.dir",)}


def validate_output(cfg: DictConfig, command: str) -> None:
    """Every folder ``command`` writes must be writable; checked before anything is written."""
    out_dir = Path(get(cfg, "out_dir"))
    reason = unwritable_reason(out_dir)
    check(reason is None, "out_dir", str(out_dir),
          f"cannot write there ({reason}); give a writable folder, e.g. out_dir=outputs")
    for key in WRITES.get(command, ()):
        check_writable(key, Path(str(get(cfg, key))))
    if command == "sweep" and cfg.logger.get("kind") == "wandb" and cfg.logger.get("dir"):
        check_writable("logger.dir", Path(str(cfg.logger.dir)))


def validate_sampler(cfg: DictConfig) -> None:
    """Sampler name, steps, discretization and the sampler's own options."""
    name = get_choice(cfg, "sampler.name", SAMPLER_NAMES)
    get_int(cfg, "sampler.steps", 1)
    sigma_min = get_float(cfg, "sampler.sigma_min", 0.0)
    get_float(cfg, "sampler.sigma_max", sigma_min)
    get_float(cfg, "sampler.rho", 0.0)
    for option in SAMPLER_OPTIONS[name]:
        value = get(cfg, f"sampler.{option}")
        check(isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0,
              f"sampler.{option}", value, "must be a number >= 0")
    if name == "unipc":
        check(cfg.sampler.order in (2, 3), "sampler.order", cfg.sampler.order,
              "UniPC is implemented for order 2 or 3: sampler.order=2")
    if name == "edm_stochastic":
        check(cfg.sampler.S_min <= cfg.sampler.S_max, "sampler.S_min", cfg.sampler.S_min,
              f"must not exceed sampler.S_max={cfg.sampler.S_max}")
    if get_choice(cfg, "sampler.discretization", DISCRETIZATIONS) == "list":
        sigmas = OmegaConf.select(cfg, "sampler.sigmas")
        try:
            positive_levels(list(sigmas or []))
        except (ValueError, TypeError) as err:
            raise ConfigError("sampler.sigmas", sigmas and list(sigmas),
                              f"{err}; give e.g. sampler.sigmas=[80,10,1,0.1,0.002]") from None


def validate_metric(cfg: DictConfig) -> None:
    """Feature network, its weights, and the reference set."""
    feature = get_choice(cfg, "metric.feature", FEATURES)
    if feature == "inception":
        from .metrics.inception import INCEPTION_FILE, INCEPTION_URL

        key = "metric.inception_weights"
        weights = OmegaConf.select(cfg, key, throw_on_missing=False)
        check(weights not in (None, "???") and Path(weights).is_file(), key, weights,
              f"InceptionV3 needs {INCEPTION_FILE}, published at {INCEPTION_URL}; "
              "download it and give its path")
    if feature == "digits" and OmegaConf.select(cfg, "metric.weights") is not None:
        check(Path(cfg.metric.weights).is_file(), "metric.weights", cfg.metric.weights,
              "no such file; give the feature network's weights, or null for the bundled one")
        from .weights import check_safetensors

        check_safetensors(Path(cfg.metric.weights), "metric.weights")
    reference = str(get(cfg, "metric.reference"))
    check(reference == "digits" or Path(reference).exists(), "metric.reference", reference,
          "give digits, a folder or zip of images, an npz of uint8 images, or an npz of "
          "Inception mu/sigma (e.g. EDM's imagenet-64x64.npz)")
    if Path(reference).is_file():
        check_reference_file(Path(reference))


def check_reference_file(path: Path) -> None:
    """A reference file must be a zip of images or an npz of images or of mu and sigma."""
    import zipfile

    import numpy as np

    suffix = path.suffix.lower()
    check(suffix in (".zip", ".npz"), "metric.reference", str(path),
          "a reference file must be a .zip of images or an .npz (uint8 images, or mu and sigma)")
    check(zipfile.is_zipfile(path), "metric.reference", str(path),
          f"not a readable {suffix} file (it is not in zip format)")
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                keys = set(data.files)
        except (OSError, ValueError) as err:
            raise ConfigError("metric.reference", str(path), f"unreadable npz ({err})") from None
        check({"mu", "sigma"} <= keys or bool(keys & {"images", "arr_0"}), "metric.reference",
              str(path), f"holds {sorted(keys)}; an npz reference needs 'images' (or 'arr_0') "
              "uint8 images, or 'mu' and 'sigma'")


def validate_text_to_image(cfg: DictConfig, command: str) -> None:
    """Prompts for sampling; sweeps and scores need the InceptionV3 metric."""
    rgb_metric = OmegaConf.select(cfg, "metric.feature") == "inception"
    check(command != "sweep" or rgb_metric, "metric.feature",
          OmegaConf.select(cfg, "metric.feature"),
          "text-to-image sweeps score RGB images: use metric=inception_fid")
    if command in ("sample", "sweep"):
        prompts = OmegaConf.select(cfg, "model.prompts")
        check(prompts is not None and Path(prompts).is_file(), "model.prompts", prompts,
              "give a text file with one prompt a line: model.prompts=FILE")
    if command == "sample":
        check(cfg.sample.score is False or rgb_metric, "sample.score", cfg.sample.score,
              "scoring RGB images needs metric=inception_fid; or set sample.score=false")
    scale = get_float(cfg, "model.guidance_scale", 0.0)
    check(scale >= 1.0, "model.guidance_scale", scale, "must be >= 1 (1: no guidance)")


def validate_latent(cfg: DictConfig, command: str) -> None:
    """Latent models need their autoencoder folder to sample (not to inspect)."""
    folder = OmegaConf.select(cfg, "model.autoencoder")
    latent = cfg.model.kind == "ldm" or OmegaConf.select(cfg, "model.schedule") == "discrete"
    check(folder is None or Path(folder).is_dir(), "model.autoencoder", folder,
          "no such folder; give a local diffusers AutoencoderKL or VQModel folder")
    check(folder is not None or not latent or command == "inspect", "model.autoencoder", folder,
          "latent models decode their samples: give the autoencoder folder, "
          "model.autoencoder=PATH")


def validate_model(cfg: DictConfig, command: str) -> None:
    """The model kind and the files and settings that kind needs."""
    kind = get_choice(cfg, "model.kind", MODEL_KINDS)
    if kind == "digits":
        weights = OmegaConf.select(cfg, "model.weights")
        check(weights is None or Path(weights).is_file(), "model.weights", weights,
              "no such file; give the path of the model's weights, or null for the bundled one")
        if weights is not None:
            from .weights import check_safetensors

            check_safetensors(Path(weights), "model.weights")
        return
    path = OmegaConf.select(cfg, "model.path", throw_on_missing=False)
    check(path is not None and path != "???", "model.path", path,
          f"model.kind={kind} needs the local path of its checkpoint: model.path=PATH")
    check(Path(path).exists(), "model.path", path, "no such file or folder; give a local path")
    if kind in TEXT_TO_IMAGE_KINDS:
        validate_text_to_image(cfg, command)
    if kind in ("adm", "ldm", "uvit"):
        from .models.settings import check_model_settings

        check_model_settings(cfg)
    if kind in ("ldm", "uvit"):
        validate_latent(cfg, command)
    if kind in ("edm", "edm2"):
        check(OmegaConf.select(cfg, "model.trust_pickle") is True, "model.trust_pickle",
              OmegaConf.select(cfg, "model.trust_pickle"),
              "EDM checkpoints are pickles and unpickling runs code; set "
              "model.trust_pickle=true only for a file you trust")
        check(Path(path).is_file(), "model.path", path,
              f"a folder; give the snapshot file itself (model.kind={kind} reads one .pkl)")
        vae = OmegaConf.select(cfg, "model.vae")
        check(vae is None or Path(vae).is_dir(), "model.vae", vae,
              "no such folder; give the local diffusers AutoencoderKL folder, or null")
        with open(path, "rb") as f:
            magic = f.read(2)
        check(len(magic) == 2 and magic[0] == 0x80 and magic[1] >= 2, "model.path", path,
              f"not a pickle; give an NVlabs {kind.upper()} network snapshot (.pkl)")


def validate_space(cfg: DictConfig) -> None:
    """Search space: bounds in order, positive step counts."""
    steps = get(cfg, "search.steps")
    check(OmegaConf.is_list(steps) and len(steps) > 0, "search.steps", steps,
          "give a non-empty list of step counts, e.g. search.steps=[4,6,9]")
    for s in steps:
        check(isinstance(s, int) and not isinstance(s, bool) and s >= 1, "search.steps",
              list(steps), "every step count must be an integer >= 1")
    space = get(cfg, "skip.space")
    if cfg.skip.parameterization == "linear" and "default" not in space:
        for name in ("rho_top", "rho_bottom"):
            check(name in space, f"skip.space.{name}", None,
                  f"missing; give +skip.space.{name}={{low:0.5,high:1.0}}")
    for name in space:
        key = f"skip.space.{name}"
        low = get_float(cfg, f"{key}.low", *RHO_RANGE)
        high = get_float(cfg, f"{key}.high", *RHO_RANGE)
        check(low <= high, key, {"low": low, "high": high},
              f"low must not exceed high; swap them ({key}.low={high} {key}.high={low})")


def validate_search_extras(cfg: DictConfig) -> None:
    """Objectives, pruner and stages, confirmation, and the searched sampler settings."""
    objectives = OmegaConf.select(cfg, "search.objectives")
    objectives = list(objectives) if OmegaConf.is_list(objectives) else objectives
    check(objectives in OBJECTIVES, "search.objectives", objectives,
          "give [fid] (one objective) or [fid,nfe] (a Pareto front of FID against NFE)")
    multi = len(objectives) > 1
    check(not multi or cfg.search.sampler not in SINGLE_OBJECTIVE_SAMPLERS, "search.sampler",
          cfg.search.sampler, "optimises one objective; use search=nsga2 or search=tpe "
          "with search.objectives=[fid,nfe]")
    kind = get_choice(cfg, "pruner.kind", PRUNERS)
    stages = get(cfg, "pruner.stages")
    check(OmegaConf.is_list(stages) and all(
        isinstance(f, (int, float)) and not isinstance(f, bool) and 0 < f < 1 for f in stages),
        "pruner.stages", stages, "give fractions of metric.n_samples in (0, 1), e.g. [0.25,0.5]")
    stage_counts(list(stages), int(cfg.metric.n_samples))
    check(kind == "none" or not multi, "pruner.kind", kind,
          "Optuna prunes single-objective studies only; use pruner=none with "
          "search.objectives=[fid,nfe]")
    check(kind == "none" or len(stages) > 0, "pruner.stages", list(stages),
          f"pruner={kind} needs at least one stage, e.g. pruner.stages=[0.25,0.5]")
    if kind == "median":
        get_int(cfg, "pruner.n_startup_trials", 0)
    if kind == "successive_halving":
        get_int(cfg, "pruner.reduction_factor", 2)
        get_int(cfg, "pruner.min_early_stopping_rate", 0)
    get_int(cfg, "search.confirm_top_k", 0)
    if OmegaConf.select(cfg, "search.confirm_blocks") is not None:
        get_int(cfg, "search.confirm_blocks", 2)
    limit = OmegaConf.select(cfg, "search.limit_steps")
    if limit is not None:
        values = list(limit) if OmegaConf.is_list(limit) else limit
        check(isinstance(values, list) and all(isinstance(v, int) and not isinstance(v, bool)
                                               and v >= 1 for v in values),
              "search.limit_steps", values, "give a list of step counts >= 1, e.g. [10, 18]")
    if OmegaConf.select(cfg, "search.expand_bounds"):
        get_float(cfg, "search.expand_step", 0.0, 10.0)
        low = get_float(cfg, "search.bound_limit.low", 0.0)
        get_float(cfg, "search.bound_limit.high", low)
    samplers = OmegaConf.select(cfg, "search.samplers")
    if samplers is not None:
        names = list(samplers) if OmegaConf.is_list(samplers) else samplers
        check(isinstance(names, list) and len(names) > 0 and len(set(names)) == len(names)
              and all(n in SAMPLER_NAMES for n in names), "search.samplers", names,
              f"give a list of distinct samplers out of: {', '.join(SAMPLER_NAMES)}; or null")
    if OmegaConf.select(cfg, "search.disc_rho") is not None:
        check(cfg.sampler.get("discretization", "edm") == "edm", "search.disc_rho",
              OmegaConf.to_container(cfg.search.disc_rho),
              "searches the rho of EDM's discretization; set sampler.discretization=edm "
              "or search.disc_rho=null")
        low = get_float(cfg, "search.disc_rho.low", 0.0)
        high = get_float(cfg, "search.disc_rho.high", 0.0)
        check(low <= float(cfg.sampler.rho) <= high, "search.disc_rho",
              {"low": low, "high": high}, f"must contain sampler.rho={cfg.sampler.rho} "
              "(the baselines use it)")


def validate_final_score(cfg: DictConfig) -> None:
    """The final (confirmation) score: sample count and a seed range apart from the search's."""
    n = get_int(cfg, "metric.final_samples", 2)
    start = OmegaConf.select(cfg, "metric.final_seed_start")
    if start is not None:
        start = get_int(cfg, "metric.final_seed_start", 0)
        search_start = int(cfg.metric.seed_start)
        search_stop = search_start + int(cfg.metric.n_samples)
        check(start >= search_stop or start + n <= search_start, "metric.final_seed_start",
              start, f"the final seeds must not overlap the search seeds {search_start}.."
              f"{search_stop - 1}; use null (right after them) or a start >= {search_stop}")
    infinity = bool(cfg.metric.fid_infinity)
    check(not infinity or n >= 20, "metric.fid_infinity", infinity,
          f"extrapolates from FID at 15 sample counts; metric.final_samples={n} is too few "
          "(use >= 20, 50000 as published)")


def validate_storage_reachable(cfg: DictConfig) -> None:
    """A database server in ``storage.url`` must answer; the password is never printed."""
    url = str(get(cfg, "storage.url"))
    if url.startswith(("sqlite:///", "journal:///")):
        return
    import sqlalchemy

    from .urls import safe_url

    try:
        engine = sqlalchemy.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as err:  # a bad URL, a missing driver, a server that does not answer
        reason = " ".join(str(getattr(err, "orig", None) or err).split())[:200]
        password = sqlalchemy.engine.make_url(url).password if "://" in url else None
        if password:
            reason = reason.replace(str(password), "***")
        raise ConfigError("storage.url", safe_url(url),
                          f"cannot open the study database ({type(err).__name__}: {reason}); "
                          "check the URL, the driver, the server and the credentials") from None


def validate_study_file(cfg: DictConfig, command: str) -> None:
    """A SQLite or Journal study file must be an Optuna storage; must exist unless sweeping."""
    check_study_file(str(get(cfg, "storage.url")), must_exist=command != "sweep")


def validate_where(cfg: DictConfig) -> None:
    """Noise window and profile of the skip group, fixed and searched."""
    window = OmegaConf.select(cfg, "skip.window")
    if window is not None:
        ok = OmegaConf.is_list(window) and len(window) == 2 and 0 <= window[0] <= window[1]
        check(ok, "skip.window", window, "give [sigma_lo, sigma_hi] with 0 <= lo <= hi, or null")
    get_choice(cfg, "skip.profile", PROFILES)
    profiles = OmegaConf.select(cfg, "skip.profiles") or []
    for p in profiles:
        check(p in PROFILES, "skip.profiles", list(profiles),
              f"every profile must be one of: {', '.join(PROFILES)}")
    if OmegaConf.select(cfg, "skip.window_space") is not None:
        low = get_float(cfg, "skip.window_space.low", 0.0)
        high = get_float(cfg, "skip.window_space.high", 0.0)
        check(low <= high, "skip.window_space", {"low": low, "high": high},
              "low must not exceed high")


def validate_speed(cfg: DictConfig, device: str) -> None:
    """The precision policy, torch.compile and CUDA-graph settings."""
    get_choice(cfg, "precision.network", tuple(NETWORK_DTYPES))
    get_choice(cfg, "precision.sampler", tuple(SAMPLER_DTYPES))
    get_choice(cfg, "precision.features", tuple(NETWORK_DTYPES))
    layout = get(cfg, "precision.channels_last")
    check(isinstance(layout, bool) or layout == "auto", "precision.channels_last", layout,
          "must be true, false or auto")
    mode = cfg.get("compile")
    check(mode is None or mode in COMPILE_MODES, "compile", mode,
          f"choose null (eager) or one of: {', '.join(COMPILE_MODES)}")
    graph = get(cfg, "cuda_graph")
    check(isinstance(graph, bool), "cuda_graph", graph, "must be true or false")
    check(not graph or device != "cpu", "cuda_graph", graph,
          f"CUDA graphs need a CUDA device, and device={device}; set cuda_graph=false")


def validate_device(cfg: DictConfig, device: str) -> None:
    """A CUDA device (asked for, or needed by ``cuda_graph``) must be visible; loads torch."""
    if device == "cpu" or (device == "auto" and not cfg.get("cuda_graph")):
        return  # nothing to ask torch: auto falls back to the CPU
    resolved = resolve_device(device)
    check(not cfg.cuda_graph or resolved.startswith("cuda"), "cuda_graph", cfg.cuda_graph,
          f"CUDA graphs need a CUDA device, and device={resolved}; set cuda_graph=false")


def validate(cfg: DictConfig, command: str) -> None:
    """Check every key ``command`` reads; raise the first problem as a ConfigError."""
    validate_output(cfg, command)
    if command in ("sweep", "export", "report", "dashboard"):
        validate_storage_reachable(cfg)
        validate_study_file(cfg, command)
    if command == "dashboard":
        port = get_int(cfg, "dashboard.port", 1)
        check(port <= 65535, "dashboard.port", port, "must be a TCP port, 1 .. 65535")
        check_port_free(str(get(cfg, "dashboard.host")), port)
    if command == "report":
        get_int(cfg, "report.grid", 0)
    if command == "sample":
        if cfg.sample.get("n") is not None:
            get_int(cfg, "sample.n", 1)
        get_int(cfg, "sample.grid", 0)
    if command in ("export", "dashboard") or (command == "report" and cfg.report.grid == 0):
        return
    device = check_device_name(str(get(cfg, "device")))
    validate_speed(cfg, device)
    validate_model(cfg, command)
    validate_sampler(cfg)
    get_choice(cfg, "skip.parameterization", PARAMETERIZATIONS)
    validate_where(cfg)
    validate_metric(cfg)
    get_int(cfg, "metric.n_samples", 2)
    get_int(cfg, "metric.seed_start", 0)
    infinity = get(cfg, "metric.fid_infinity")
    check(isinstance(infinity, bool), "metric.fid_infinity", infinity, "must be true or false")
    get_int(cfg, "batch_size", 1)
    get_choice(cfg, "logger.kind", LOGGER_KINDS)
    if cfg.logger.kind == "wandb":
        get_choice(cfg, "logger.mode", WANDB_MODES)
    if command == "sweep":
        sampler = get_choice(cfg, "search.sampler", OPTUNA_SAMPLERS)
        if sampler == "grid":
            get_int(cfg, "search.grid_points", 2)
        if sampler == "nsga2":
            get_int(cfg, "search.population_size", 2)
        get_int(cfg, "search.n_trials", 1)
        get_int(cfg, "search.worker", 0)
        validate_space(cfg)
        validate_search_extras(cfg)
        validate_final_score(cfg)
    if command == "windows":
        validate_windows(cfg)
    if command == "analyze":
        validate_analyze(cfg)
    if command in SCHEDULE_SECTIONS:
        validate_schedule_params(cfg)
        if cfg.get("schedule") is not None:
            from .export import load_schedule

            load_schedule(cfg.schedule, sections=SCHEDULE_SECTIONS[command])
    validate_device(cfg, device)  # last: the one value check of the run that needs torch


def validate_schedule_params(cfg: DictConfig) -> None:
    """``skip.params`` (the schedule without a file) hold usable coefficients."""
    params = OmegaConf.select(cfg, "skip.params") or {}
    low, high = RHO_RANGE
    for name in params:
        check(coefficient_problem([params[name]]) is None, f"skip.params.{name}", params[name],
              f"every coefficient must be a finite number in ({low:g}, {high:g}] "
              "(1: the skip unchanged)")


def validate_train_toy(cfg: DictConfig) -> None:
    """The step counts of ``train-toy`` and the folders it writes."""
    get_int(cfg, "diffusion.steps", 1)
    get_int(cfg, "classifier.epochs", 1)
    get_int(cfg, "grid.steps", 1)
    if cfg.get("assets_dir"):
        check_writable("assets_dir", Path(str(cfg.assets_dir)))
    check_writable("docs_dir", Path(str(get(cfg, "docs_dir"))))


def validate_windows(cfg: DictConfig) -> None:
    """Window width and count, and a sampler that evaluates the network on its levels."""
    width = get_int(cfg, "windows.width", 1)
    if OmegaConf.select(cfg, "windows.count") is not None:
        count = get_int(cfg, "windows.count", 1)
        levels = sampler_spec(cfg).steps
        if cfg.get("schedule") is not None:  # the schedule file's sampler is the one studied
            from .export import load_schedule

            levels = int(load_schedule(cfg.schedule).sampler["steps"])
        check(count * width <= levels, "windows.count", count,
              f"{count} windows of {width} levels need {count * width}, the sampler has "
              f"{levels}; lower windows.count or windows.width, or take more sampler steps")
    name = str(cfg.sampler.name)
    if name == "edm_stochastic":
        check(float(cfg.sampler.S_churn) == 0, "sampler.S_churn", cfg.sampler.S_churn,
              "churn evaluates the network between the levels, so windows of levels do not "
              "hold; set sampler.S_churn=0 or take sampler=heun")
    else:
        check(name in WINDOW_SAMPLERS, "sampler.name", name,
              f"choose one of: {', '.join(WINDOW_SAMPLERS)}")


def validate_analyze(cfg: DictConfig) -> None:
    """Image count, noise grid and noise seeds of the loss analysis."""
    get_int(cfg, "analyze.n_images", 1)
    low = get_float(cfg, "analyze.sigma_min", 0.0)
    get_float(cfg, "analyze.sigma_max", low)
    get_int(cfg, "analyze.n_sigmas", 1)
    get_int(cfg, "analyze.seed_start", 0)
    kind = str(cfg.model.kind)
    check(kind not in TEXT_TO_IMAGE_KINDS, "model.kind", kind,
          "the loss analysis denoises reference images in pixel space; a latent "
          "text-to-image model has no such images; take a pixel-space model")


def study_name(cfg: DictConfig) -> str:
    """``search.study_name`` or ``<model>-<sampler>-<parameterization>``."""
    name = cfg.search.get("study_name")
    if name:
        return str(name)
    return f"{cfg.model.name}-{cfg.sampler.name}-{cfg.skip.parameterization}"


def sampler_spec(cfg: DictConfig, steps: int | None = None) -> SamplerSpec:
    """The sampler of the ``sampler`` config group, with ``steps`` if given.

    With ``discretization: list`` the step count is the number of listed sigmas.
    """
    s = cfg.sampler
    options = {k: float(s[k]) for k in SAMPLER_OPTIONS[str(s.name)]}
    sigma_list = None
    if s.get("discretization", "edm") == "list":
        sigma_list = tuple(float(v) for v in s.sigmas if float(v) > 0)
        steps = len(sigma_list)
    return SamplerSpec(str(s.name), int(steps if steps is not None else s.steps),
                       float(s.sigma_min), float(s.sigma_max), float(s.rho), options, sigma_list)


def schedule_from_config(cfg: DictConfig, levels: list[int]) -> SkipSchedule:
    """The schedule of ``skip.params`` (``default`` fills unnamed ones), window and profile."""
    param = str(cfg.skip.parameterization)
    given = cfg.skip.get("params") or {}
    params = {name: float(given.get(name, given.get("default", 1.0)))
              for name in param_names(param, levels)}
    window = cfg.skip.get("window")
    return SkipSchedule.from_params(
        param, params, levels, window=tuple(float(v) for v in window) if window else None,
        profile=str(cfg.skip.get("profile") or "constant"),
        profile_range=(float(cfg.sampler.sigma_min), float(cfg.sampler.sigma_max)))


def sampler_choices(cfg: DictConfig) -> dict[str, SamplerSpec]:
    """The samplers a sweep may pick (``search.samplers``, else the ``sampler`` group's).

    Another sampler takes its options from ``conf/sampler/<name>.yaml`` and the
    discretization of the selected ``sampler`` group, so the choice is only the solver.
    """
    base = sampler_spec(cfg)
    names = OmegaConf.select(cfg, "search.samplers") or [base.name]
    choices = {}
    for name in names:
        if name == base.name:
            choices[name] = base
            continue
        group = OmegaConf.load(REPO_DIR / "conf" / "sampler" / f"{name}.yaml")
        shared = {k: cfg.sampler[k] for k in ("steps", "sigma_min", "sigma_max", "rho",
                                              "discretization", "sigmas") if k in cfg.sampler}
        choices[name] = sampler_spec(OmegaConf.create({"sampler": {**group, **shared}}))
    return choices


def final_protocol(cfg: DictConfig) -> Protocol:
    """The final score: ``metric.final_samples`` images from ``metric.final_seed_start``."""
    from .search.results import Protocol
    from .seed_range import SeedRange

    n = get_int(cfg, "metric.final_samples", 1)
    if OmegaConf.select(cfg, "metric.final_seed_start") is None:  # right after the search's
        start = SeedRange(get_int(cfg, "metric.seed_start", 0),
                          get_int(cfg, "metric.n_samples", 1)).stop
    else:
        start = get_int(cfg, "metric.final_seed_start", 0)
    return Protocol(SeedRange(start, n), bool(cfg.metric.fid_infinity))
