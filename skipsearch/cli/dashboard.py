"""``skipsearch dashboard``: optuna-dashboard on the study storage, on loopback by default."""

from __future__ import annotations

from omegaconf import DictConfig

from ..config import Settings, build
from ..errors import ConfigError
from ..search.record import GROUP_ATTR
from ..search.study import make_storage
from ..urls import safe_url


def run_dashboard(cfg: DictConfig, settings: Settings | None = None) -> None:
    """Serve optuna-dashboard for ``storage.url`` at ``dashboard.host:dashboard.port``.

    The port is checked free (in ``build``) before anything is printed.
    """
    settings = settings or build(cfg, "dashboard")
    host, port = settings.options["host"], settings.options["port"]
    import optuna_dashboard

    url = settings.storage.url
    storage = make_storage(settings.storage)
    for name, cells in sweeps_in(storage).items():
        print(f"sweep {name}: {len(cells)} cell studies ({', '.join(cells)})", flush=True)
    print(f"optuna-dashboard: http://{host}:{port}/dashboard  (studies in {safe_url(url)}; "
          "Ctrl+C stops it)", flush=True)
    try:
        optuna_dashboard.run_server(storage, host=host, port=port)
    except OSError as err:  # taken between the check in build() and now
        raise ConfigError("dashboard.port", port, f"cannot listen on {host}:{port} "
                          f"({err.strerror}); give a free port") from None


def sweeps_in(storage) -> dict[str, list[str]]:
    """Sweep name -> the names of its cell studies (each a study on the dashboard)."""
    out: dict[str, list[str]] = {}
    for study in storage.get_all_studies():
        group = study.user_attrs.get(GROUP_ATTR)
        if group is not None:
            out.setdefault(group, []).append(study.study_name.removeprefix(f"{group}/"))
    return {k: sorted(v) for k, v in sorted(out.items())}
