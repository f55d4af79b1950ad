"""`relic datagen scene`: list families, write scene files, inspect and render them.

    relic datagen scene --list
    relic datagen scene --family apartment --seed 7 --out scenes/apartment-0007.json
    relic datagen scene --info scenes/apartment-0007.json
    relic datagen scene --render scenes/apartment-0007.json --out view.png [--res paper]
    relic datagen scene --mesh a.glb b.obj --out scenes/mine.json
    relic datagen scene --contact-sheet reports/scenes_contact_sheet.png [--seeds 3]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from datagen.atomic import atomic_write, atomic_write_text
from datagen.cli_common import ensure_output_file, nonnegative_int, positive_float, positive_int, resolution_arg
from datagen.conventions import intrinsics_from_fov
from datagen.render.presets import RESOLUTIONS, resolution
from datagen.render.renderer import Renderer
from datagen.scenes.library import (FAMILIES, describe_families, generate_scene, load_scene, save_scene,
                                    scene_from_dict)
from datagen.scenes.meshes import mesh_scene_spec


def _fov(text: str) -> float:
    v = positive_float(text)
    if not v < 180.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 180) degrees, got {v:g}")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--list", action="store_true", help="print the scene families, one per line")
    g.add_argument("--family", help="family of the scene to generate (see --list)")
    g.add_argument("--info", metavar="FILE", help="print a summary of a scene file")
    g.add_argument("--render", metavar="FILE", help="render the spawn view of a scene file to --out PNG")
    g.add_argument("--mesh", nargs="+", metavar="MESH", help="make a scene file from your own meshes (glTF/OBJ/PLY)")
    g.add_argument("--contact-sheet", metavar="PNG", help="grid of spawn views of several seeds of every family")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the generated scene")
    p.add_argument("--seeds", type=positive_int, default=3, help="seeds per family for --contact-sheet")
    p.add_argument("--out", help="output file (scene JSON, or PNG for --render)")
    p.add_argument("--res", default="small", type=resolution_arg(1, RESOLUTIONS, min_side=1),
                   help=f"render size: preset ({', '.join(RESOLUTIONS)}) or WxH")
    p.add_argument("--fov", type=_fov, default=90.0, help="horizontal field of view in degrees, in (0, 180)")
    p.add_argument("--describe", action="store_true", help="with --list: also print each family's description")


def _render_png(scene, out, res: str, fov: float) -> None:
    w, h = resolution(res)
    f = Renderer(scene).render(scene.spawn_c2w, intrinsics_from_fov(w, h, fov), w, h, ("rgb",))
    _save_png(f.rgb, out)


def _save_png(rgb, out) -> None:
    atomic_write(out, lambda tmp: Image.fromarray(rgb).save(tmp), suffix=".png")


def contact_sheet(out, seeds: int = 3, res: str = "small", fov: float = 90.0) -> Path:
    """Grid PNG: one row per family, one column per seed (0..seeds-1), each the spawn view."""
    w, h = resolution(res)
    K = intrinsics_from_fov(w, h, fov)
    pad = 4
    sheet = np.full((len(FAMILIES) * (h + pad) + pad, seeds * (w + pad) + pad, 3), 255, np.uint8)
    jobs = [(fi, fam, s) for fi, fam in enumerate(FAMILIES) for s in range(seeds)]
    for fi, fam, s in tqdm(jobs, desc="contact sheet", unit="scene"):
        sc = generate_scene(fam, s)
        rgb = Renderer(sc).render(sc.spawn_c2w, K, w, h, ("rgb",)).rgb
        y, x = pad + fi * (h + pad), pad + s * (w + pad)
        sheet[y:y + h, x:x + w] = rgb
    _save_png(sheet, out)
    return Path(out)


def run(args) -> int:
    if args.out and (args.family or args.render or args.mesh):
        ensure_output_file(args.out, example="view.png" if args.render else "scene.json")
    if args.contact_sheet:
        ensure_output_file(args.contact_sheet, option="--contact-sheet", example="sheet.png")
    for opt in ("info", "render"):
        f = getattr(args, opt)
        if f and Path(f).is_dir():
            raise ValueError(f"--{opt} {f} is a folder; give a scene file (JSON)")
    if args.list:
        info = describe_families()
        for f in FAMILIES:
            print(f"{f}\t{info[f]}" if args.describe else f)
        return 0
    if args.family:
        if not args.out:
            raise ValueError("--family needs --out FILE (where to write the scene JSON)")
        scene = generate_scene(args.family, args.seed)
        save_scene(scene, args.out)
        print(f"wrote {args.out}: {scene.scene_id} ({len(scene.objects)} objects, {len(scene.triangles)} triangles)")
        return 0
    if args.info:
        scene = load_scene(args.info)
        print(json.dumps(scene.summary(), indent=1))
        return 0
    if args.render:
        if not args.out:
            raise ValueError("--render needs --out PNG")
        scene = load_scene(args.render)
        _render_png(scene, args.out, args.res, args.fov)
        print(f"wrote {args.out}")
        return 0
    if args.mesh:
        if not args.out:
            raise ValueError("--mesh needs --out FILE (where to write the scene JSON)")
        out = Path(args.out)
        d = mesh_scene_spec(args.mesh, out_dir=out.parent if str(out.parent) else ".")
        scene = scene_from_dict(d, base_dir=out.parent)  # validates: loads and builds the scene
        atomic_write_text(out, json.dumps(d, indent=1) + "\n")
        print(f"wrote {out}: {scene.scene_id} ({len(scene.triangles)} triangles)")
        return 0
    if args.contact_sheet:
        contact_sheet(args.contact_sheet, args.seeds, args.res, args.fov)
        print(f"wrote {args.contact_sheet}")
        return 0
    raise ValueError("nothing to do: give --list, --family F --seed N --out FILE, --info FILE, "
                     "--render FILE --out PNG, --mesh FILES --out FILE or --contact-sheet PNG")
