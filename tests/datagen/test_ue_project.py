"""ue_project/: static validation of the .uproject and ini files, the editor scripts parse, and the
exporter's scene files round-trip through datagen's scene loader with UE -> ours conversion."""
from __future__ import annotations

import ast
import configparser
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from datagen import conventions as cv
from datagen.scenes.library import load_scene, save_scene
from datagen.scenes.unreal import served_scene_ids, unreal_scene_id
from datagen.ue_launcher import write_unrealcv_ini

UE = Path(__file__).resolve().parents[2] / "ue_project"
SCRIPTS = UE / "Scripts"


def _ini(path: Path) -> configparser.ConfigParser:
    """UE ini files: case-sensitive keys, no interpolation, ';' comments, repeated keys allowed."""
    cp = configparser.ConfigParser(interpolation=None, strict=False, comment_prefixes=(";", "#"),
                                   inline_comment_prefixes=None)
    cp.optionxform = str
    cp.read_string(path.read_text())
    return cp


def _exporter():
    spec = importlib.util.spec_from_file_location("relic_export_capture_metadata", SCRIPTS / "export_capture_metadata.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------- static files
def test_uproject_is_json_with_unrealcv_and_python_plugins_enabled():
    d = json.loads((UE / "RelicCapture.uproject").read_text())
    assert d["FileVersion"] == 3 and str(d["EngineAssociation"]).startswith("5.")
    plugins = {p["Name"]: p for p in d["Plugins"]}
    assert plugins["UnrealCV"]["Enabled"] is True
    assert plugins["PythonScriptPlugin"]["Enabled"] is True  # the export scripts need it
    assert {"Linux", "Windows"} <= set(d["TargetPlatforms"])


def _check_unrealcv_ini(path: Path) -> dict:
    sec = _ini(path)["UnrealCV.Core"]
    port, w, h, fov = int(sec["Port"]), int(sec["Width"]), int(sec["Height"]), float(sec["FOV"])
    assert 0 < port < 65536 and w > 0 and h > 0 and 0 < fov < 180
    assert sec["EnableInput"] in ("False", "false") and sec["EnableRightEye"] in ("False", "false")
    return {"Port": port, "Width": w, "Height": h, "FOV": fov}


def test_unrealcv_ini_has_port_resolution_fov():
    v = _check_unrealcv_ini(UE / "Config" / "unrealcv.ini")
    assert v["Port"] == 9000 and (v["Width"], v["Height"]) == (832, 480)  # RELIC's 480x832 output


def test_launcher_writes_an_equivalent_unrealcv_ini(tmp_path):
    path = write_unrealcv_ini(tmp_path / "bin", 9123, 64, 48, fov=75.0)
    assert _check_unrealcv_ini(path) == {"Port": 9123, "Width": 64, "Height": 48, "FOV": 75.0}
    assert not [p for p in path.parent.iterdir() if p.name != "unrealcv.ini"]  # no temp file left


def _false(v: str) -> bool:
    return v.strip().lower() in ("false", "0")


def test_engine_ini_capture_settings_make_frames_independent_of_history():
    cp = _ini(UE / "Config" / "DefaultEngine.ini")
    r = cp["/Script/Engine.RendererSettings"]
    # anti-aliasing: none or FXAA only; TAA (2) and TSR (4) blend previous frames
    assert int(r["r.AntiAliasingMethod"]) in (0, 1)
    assert _false(r["r.TemporalAA.Upsampling"])
    # no motion blur
    assert _false(r["r.DefaultFeature.MotionBlur"]) and int(r["r.MotionBlurQuality"]) == 0
    # fixed exposure: no auto exposure / eye adaptation
    assert _false(r["r.DefaultFeature.AutoExposure"]) and int(r["r.EyeAdaptationQuality"]) == 0
    # no history-based lighting: Lumen GI (1) / Lumen reflections (1) off, no temporal SSR, VSM off
    assert int(r["r.DynamicGlobalIlluminationMethod"]) != 1 and int(r["r.ReflectionMethod"]) != 1
    assert int(r["r.SSR.Temporal"]) == 0 and int(r["r.Shadow.Virtual.Enable"]) == 0
    assert int(r["r.Tonemapper.GrainQuantization"]) == 0 and int(r["r.VolumetricFog.TemporalReprojection"]) == 0
    # fixed frame rate, no smoothing, no vsync
    e = cp["/Script/Engine.Engine"]
    assert e["bUseFixedFrameRate"].lower() == "true" and _false(e["bSmoothFrameRate"])
    assert float(e["FixedFrameRate"]) > 0
    assert int(cp["SystemSettings"]["r.VSync"]) == 0
    maps = cp["/Script/EngineSettings.GameMapsSettings"]
    assert maps["GameDefaultMap"].startswith("/Game/")


# --------------------------------------------------------------------------- editor scripts
@pytest.mark.parametrize("name", ["export_capture_metadata.py", "list_levels.py"])
def test_editor_scripts_parse_and_import_unreal_only_inside_functions(name):
    tree = ast.parse((SCRIPTS / name).read_text(), filename=name)
    top_imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name.split(".")[0] for n in top_imports for a in n.names} | {
        (n.module or "").split(".")[0] for n in top_imports if isinstance(n, ast.ImportFrom)}
    assert "unreal" not in names  # importable (and testable) outside the editor
    funcs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "main" in funcs
    uses_unreal = [n for n in ast.walk(tree) if isinstance(n, ast.Import) and any(a.name == "unreal" for a in n.names)]
    assert uses_unreal, "the editor script should use Unreal's `unreal` module"


