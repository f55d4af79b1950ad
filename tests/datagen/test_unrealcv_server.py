"""The real `unrealcv` client against our UnrealCV-protocol server over the real EmbeddedBackend.

Everything over loopback on free ports; frames are compared with in-process renders of the same
scene at the same pose.
"""
from __future__ import annotations

import io
import re
import warnings

import numpy as np
import pytest
import unrealcv

from datagen import conventions as cv
from datagen.backends.base import BackendError
from datagen.backends.embedded import EmbeddedBackend
from datagen.backends.unrealcv_client import UnrealCVBackend
from datagen.scenes.library import generate_scene
from datagen.unrealcv_server import encoding
from datagen.unrealcv_server.server import UnrealCVServer

W, H = 64, 40
ALL = ("rgb", "depth", "normal", "mask")


@pytest.fixture(scope="module")
def scene():
    return generate_scene("apartment", 1)


@pytest.fixture(scope="module")
def save_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("saved")


@pytest.fixture(scope="module")
def server(scene, save_dir):
    srv = UnrealCVServer(EmbeddedBackend(scene, W, H, 90.0, True), port=0, save_dir=save_dir)
    srv.start()
    yield srv
    srv.shutdown()


@pytest.fixture()
def ref(scene):
    return EmbeddedBackend(scene, W, H, 90.0, True)


@pytest.fixture()
def client(server):
    c = unrealcv.Client(server.address)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # capability check must succeed (no "too old" warning)
        assert c.connect()
    yield c
    c.disconnect()


def _free_pose(scene, rng, n):
    poses = []
    for _ in range(n):
        p = scene.sample_free_point(rng, radius=0.3)
        yaw = rng.uniform(-np.pi, np.pi)
        poses.append(cv.look_at(p, p + np.array([np.cos(yaw), np.sin(yaw), rng.uniform(-0.3, 0.3)])))
    return poses


def test_connect_status_version_commands(client, server, scene):
    assert client._command_capabilities_available
    assert "vget /unrealcv/commands" in client._supported_command_templates
    status = client.request("vget /unrealcv/status")
    assert "Client Connected" in status and str(server.address[1]) in status
    assert client.request("vget /unrealcv/version").startswith("v1.")
    assert client.request("vget /scene/name") == scene.scene_id
    assert client.request("vget /level/name") == scene.family
    names = client.request("vget /objects").split()
    assert names == [o.name for o in scene.objects]
    assert client.request("vget /cameras").split() == ["relic_camera_0", "relic_camera_1"]  # player + right eye


def test_unrealcv_high_level_api_works(server, scene):
    """The client's own UnrealCv_API (as gym-unrealcv uses it) initialises and captures."""
    from unrealcv.api import UnrealCv_API

    host, port = server.address
    api = UnrealCv_API(port, host, (W, H))
    try:
        assert set(api.obj_dict) == {o.name for o in scene.objects}
        api.set_cam_location(0, [100.0, -50.0, 120.0])
        assert np.allclose(api.get_cam_location(0), [100.0, -50.0, 120.0])
        img = api.get_image(0, "lit", "png")  # UnrealCv_API returns BGR
        assert img.shape == (H, W, 3)
        depth = api.get_depth(0)
        assert depth.shape == (H, W, 1) and depth.dtype == np.float32
    finally:
        api.client.disconnect()


