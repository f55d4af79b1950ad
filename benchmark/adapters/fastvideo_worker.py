"""Worker run INSIDE the baselines env (fastvideo 0.2.1, its own torch): ``python fastvideo_worker.py
KIND WEIGHTS``; KIND is ``matrix-game-2`` or ``gamecraft``. Reads one JSON request per stdin line
(see benchmark/adapters/fastvideo_bridge.py), generates, writes the frames (T, H, W, 3) uint8 to the
request's ``out`` (.npy) and prints one JSON line ``{"ok": true}`` or ``{"ok": false, "error": ...}``.
Imports only the standard library, numpy, PIL, torch and fastvideo (never relic-suite).
"""
import json
import sys
import traceback

import numpy as np


def _load(kind, weights):
    from fastvideo import VideoGenerator

    return VideoGenerator.from_pretrained(weights, num_gpus=1, use_fsdp_inference=False, dit_cpu_offload=True,
                                          vae_cpu_offload=False, text_encoder_cpu_offload=True, pin_cpu_memory=True)


def _frames(result):
    res = result[0] if isinstance(result, list) else result
    frames = res.get("frames")
    if frames is None:
        raise RuntimeError("fastvideo returned no frames")
    arr = np.stack([np.asarray(f) for f in frames])
    if arr.dtype != np.uint8:
        arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).round().astype(np.uint8)
    return arr


def generate(gen, kind, req):
    import torch

    c = np.load(req["controls"])
    common = dict(prompt=req["prompt"], image_path=req["image"], num_frames=int(req["num_frames"]),
                  height=int(req["height"]), width=int(req["width"]), seed=int(req["seed"]),
                  save_video=False, return_frames=True)
    if kind == "matrix-game-2":
        kb = torch.as_tensor(c["keyboard"], dtype=torch.float32)[None]
        mouse = torch.as_tensor(c["mouse"], dtype=torch.float32)[None]
        # latent grid as in fastvideo's examples/inference/basic/basic_matrixgame2.py: ((T-1)/4+1, H/8, W/8)
        grid = torch.tensor([(int(req["num_frames"]) - 1) // 4 + 1, int(req["height"]) // 8, int(req["width"]) // 8])
        return _frames(gen.generate_video(keyboard_cond=kb, mouse_cond=mouse, grid_sizes=grid, **common))
    if kind == "gamecraft":
        from fastvideo.models.camera.trajectory import _ray_condition

        c2w = torch.as_tensor(c["c2w"], dtype=torch.float32)[None]
        intr = torch.as_tensor(c["intrinsics"], dtype=torch.float32)[None]
        T = c2w.shape[1]
        pl = _ray_condition(intr, c2w, int(req["height"]), int(req["width"]), device="cpu",
                            flip_flag=torch.zeros(T, dtype=torch.bool))
        states = pl[0].permute(0, 3, 1, 2).contiguous()[None].to(dtype=torch.bfloat16)
        return _frames(gen.generate_video(camera_states=states, negative_prompt="", fps=int(req["fps"]), **common))
    raise ValueError(f"unknown kind {kind!r}")


def main():
    kind, weights = sys.argv[1], sys.argv[2]
    gen = None
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            gen = gen or _load(kind, weights)
            np.save(req["out"], generate(gen, kind, req))
            reply = {"ok": True}
        except Exception as e:  # one line back to the adapter; the traceback goes to stderr
            traceback.print_exc(file=sys.stderr)
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}".replace("\n", " ")[:500]}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
