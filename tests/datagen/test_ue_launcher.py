"""datagen.ue_launcher against our embedded UnrealCV-protocol server run as separate processes
(`relic datagen serve` through the launcher's command template): launch and wait ready, several
instances on several ports, attach mode, restart after SIGKILL, clear start-up errors, busy ports,
and `relic datagen launch`."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from datagen.scenes.library import generate_scene, save_scene
from datagen.ue_launcher import (InstancePool, LaunchError, UEInstance, free_port, port_is_free, probe_unrealcv,
                                 ue_command)
from datagen.ue_launcher.pool import _parse_endpoint


def serve_template(scene_file) -> list[str]:
    return [sys.executable, "-m", "relic_cli", "datagen", "serve", "--scene", str(scene_file),
            "--port", "{port}", "--width", "{width}", "--height", "{height}", "--no-save"]


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("uelaunch") / "apartment-0001.json"
    save_scene(generate_scene("apartment", 1), path)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still "exists": check its state
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_pool_launches_several_ports_attaches_and_restarts_a_killed_server(scene_file, tmp_path):
    base = free_port()
    pool = InstancePool(serve_template(scene_file), n=2, base_port=base, width=32, height=24,
                        log_dir=tmp_path / "logs", startup_timeout=60)
    with pool:
        ports = [i.port for i in pool.instances]
        assert len(set(ports)) == 2 and all(p >= base for p in ports)
        assert pool.addresses == [("127.0.0.1", p) for p in ports]
        assert all(probe_unrealcv("127.0.0.1", p) == "ready" for p in ports)
        pids = [i.pid for i in pool.instances]
        # the width/height placeholders reached the server: it captures at 32x24
        from datagen.backends.unrealcv_client import UnrealCVBackend

        with UnrealCVBackend("127.0.0.1", ports[1], timeout=20) as b:
            assert b.resolution() == (32, 24)
            assert b.request("vget /scene/name").strip() == "apartment-0001"
            # while a client is connected the server is alive (cheap check, no protocol probe) ...
            assert pool.instances[1].is_alive()
            assert pool.watch_once() == []

        # attach mode: waits for the running servers, launches nothing and stops nothing
        attached = InstancePool(endpoints=pool.endpoints, startup_timeout=10)
        assert all(i.attached for i in attached.instances)
        with attached:
            assert attached.endpoints == pool.endpoints
        assert all(_alive(p) for p in pids), "stopping an attached pool must not kill the servers"

        # SIGKILL one server: it is dead; restart brings it back on the same port
        inst = pool.instance(pool.endpoints[0])
        inst.kill()
        assert not _alive(pids[0]) and not inst.is_alive()
        assert probe_unrealcv(*inst.address) == "closed"
        assert pool.restart(inst.endpoint) is True
        assert inst.restarts == 1 and inst.pid != pids[0] and inst.responsive()
        assert pool.restart(inst.endpoint) is True and inst.restarts == 1  # healthy: no second restart
        # the watcher restarts a dead process too
        pool.instances[1].kill()
        assert pool.watch_once() == [pool.endpoints[1]] and pool.instances[1].responsive()
        log = (tmp_path / "logs" / f"server-{ports[0]}.log").read_text()
        assert log.count("launching:") == 2 and "listening on" in log
        live = [i.pid for i in pool.instances]
    assert not any(_alive(p) for p in live)
    assert all(port_is_free(p) for p in ports)


def test_command_that_exits_at_startup_is_a_clear_error(tmp_path):
    tmpl = [sys.executable, "-c", "import sys; print('missing map /Game/Nope'); sys.exit(3)", "{port}"]
    inst = UEInstance(tmpl, port=free_port(), log_dir=tmp_path, startup_timeout=30)
    with pytest.raises(LaunchError, match=r"exited with code 3 during start-up") as e:
        inst.start()
    assert "missing map /Game/Nope" in str(e.value)  # the log tail explains why
    assert inst.proc is None
    with pytest.raises(LaunchError, match="cannot start"):
        UEInstance([str(tmp_path / "NoSuchGame.sh"), "-cvport={port}"], port=free_port()).start()


def test_busy_port_and_silent_or_absent_endpoints_are_clear_errors(scene_file):
    with socket.socket() as busy:  # a foreign program listening, not speaking UnrealCV
        busy.bind(("127.0.0.1", 0))
        busy.listen(8)
        port = busy.getsockname()[1]
        with pytest.raises(LaunchError, match=f"port {port} .* already in use"):
            UEInstance(serve_template(scene_file), port=port).start()
        with pytest.raises(LaunchError, match="does not speak the UnrealCV protocol"):
            UEInstance(None, port=port, startup_timeout=0.5, probe_timeout=0.3).start()
        assert probe_unrealcv("127.0.0.1", port, timeout=0.3) == "silent"
        pool = InstancePool(serve_template(scene_file), n=2, base_port=port)  # busy ports are skipped
        assert port not in [i.port for i in pool.instances]
    closed = free_port()
    with pytest.raises(LaunchError, match="nothing accepted connections"):
        UEInstance(None, port=closed, startup_timeout=0.3).start()
    assert InstancePool(endpoints=[f"127.0.0.1:{closed}"], startup_timeout=0.2).restart(f"127.0.0.1:{closed}") is False


def test_templates_and_ue_command():
    cmd = ue_command("/opt/Relic/RelicCapture.sh", "/Game/Maps/CaptureLevel", gpu=1)
    inst = UEInstance(cmd, port=9107, width=832, height=480, map_name="/Game/Maps/CaptureLevel")
    filled = inst.command()
    assert filled[:2] == ["/opt/Relic/RelicCapture.sh", "/Game/Maps/CaptureLevel"]
    assert {"-cvport=9107", "-ResX=832", "-ResY=480", "-RenderOffScreen", "-graphicsadapter=1"} <= set(filled)
    assert "-RenderOffScreen" not in ue_command("Game.exe", offscreen=False)
    s = UEInstance("relic datagen serve --scene 'my scene.json' --port {port}", port=9200).command()
    assert s[-3:] == ["my scene.json", "--port", "9200"]
    with pytest.raises(ValueError, match=r"unknown placeholder \{scene\}"):
        UEInstance(["game", "{scene}", "{port}"], port=1)
    with pytest.raises(ValueError, match=r"must contain \{port\}"):
        UEInstance(["game", "-windowed"], port=1)
    with pytest.raises(LaunchError, match="attached"):
        UEInstance(None, port=9000).command()
    assert _parse_endpoint("10.0.0.2:9001") == ("10.0.0.2", 9001)
    with pytest.raises(ValueError, match="host:port"):
        _parse_endpoint("10.0.0.2")


def test_relic_datagen_launch_cli_prints_endpoints_and_stops_on_sigterm(scene_file, tmp_path):
    base = free_port()
    cmd = [sys.executable, "-m", "relic_cli", "datagen", "launch", "--command",
           f"{sys.executable} -m relic_cli datagen serve --scene {scene_file} --port {{port}} --no-save",
           "-n", "1", "--base-port", str(base), "--width", "32", "--height", "24", "--watch", "0.2",
           "--log-dir", str(tmp_path / "logs")]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = p.stdout.readline()
        m = re.search(r"ready: --endpoints 127\.0\.0\.1:(\d+)", line)
        assert m, f"no ready line: {line!r} {p.stderr.read() if p.poll() is not None else ''}"
        port = int(m.group(1))
        assert probe_unrealcv("127.0.0.1", port) == "ready"
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
        assert "stopped servers" in p.stdout.read()
        deadline = time.monotonic() + 10
        while not port_is_free(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert port_is_free(port), "the launched server must be stopped with the launcher"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_hung_server_is_detected_by_the_protocol_probe_and_restarted(scene_file, tmp_path):
    inst = UEInstance(serve_template(scene_file), port=free_port(), width=32, height=24, log_dir=tmp_path,
                      startup_timeout=60, probe_timeout=0.5)
    with inst:
        pid = inst.pid
        os.kill(pid, signal.SIGSTOP)  # frozen: the kernel still accepts TCP, nothing answers
        try:
            assert inst.is_alive()  # the cheap check cannot tell ...
            assert probe_unrealcv(*inst.address, timeout=0.5) == "silent"  # ... the protocol probe can
            assert inst.ensure_alive(probe=True) is True
        finally:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        assert not _alive(pid) and inst.pid != pid and inst.responsive() and inst.restarts == 1