def test_frames_match_in_process_render(client, ref, scene):
    rng = np.random.default_rng(7)
    for c2w in _free_pose(scene, rng, 3):
        loc, rot = cv.c2w_to_ue_pose(c2w)
        ls, rs = " ".join(f"{v:.4f}" for v in loc), " ".join(f"{v:.4f}" for v in rot)
        rep = client.request_batch([f"vset /camera/0/location {ls}", f"vset /camera/0/rotation {rs}",
                                    "vget /camera/0/lit png", "vget /camera/0/depth npy",
                                    "vget /camera/0/normal png", "vget /camera/0/object_mask png",
                                    "vget /camera/0/lit bmp"])
        assert rep[:2] == ["ok", "ok"]
        ref.set_pose(cv.ue_pose_to_c2w([float(v) for v in ls.split()], [float(v) for v in rs.split()]))
        g = ref.capture(ALL)
        assert np.array_equal(encoding.decode_image(rep[2]), g.rgb)           # png is lossless
        assert np.array_equal(encoding.decode_image(rep[6]), g.rgb)           # so is bmp
        depth_cm = np.load(io.BytesIO(rep[3]))
        assert depth_cm.dtype == np.float32 and depth_cm.shape == (H, W)
        assert np.allclose(depth_cm, cv.ours_depth_to_ue(g.depth), rtol=1e-6, atol=1e-3)
        normal_ue = encoding.rgb_to_normals(encoding.decode_image(rep[4]))
        assert np.abs(cv.ue_direction_to_ours(normal_ue) - g.normal).max() < 0.01
        mask_rgb = encoding.decode_image(rep[5])
        colours = [encoding.instance_colour(i) for i in range(len(scene.objects))]
        assert np.array_equal(encoding.rgb_to_mask(mask_rgb, colours), g.mask)
        # the mask colours are those `vget /object/<name>/color` reports
        ids, counts = np.unique(g.mask[g.mask >= 0], return_counts=True)
        obj = scene.objects[int(ids[np.argmax(counts)])].name
        r, gg, b = (int(v) for v in re.findall(r"\d+", client.request(f"vget /object/{obj}/color"))[:3])
        assert np.any(np.all(mask_rgb == (r, gg, b), axis=-1))


def test_no_hit_depth_is_large_and_finite(client):
    # look straight up from far above the scene: nothing is hit
    rep = client.request_batch(["vset /camera/0/pose 0 0 100000 89 0 0", "vget /camera/0/depth npy"])
    d = np.load(io.BytesIO(rep[1]))
    assert np.all(np.isfinite(d)) and np.all(d >= 1e6 - 1)
    assert np.all(np.isinf(cv.ue_depth_to_ours(d)))


def test_pose_roundtrip(client):
    cmds = ["vset /camera/0/location 123.456 -78.9 150.25", "vget /camera/0/location",
            "vset /camera/0/rotation -12.5 170.125 3.75", "vget /camera/0/rotation",
            "vset /camera/0/pose 10 20 30 1 2 3", "vget /camera/0/pose", "vget /camera/0/location",
            "vset /camera/0/fov 75.5", "vget /camera/0/fov", "vset /camera/0/size 48 32",
            "vget /camera/0/size", "vrun setres 64x40w", "vget /camera/0/size", "vget /camera/0/lit png"]
    r = client.request_batch(cmds)
    assert r[1] == "123.456 -78.900 150.250"
    assert r[3] == "-12.500 170.125 3.750"
    assert r[5] == "10.000 20.000 30.000 1.000 2.000 3.000" and r[6] == "10.000 20.000 30.000"
    assert r[8] == "75.500" and r[10] == "48 32" and r[12] == "64 40"
    assert encoding.decode_image(r[13]).shape == (40, 64, 3)
    assert client.request("vset /camera/0/fov 90") == "ok"


def test_backend_pose_roundtrip_and_intrinsics(server, scene):
    rng = np.random.default_rng(11)
    host, port = server.address
    with UnrealCVBackend(host, port, scene=scene) as b:
        b.set_resolution(W, H)
        b.set_fov(80.0)
        assert b.fov() == 80.0 and b.resolution() == (W, H)
        assert np.allclose(b.intrinsics(), cv.intrinsics_from_fov(W, H, 80.0))
        for c2w in _free_pose(scene, rng, 4):
            b.set_pose(c2w)
            got = b.get_pose()
            assert np.abs(got[:3, 3] - c2w[:3, 3]).max() < 1e-4          # %.3f cm
            assert np.abs(got[:3, :3] - c2w[:3, :3]).max() < 1e-4        # %.3f degrees
        b.set_fov(90.0)
        info = b.scene_info()
        assert info["scene_id"] == scene.scene_id and info["bounds_min"] == scene.bounds_min.tolist()


def test_backend_capture_batch_equals_in_process(server, scene, ref):
    rng = np.random.default_rng(5)
    poses = _free_pose(scene, rng, 6)
    host, port = server.address
    with UnrealCVBackend(host, port, batch_poses=4) as b:
        b.set_resolution(W, H)
        frames = b.capture_batch(poses, ALL)
        assert len(frames) == len(poses)
        for c2w, f in zip(poses, frames):
            assert np.abs(f.c2w - c2w).max() < 1e-6
            ref.set_pose(f.c2w)
            g = ref.capture(ALL)
            assert np.array_equal(f.rgb, g.rgb)
            assert np.array_equal(np.isinf(f.depth), np.isinf(g.depth))
            fin = np.isfinite(g.depth)
            assert np.allclose(f.depth[fin], g.depth[fin], rtol=1e-6, atol=1e-5)
            assert np.array_equal(f.mask, g.mask)
            assert np.abs(f.normal - g.normal).max() < 0.01
            assert np.allclose(f.K, ref.intrinsics())
        single = b.capture(("rgb",))
        assert np.array_equal(single.rgb, frames[-1].rgb)
        assert np.abs(single.c2w - frames[-1].c2w).max() < 1e-4


