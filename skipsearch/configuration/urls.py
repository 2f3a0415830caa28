"""Storage URLs as they may be shown: any password replaced (torch- and Optuna-free)."""

from __future__ import annotations


def safe_url(url: str) -> str:
    """A storage URL with any password replaced by ***."""
    from sqlalchemy.engine import make_url

    if url.startswith("journal:///"):
        return url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("://", 1)[0] + "://..."
