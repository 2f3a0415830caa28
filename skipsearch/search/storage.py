"""The ``storage`` group: where the studies live, checked before any work (Optuna-free)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from ..configuration.errors import ConfigError
from ..configuration.keys import get, get_int
from ..configuration.preflight import check_study_file
from ..configuration.urls import safe_url

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
        check_lasting(url)
        storage = cls(url, **settings)
        if not url.startswith("journal:///"):  # a journal file has no heartbeats
            check_grace(storage.heartbeat_interval, storage.grace_period)
        check_reachable(url)
        check_study_file(url, must_exist=must_exist)
        return storage


def in_memory(url: str) -> bool:
    """Whether ``url`` names an SQLite database that lives only as long as its process."""
    if not url.startswith("sqlite:"):
        return False
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # not a URL at all: check_reachable says so
        return False
    database = parsed.database or ""
    return (database in ("", ":memory:") or database.startswith("file::memory:")
            or "mode=memory" in database or parsed.query.get("mode") == "memory")


def check_lasting(url: str) -> None:
    """A study must outlive the process: an in-memory storage is refused."""
    if in_memory(url):
        raise ConfigError("storage.url", url,  # SQLite URLs hold no password
                          "an in-memory database ends with this process, and a study must "
                          "outlive it (resume, other workers, export, report); give a file, "
                          "e.g. storage.url=sqlite:///outputs/studies.db")


def check_grace(heartbeat_interval: int, grace_period: int) -> None:
    """A live worker's trial must not look dead: the grace period spans two heartbeats."""
    if grace_period < 2 * heartbeat_interval:
        raise ConfigError("storage.grace_period", grace_period,
                          f"shorter than two heartbeats (storage.heartbeat_interval="
                          f"{heartbeat_interval}), so workers would fail each other's live "
                          f"trials; set storage.grace_period>={2 * heartbeat_interval} or "
                          "a shorter storage.heartbeat_interval")


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
