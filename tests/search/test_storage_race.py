"""Workers that create one fresh SQLite study database at the same moment all get a storage."""

from __future__ import annotations

import threading

from omegaconf import OmegaConf

from skipsearch.search.study import make_storage


def test_workers_creating_a_fresh_database_at_once_all_succeed(tmp_path):
    cfg = {"heartbeat_interval": 10, "grace_period": 30, "max_retry": 1}
    failures = []
    for round_ in range(20):
        url = f"sqlite:///{tmp_path / str(round_) / 'studies.db'}"
        barrier = threading.Barrier(3)

        def worker(url=url, barrier=barrier):
            barrier.wait()
            try:
                make_storage(OmegaConf.create({"url": url, **cfg}))
            except Exception as err:  # the test reports every failure, whatever its type
                failures.append(f"{type(err).__name__}: {str(err).splitlines()[0]}")

        threads = [threading.Thread(target=worker) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []
