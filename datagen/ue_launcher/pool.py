"""Several UnrealCV instances on several ports, one per capture worker.

    with InstancePool("relic datagen serve --scene S.json --port {port}", n=2, base_port=9000) as pool:
        pool.endpoints            # ["127.0.0.1:9000", "127.0.0.1:9001"]
        pool.addresses            # [("127.0.0.1", 9000), ("127.0.0.1", 9001)]
        pool.restart(("127.0.0.1", 9001))   # -> True when that server answers again

Ports are consecutive from `base_port`, skipping ports that are busy when the pool is made.
Attach mode (`endpoints=[...]`) launches nothing and stops nothing.
"""
from __future__ import annotations

import logging
from typing import Optional, Sequence

from datagen.ue_launcher.instance import LaunchError, UEInstance, port_is_free

log = logging.getLogger(__name__)


def _parse_endpoint(ep) -> tuple[str, int]:
    if isinstance(ep, (tuple, list)) and len(ep) == 2:
        return str(ep[0]), int(ep[1])
    host, sep, port = str(ep).strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad endpoint {ep!r}: expected host:port")
    return host or "127.0.0.1", int(port)


class InstancePool:
    """Launch `n` instances of one command template on consecutive free ports from `base_port`,
    or attach to given `endpoints` ("host:port" strings or (host, port) pairs).

    Extra keyword arguments go to every :class:`UEInstance` (width, height, map_name, log_dir,
    startup_timeout, workdir, env, host).
    """

    def __init__(self, command: Optional[Sequence[str] | str] = None, n: int = 1, base_port: int = 9000,
                 endpoints: Sequence = (), **kwargs):
        self.instances: list[UEInstance] = []
        if endpoints:
            for ep in endpoints:
                host, port = _parse_endpoint(ep)
                kw = {k: v for k, v in kwargs.items() if k != "host"}
                self.instances.append(UEInstance(None, host=host, port=port, **kw))
            return
        if command is None:
            raise ValueError("give a launch command template, or endpoints to attach to")
        if int(n) < 1:
            raise ValueError(f"the pool needs at least 1 instance, got {n}")
        host = kwargs.get("host", "127.0.0.1")
        port = int(base_port)
        for _ in range(int(n)):
            while not port_is_free(port, host):
                port += 1
                if port > 65535:
                    raise LaunchError(f"no free port at or above {base_port}")
            self.instances.append(UEInstance(command, port=port, **kwargs))
            port += 1

    @property
    def endpoints(self) -> list[str]:
        """["host:port", ...] in instance order (the --endpoints syntax)."""
        return [i.endpoint for i in self.instances]

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """[(host, port), ...] in instance order (what datagen.capture.pipeline.build_corpus takes)."""
        return [i.address for i in self.instances]

    def instance(self, endpoint) -> UEInstance:
        """The instance serving `endpoint` ("host:port" or (host, port))."""
        host, port = _parse_endpoint(endpoint)
        for inst in self.instances:
            if inst.port == port and inst.host == host:
                return inst
        raise KeyError(f"no instance at {host}:{port}; the pool has {self.endpoints}")

    def restart(self, endpoint) -> bool:
        """Bring `endpoint`'s server back after a capture client lost it. True when it answers now
        (restarted, or it was fine after all); False when it cannot be brought back (then retire it).

        Meant to be called when no capture client is connected to that server, so it probes the
        protocol and also restarts a server whose process runs but does not answer (a hang).
        """
        inst = self.instance(endpoint)
        try:
            restarted = inst.ensure_alive(probe=True)
        except LaunchError as e:
            log.error("could not bring %s back: %s", inst.endpoint, e)
            return False
        if restarted:
            log.warning("restarted %s (restart #%d)", inst.endpoint, inst.restarts)
        return True

    def watch_once(self) -> list[str]:
        """Restart every launched instance whose process died; returns the restarted endpoints.
        Cheap (no protocol probe), so it is safe while capture clients are connected."""
        out = []
        for inst in self.instances:
            if not inst.attached and inst.ensure_alive(probe=False):
                out.append(inst.endpoint)
        return out

    def start(self) -> "InstancePool":
        """Start (or wait for, when attached) every instance; on failure stop the ones started."""
        try:
            for inst in self.instances:  # launch all first: UE builds load in parallel
                inst.launch()
            for inst in self.instances:
                inst.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for inst in self.instances:
            inst.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __len__(self) -> int:
        return len(self.instances)
