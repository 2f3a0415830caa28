"""The hand-made sweeps of ``tests/cli/test_studies.py`` (one SQLite file, no images)."""

from tests.cli.test_studies import reversal, store  # noqa: F401 (fixtures)