def test_moveto_stops_before_a_wall(client, scene, ref):
    # aim at the nearest wall straight ahead of the spawn and ask to go 2 m through it
    start = scene.spawn_c2w
    ref.set_pose(start)
    d = ref.capture(("depth",)).depth
    dist = float(d[H // 2, W // 2])
    assert np.isfinite(dist)
    fwd = start[:3, 2]
    target = start[:3, 3] + fwd * (dist + 2.0)
    loc, rot = cv.c2w_to_ue_pose(start)
    tgt_ue = cv.ours_point_to_ue(target)
    r = client.request_batch([
        "vset /camera/0/pose " + " ".join(f"{v:.6f}" for v in [*loc, *rot]),
        "vset /camera/0/moveto " + " ".join(f"{v:.6f}" for v in tgt_ue),
        "vget /camera/0/location", "vget /camera/0/rotation"])
    reached_ue = np.array([float(v) for v in r[2].split()])
    assert np.linalg.norm(reached_ue - tgt_ue) >= 10.0                 # gym-unrealcv's collision test
    travelled = float(np.dot(cv.ue_point_to_ours(reached_ue) - start[:3, 3], fwd))
    assert travelled < dist                                            # stopped before the wall
    assert np.allclose([float(v) for v in r[3].split()], [round(v, 3) for v in rot], atol=1e-3)
    # same sweep as in-process
    ref.set_pose(cv.ue_pose_to_c2w([float(f"{v:.6f}") for v in loc], [float(f"{v:.6f}") for v in rot]))
    expect = ref.move_to(cv.ue_point_to_ours([float(f"{v:.6f}") for v in tgt_ue]))
    assert np.abs(cv.ue_point_to_ours(reached_ue) - expect).max() < 1e-4
    # the backend's move_to gives the same answer
    host, port = client.endpoint
    client.disconnect()
    with UnrealCVBackend(host, port) as b:
        b.set_pose(cv.ue_pose_to_c2w(loc, rot))
        got = b.move_to(target)
        assert np.abs(got - expect).max() < 1e-4


def test_pipelined_batch_answers_in_order(client):
    cmds = []
    for i in range(60):
        cmds += [f"vset /camera/0/location {i} {2 * i} {100 + i}", "vget /camera/0/location"]
        if i % 10 == 0:
            cmds += ["vget /camera/0/lit png", "vget /camera/9/location", "vbatch 2"]
    rep = client.request_batch(cmds)
    assert len(rep) == len(cmds)
    for cmd, r in zip(cmds, rep):
        if cmd.startswith("vset"):
            assert r == "ok"
        elif cmd == "vget /camera/0/location":
            i = int(float(r.split()[0]))
            assert r == f"{i:.3f} {2 * i:.3f} {100 + i:.3f}"
        elif "lit" in cmd:
            assert isinstance(r, bytes) and r[:4] == b"\x89PNG"
        elif "/camera/9/" in cmd:
            assert r.startswith("error")
    gets = [int(float(r.split()[0])) for c, r in zip(cmds, rep) if c == "vget /camera/0/location"]
    assert gets == list(range(60))


@pytest.mark.parametrize("cmd", [
    "vset /camera/0/location 1 2", "vset /camera/0/location a b c", "vset /camera/0/location nan 0 0",
    "vset /camera/0/location 1e300 0 0", "vset /camera/0/rotation 1 2 3 4", "vset /camera/0/fov 0",
    "vset /camera/0/fov 200", "vset /camera/0/size 0 10", "vset /camera/0/size 100000 100000",
    "vset /camera/0/size -5 5", "vrun setres 10", "vrun setres 99999x99999", "vget /camera/0/lit jpg",
    "vget /camera/0/depth png", "vget /camera/5/lit png", "vget /object/no_such_thing/color",
    "vset /camera/1/moveto 0 0 0", "vset /viewmode infrared", "vbatch", "vbatch x", "vrun rm -rf /",
    "hello world", "vget /unknown", "vset /action/game/pause now", "vset /action/game/level Other",
])
def test_bad_commands_answer_error_and_keep_serving(client, cmd):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the client warns about commands not in the template list
        r = client.request(cmd)
    assert isinstance(r, str) and r.startswith("error "), (cmd, r)
    assert client.request("vget /unrealcv/version").startswith("v1.")


def test_misc_commands(client, save_dir):
    assert client.request("vset /viewmode depth") == "ok" and client.request("vget /viewmode") == "depth"
    assert client.request("vset /viewmode lit") == "ok"
    assert client.request("vset /action/game/pause") == "ok"
    assert client.request("vget /action/game/is_paused") == "true"
    assert client.request("vset /action/game/resume") == "ok"
    assert client.request("vget /action/game/is_paused") == "false"
    # files are saved inside the save folder only; the reply is the absolute path
    out = save_dir / "sub" / "x.png"
    assert client.request("vget /camera/0/lit sub/x.png") == str(out)
    assert encoding.decode_image(out.read_bytes()).shape[2] == 3
    out2 = save_dir / "d.npy"
    assert client.request("vget /camera/0/depth d.npy") == str(out2)
    assert np.load(out2).dtype == np.float32
    assert client.request(f"vget /camera/0/lit {save_dir / 'abs.png'}").startswith("error ")
    assert not (save_dir / "abs.png").exists()


def test_backend_connect_error_is_clear():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(BackendError, match="relic datagen serve"):
        UnrealCVBackend("127.0.0.1", port, retries=2, backoff=0.05).connect()


def test_backend_error_reply_raises(server):
    host, port = server.address
    with UnrealCVBackend(host, port, camera_id=3) as b:
        with pytest.raises(BackendError, match="does not exist"):
            b.get_pose()


def test_backend_reconnects_once_after_server_restart(scene, ref):
    srv = UnrealCVServer(EmbeddedBackend(scene, W, H), port=0)
    host, port = srv.start()
    b = UnrealCVBackend(host, port, timeout=10.0, retries=3, backoff=0.1).connect()
    pose = _free_pose(scene, np.random.default_rng(2), 1)[0]
    first = b.capture_batch([pose], ("rgb",))[0]
    srv.shutdown()  # drops the connection
    srv2 = UnrealCVServer(EmbeddedBackend(scene, W, H), port=port)
    srv2.start()
    try:
        again = b.capture_batch([pose], ("rgb",))[0]  # reconnects once, re-sends the batch
        assert np.array_equal(first.rgb, again.rgb)
    finally:
        b.close()
        srv2.shutdown()
    with pytest.raises(BackendError):
        b2 = UnrealCVBackend(host, port, timeout=2.0, retries=1)
        b2.capture(("rgb",))


def test_backend_times_out_on_a_silent_server():
    """A server that greets, answers the capability query, then never replies again."""
    import socket
    import threading

    from datagen.unrealcv_server.protocol import FrameDecoder, encode_frame, parse_request

    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(4)
    stop = threading.Event()

    def serve():
        lst.settimeout(0.2)
        conns = []
        while not stop.is_set():
            try:
                c, _ = lst.accept()
            except socket.timeout:
                continue
            conns.append(c)
            c.sendall(encode_frame(b"connected to silent"))
            dec = FrameDecoder()
            c.settimeout(5)
            try:
                while True:
                    data = c.recv(4096)
                    if not data:
                        break
                    frames = dec.feed(data)
                    if frames:
                        rid, _ = parse_request(frames[0])
                        c.sendall(encode_frame(b"%d:error no commands" % rid))  # then silence
                        break
            except OSError:
                pass
        for c in conns:
            c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            b = UnrealCVBackend("127.0.0.1", lst.getsockname()[1], timeout=0.5, retries=1).connect()
            with pytest.raises(BackendError, match="stopped answering"):
                b.get_pose()
            b.close()
    finally:
        stop.set()
        t.join(5)
        lst.close()


def test_requests_are_logged_at_debug_level(client, caplog):
    import logging

    with caplog.at_level(logging.DEBUG, logger="datagen.unrealcv_server.server"):
        assert client.request("vget /camera/0/fov")
    msgs = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any(m.startswith("request ") and "vget /camera/0/fov" in m for m in msgs)
    assert any(m.startswith("reply ") for m in msgs)
