"""The ``storage`` group: where the studies live, checked before any work (Optuna-free)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from ..keys import get, get_int
from ..preflight import check_study_file
from ..urls import safe_url

LOCAL_SCHEMES = ("sqlite:///", "journal:///")


@dataclass(frozen=True)
class StorageSettings:
    """A study storage URL and the heartbeat settings of an RDB storage."""

    url: str
    heartbeat_interval: int = 60
    grace_period: int = 180
    max_retry: int = 2

    def __repr__(self) -> str:
        """The URL without its password: settings get printed and logged."""
        return f"StorageSettings(url={safe_url(self.url)!r})"

    @classmethod
    def from_config(cls, cfg: DictConfig, must_exist: bool = True) -> StorageSettings:
        """The checked ``storage`` group: a server that answers, a file that is a storage.

        ``must_exist``: the study file must be there already (all but ``sweep``).
        """
        url = str(get(cfg, "storage.url"))
        settings = {key: get_int(cfg, f"storage.{key}", minimum)
                    for key, minimum in (("heartbeat_interval", 1), ("grace_period", 1),
                                         ("max_retry", 0))
                    if OmegaConf.select(cfg, f"storage.{key}") is not None}
        check_reachable(url)
        check_study_file(url, must_exist=must_exist)
        return cls(url, **settings)


def check_reachable(url: str) -> None:
    """A database server at ``url`` must answer; the password is never printed."""
    if url.startswith(LOCAL_SCHEMES):
        return
    import sqlalchemy

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