def _export(tmp_path, mod, spawns, walkable=((-500.0, -300.0, 0.0), (700.0, 400.0, 300.0))):
    objects = [
        {"name": "StaticMeshActor_3", "label": "Sofa", "mesh": "SM_Sofa_02", "tags": [],
         "bounds_min_cm": [0, 0, 0], "bounds_max_cm": [200, 90, 80]},
        {"name": "StaticMeshActor_7", "label": "Lamp", "mesh": "SM_FloorLamp",
         "tags": ["category=lamp", "desc=a brass floor lamp"], "bounds_min_cm": [10, 10, 0],
         "bounds_max_cm": [40, 40, 170]},
    ]
    d = mod.build_scene_dict("RelicCapture", "/Game/Maps/CaptureLevel", "CaptureLevel", "", walkable, spawns,
                             objects, camera_height_cm=165.0)
    path = tmp_path / "capturelevel.json"
    mod.write_json_atomic(d, str(path))
    return d, path


def test_exported_scene_round_trips_through_the_loader(tmp_path):
    mod = _exporter()
    spawns = [{"name": "PlayerStart", "location_cm": [100.0, 200.0, 150.0], "rotation_deg": [0.0, 90.0, 0.0]},
              {"name": "Door", "location_cm": [0.0, 0.0, 160.0], "rotation_deg": [-30.0, 0.0, 0.0]}]
    d, path = _export(tmp_path, mod, spawns)
    assert [p.name for p in tmp_path.iterdir()] == ["capturelevel.json"]  # atomic write left no temp file
    scene = load_scene(path)
    assert scene.kind == "unreal" and scene.family == "unreal"
    assert scene.scene_id == "reliccapture-capturelevel" == unreal_scene_id("RelicCapture", "CaptureLevel")
    assert scene.scene_id == mod.level_scene_id("RelicCapture", "CaptureLevel")
    # bounds: cm -> m and Y negated, so UE's Y range [-300, 400] becomes [-4, 3]
    np.testing.assert_allclose(scene.bounds_min, [-5.0, -4.0, 0.0])
    np.testing.assert_allclose(scene.bounds_max, [7.0, 3.0, 3.0])
    assert scene.camera_height == pytest.approx(1.65)
    # spawn, checked by hand: UE (100, 200, 150) cm facing yaw 90 (UE +Y, i.e. our -Y).
    # OpenCV camera axes in our world: x (right) = UE right (-1, 0, 0) -> (-1, 0, 0);
    # y (down) = -up = (0, 0, -1); z (forward) = (0, -1, 0); position (1, -2, 1.5) m.
    expected = np.array([[-1.0, 0.0, 0.0, 1.0],
                         [0.0, 0.0, -1.0, -2.0],
                         [0.0, -1.0, 0.0, 1.5],
                         [0.0, 0.0, 0.0, 1.0]])
    np.testing.assert_allclose(scene.spawn_c2w, expected, atol=1e-12)
    assert np.linalg.det(scene.spawn_c2w[:3, :3]) == pytest.approx(1.0)
    # second spawn: pitch -30 (looking down) along UE +X: forward (cos 30, 0, -sin 30)
    sp2 = np.asarray(scene.spec["spawn_points"][1])
    np.testing.assert_allclose(sp2[:3, 2], [np.cos(np.radians(30)), 0.0, -0.5], atol=1e-12)
    np.testing.assert_allclose(sp2[:3, 3], [0.0, 0.0, 1.6], atol=1e-12)
    # and back to the exact UE pose through the one conversion module
    loc, rot = cv.c2w_to_ue_pose(scene.spawn_c2w)
    np.testing.assert_allclose(loc, [100.0, 200.0, 150.0], atol=1e-9)
    np.testing.assert_allclose(rot, [0.0, 90.0, 0.0], atol=1e-9)
    # objects: UnrealCV object names, categories from tags or mesh names, descriptions
    assert [o.name for o in scene.objects] == ["StaticMeshActor_3", "StaticMeshActor_7"]
    assert [o.category for o in scene.objects] == ["sofa", "lamp"]
    assert scene.objects[1].description == "a brass floor lamp" and scene.objects[0].description == "a sofa"
    assert scene.spec["map"] == "/Game/Maps/CaptureLevel"
    # saving the loaded scene and loading again gives the same metadata
    again = load_scene(save_scene(scene, tmp_path / "again.json"))
    np.testing.assert_array_equal(again.spawn_c2w, scene.spawn_c2w)
    np.testing.assert_array_equal(again.bounds_min, scene.bounds_min)
    assert again.scene_id == scene.scene_id and again.camera_height == scene.camera_height


