"""Start or join the Ray cluster behind `--engine ray` (`relic datagen build`, `relic bench run`).

    with ray_session(None) as s:        # a private local Ray with this machine's cores, shut down after
        s.startup_s, s.address, s.resources
    with ray_session("auto") as s:      # the cluster `ray start --head` started on this node
    with ray_session("10.0.0.5:6379"):  # a cluster's head (GCS address); only disconnected after

A local Ray is kept small: ``num_cpus`` = the machine's cores (``os.cpu_count()``), a 192 MiB object
store (the engines move file paths and manifest rows, not frames, except benchmark rollouts), no
dashboard. When Ray is already initialised in this process (a caller started it, e.g. to time the
start-up separately), the session uses it and leaves it running.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Optional

LOCAL_OBJECT_STORE_BYTES = 192 * 1024 * 1024


@dataclass
class RaySession:
    address: str  # "local" for a private local Ray, else what was joined
    startup_s: float  # seconds ray.init took (0 when Ray was already up)
    started_here: bool  # this session started Ray (and shuts it down at exit)
    resources: dict = field(default_factory=dict)  # the cluster's total resources (CPU, GPU, memory, ...)


def import_ray():
    """The ray module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError as e:
        raise RuntimeError("--engine ray needs Ray: install this project's pinned dependencies "
                           "(bash .ci/bootstrap.sh, or pip install -e .) on every node") from e
    return ray


def start(address: Optional[str] = None, num_cpus: Optional[int] = None) -> RaySession:
    """Initialise Ray in this process (see module doc); :func:`stop` undoes it."""
    import logging

    ray = import_ray()
    if ray.is_initialized():
        return RaySession(address="existing", startup_s=0.0, started_here=False,
                          resources=dict(ray.cluster_resources()))
    t0 = time.perf_counter()
    common = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True)
    if address in (None, "", "local"):
        ray.init(address="local", num_cpus=int(num_cpus or os.cpu_count() or 1),
                 object_store_memory=LOCAL_OBJECT_STORE_BYTES, **common)
        where = "local"
    else:
        try:
            ray.init(address=address, **{k: v for k, v in common.items() if k != "include_dashboard"})
        except ConnectionError as e:
            hint = ("" if os.environ.get("RAY_AUTH_MODE") else
                    "; if the cluster uses token authentication (the default of `ray start --head` in Ray 2.60), "
                    "set RAY_AUTH_MODE=token and give this node the head's ~/.ray/auth_token (or RAY_AUTH_TOKEN)")
            raise RuntimeError(f"--ray-address {address}: no Ray cluster answers there ({e}){hint}; start one with "
                               "`ray start --head` (see datagen/README.md, 'Building on a Ray cluster')") from e
        where = address
    return RaySession(address=where, startup_s=time.perf_counter() - t0, started_here=True,
                      resources=dict(ray.cluster_resources()))


def stop(session: RaySession) -> None:
    """Shut down a local Ray this session started; disconnect from a joined cluster."""
    if session.started_here:
        import_ray().shutdown()


@contextmanager
def ray_session(address: Optional[str] = None, num_cpus: Optional[int] = None):
    s = start(address, num_cpus)
    try:
        yield s
    finally:
        stop(s)


def is_actor_death(e: BaseException) -> bool:
    """True for Ray's 'the actor (or its node) died / is restarting' errors, as opposed to an
    exception raised by the actor's own code."""
    ray = import_ray()
    return isinstance(e, ray.exceptions.RayActorError)
