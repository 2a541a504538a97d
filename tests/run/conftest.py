"""The engines' tests share one local Ray cluster: started by the first test that asks for it, stopped at the
end of the session (each start costs seconds of the suite's time)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    yield ray
    ray.shutdown()
