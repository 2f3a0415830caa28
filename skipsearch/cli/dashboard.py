"""``skipsearch dashboard``: optuna-dashboard on the study storage, on loopback by default."""

from __future__ import annotations

from omegaconf import DictConfig

from ..config import validate
from ..export import safe_url
from ..search.study import make_storage


def run_dashboard(cfg: DictConfig) -> None:
    """Serve optuna-dashboard for ``storage.url`` at ``dashboard.host:dashboard.port``."""
    validate(cfg, "dashboard")
    host, port = str(cfg.dashboard.host), int(cfg.dashboard.port)
    import optuna_dashboard

    url = str(cfg.storage.url)
    print(f"optuna-dashboard: http://{host}:{port}/dashboard  (studies in {safe_url(url)}; "
          "Ctrl+C stops it)", flush=True)
    optuna_dashboard.run_server(make_storage(cfg.storage), host=host, port=port)
