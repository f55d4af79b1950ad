"""Several UnrealCV instances on several ports, one per capture worker."""
from __future__ import annotations

from typing import Optional, Sequence

from datagen.ue_launcher.instance import LaunchError, UEInstance, port_is_free


class InstancePool:
    """Launch `n` instances of one command template on consecutive free ports from `base_port`,
    or attach to given `endpoints` ("host:port" strings)."""

    def __init__(self, command: Optional[Sequence[str] | str] = None, n: int = 1, base_port: int = 9000,
                 endpoints: Sequence[str] = (), **kwargs):
        self.instances: list[UEInstance] = []
        if endpoints:
            for ep in endpoints:
                host, _, port = ep.rpartition(":")
                if not port.isdigit():
                    raise ValueError(f"bad endpoint {ep!r}: expected host:port")
                self.instances.append(UEInstance(None, host=host or "127.0.0.1", port=int(port), **kwargs))
        else:
            if command is None:
                raise ValueError("give a command template to launch, or endpoints to attach to")
            port = base_port
            for _ in range(n):
                while not port_is_free(port):
                    port += 1
                    if port > 65535:
                        raise LaunchError("no free port found")
                self.instances.append(UEInstance(command, port=port, **kwargs))
                port += 1

    @property
    def endpoints(self) -> list[str]:
        return [i.endpoint for i in self.instances]

    def start(self) -> "InstancePool":
        started = []
        try:
            for inst in self.instances:
                inst.start()
                started.append(inst)
        except Exception:
            for inst in started:
                inst.stop()
            raise
        return self

    def stop(self) -> None:
        for inst in self.instances:
            inst.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