def test_exporter_rejects_levels_without_spawn_or_space(tmp_path):
    mod = _exporter()
    with pytest.raises(ValueError, match="PlayerStart"):
        _export(tmp_path, mod, [])
    sp = [{"name": "S", "location_cm": [0, 0, 100], "rotation_deg": [0, 0, 0]}]
    with pytest.raises(ValueError, match="empty walkable bounds"):
        _export(tmp_path, mod, sp, walkable=((0, 0, 0), (100, 0, 100)))


def test_loader_rejects_ue_metadata_in_another_frame(tmp_path):
    mod = _exporter()
    d, path = _export(tmp_path, mod, [{"name": "S", "location_cm": [0, 0, 100], "rotation_deg": [0, 0, 0]}])
    d["ue"]["units"] = "m"
    path.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="UE's own frame"):
        load_scene(path)
    d["ue"]["units"] = "cm"
    d["ue"]["spawn_points"][0]["location_cm"] = [0, "x", 1]
    path.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="location_cm"):
        load_scene(path)


def test_server_names_map_to_the_exported_scene_id():
    # a UE build answers `vget /scene/name` with its PROJECT and `vget /level/name` with the map
    assert "reliccapture-capturelevel" in served_scene_ids("RelicCapture", "CaptureLevel")
    # our embedded server answers the scene id itself
    assert served_scene_ids("apartment-0001", "apartment")[0] == "apartment-0001"
    assert served_scene_ids("apartment-0001", "") == ["apartment-0001"]


def test_captions_use_exported_descriptions_for_the_servers_object_list(tmp_path):
    """A UE server lists every actor (`vget /objects`) and mask ids index THAT list: the exported
    descriptions must be matched by object name, not by position."""
    from datagen.capture.episode import scene_texts

    mod = _exporter()
    _, path = _export(tmp_path, mod, [{"name": "S", "location_cm": [0, 0, 100], "rotation_deg": [0, 0, 0]}])
    scene = load_scene(path)

    class ServerObjects:  # what a UE level's UnrealCV server answers (only the part scene_texts reads)
        def objects(self):
            return ["DirectionalLight_0", "StaticMeshActor_7", "PlayerStart_1", "StaticMeshActor_3"]

        def scene_info(self):
            return {}

    desc, names, descs = scene_texts(ServerObjects(), scene)
    assert names == ServerObjects().objects()
    assert descs[1] == "a brass floor lamp" and descs[3] == "a sofa"
    assert desc == scene.description
