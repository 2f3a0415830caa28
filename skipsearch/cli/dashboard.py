"""``skipsearch dashboard``: optuna-dashboard on the study storage, on loopback by default."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from ..configuration.build import Settings, build
from ..configuration.errors import ConfigError
from ..configuration.urls import safe_url
from ..search.group import group_studies
from ..search.record import GROUP_ATTR
from ..search.study import make_storage, open_sweep


def run_dashboard(cfg: DictConfig, settings: Settings | None = None) -> None:
    """Serve optuna-dashboard for ``storage.url`` at ``dashboard.host:dashboard.port``.

    The port is checked free (in ``build``) before anything is printed.
    """
    settings = settings or build(cfg, "dashboard")
    host, port = settings.options.host, settings.options.port
    import optuna_dashboard

    url = settings.storage.url
    storage = make_storage(settings.storage)
    named = OmegaConf.select(cfg, "search.study_name")  # --study NAME, or the key itself
    links = cell_links(storage, open_sweep(settings.storage, str(named), storage).study_name,
                       f"http://{host}:{port}") if named else {}
    for name, cells in sweeps_in(storage).items():
        print(f"sweep {name}: {len(cells)} cell studies ({', '.join(cells)})", flush=True)
    for cell, link in links.items():
        print(f"  {cell}: {link}", flush=True)
    print(f"optuna-dashboard: http://{host}:{port}/dashboard  (studies in {safe_url(url)}; "
          "Ctrl+C stops it)", flush=True)
    try:
        optuna_dashboard.run_server(storage, host=host, port=port)
    except OSError as err:  # taken between the check in build() and now
        raise ConfigError("dashboard.port", port, f"cannot listen on {host}:{port} "
                          f"({err.strerror}); give a free port") from None


def cell_links(storage, sweep: str, base: str) -> dict[str, str]:
    """Each cell study of ``sweep`` -> its page on the dashboard served at ``base``.

    A sweep of an older skipsearch is one study under the sweep's own name.
    """
    return {name: f"{base}/dashboard/studies/{storage.get_study_id_from_name(name)}"
            for name in group_studies(storage, sweep) or [sweep]}


def sweeps_in(storage) -> dict[str, list[str]]:
    """Sweep name -> the names of its cell studies (each a study on the dashboard)."""
    out: dict[str, list[str]] = {}
    for study in storage.get_all_studies():
        group = study.user_attrs.get(GROUP_ATTR)
        if group is not None:
            out.setdefault(group, []).append(study.study_name.removeprefix(f"{group}/"))
    return {k: sorted(v) for k, v in sorted(out.items())}
