"""Where does the first view get lost? Latent-space and per-noise-level measurements (issue 20).

1. Latent spaces of the autoencoder: for frames of a benchmark suite (every ``stride``-th frame of
   every task), latent 0 of the frame alone vs the group latent of a still clip of that frame:
   RMSE, per-channel correlation, and how well a linear map over 3x3 latent neighbourhoods
   (least squares on even images, scored on odd ones) turns one into the other; decoding latent 0
   copied into the group slots ("copy") and the linearly mapped latent 0 ("linear map") shows what
   a DiT that copies / linearly re-encodes the first frame would render (PSNR vs frame 0).
2. The student's one-step clean estimate for the first block after frame 0 at each sampler noise
   level ``s``: input ``(1 - s) z_still + s eps`` (the right answer, noised), output
   ``x0_hat = x - s v``; latent RMSE to the still latent and decoded PSNR vs frame 0.

    python -m benchmark.probes.first_frame_latents --suite SUITE_DIR [--checkpoint DIR]
"""
from __future__ import annotations

import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.probes.still_shot import ae_reference, psnr_u8, static_actions
from benchmark.tasks.io import load_suite
from relic_model.inference.checkpoint import load_checkpoint
from relic_model.inference.streaming import StreamingGenerator, to_model_image, to_uint8_frames


@torch.inference_mode()
def latent_spaces(ae, frames: list[np.ndarray], firsts: list[np.ndarray]) -> dict:
    H, W = ae.cfg.data.height, ae.cfg.data.width
    z0s, zgs = [], []
    for f in frames:
        img = to_model_image(f, H, W)
        z = ae.encode(img[None, None].expand(1, 1 + ae.tf, *img.shape))
        z0s.append(z[0, 0])
        zgs.append(z[0, 1])
    X0, XG = torch.stack(z0s), torch.stack(zgs)
    C, h, w = X0.shape[1:]
    corr = [float(torch.corrcoef(torch.stack([X0[:, c].flatten(), XG[:, c].flatten()]))[0, 1]) for c in range(C)]
    A = F.unfold(X0, 3, padding=1).permute(0, 2, 1).reshape(-1, 9 * C)
    A = torch.cat([A, torch.ones(len(A), 1)], 1)
    B = XG.flatten(2).permute(0, 2, 1).reshape(-1, C)
    img_id = torch.arange(len(frames)).repeat_interleave(h * w)
    tr = img_id % 2 == 0
    Wm = torch.linalg.lstsq(A[tr], B[tr]).solution
    lin_rmse = float((A[~tr] @ Wm - B[~tr]).pow(2).mean().sqrt())
    copy_p, lin_p = [], []
    for f in firsts:
        z0 = ae.encode(to_model_image(f, H, W)[None, None])
        v = to_uint8_frames(ae.decode(z0.expand(1, 1 + 4, *z0.shape[2:]))[0])
        copy_p.append(np.mean([psnr_u8(x, f) for x in v[1:]]))
        p = F.unfold(z0[0], 3, padding=1).permute(0, 2, 1).reshape(-1, 9 * C)
        zg = (torch.cat([p, torch.ones(len(p), 1)], 1) @ Wm).reshape(1, h, w, C).permute(0, 3, 1, 2)
        v = to_uint8_frames(ae.decode(torch.cat([z0, zg[None].expand(1, 4, C, h, w)], 1))[0])
        lin_p.append(np.mean([psnr_u8(x, f) for x in v[1:]]))
    return {"images": len(frames), "rmse_latent0_vs_still": float((X0 - XG).pow(2).mean().sqrt()),
            "std_latent0": float(X0.std()), "std_still": float(XG.std()), "channel_corr": corr,
            "linear3x3_rmse": lin_rmse, "copy_psnr": float(np.mean(copy_p)), "linear_map_psnr": float(np.mean(lin_p))}


@torch.inference_mode()
def per_sigma(dit, ae, text, cfg, firsts: list[tuple[np.ndarray, str]], seed: int = 1) -> list[dict]:
    rows = []
    for s in [float(x) for x in cfg.sampling.sigmas]:
        errs, ps = [], []
        for f, prompt in firsts:
            _, _, zs = ae_reference(ae, cfg, f, ae.tf)
            gen = StreamingGenerator(dit, ae, text, cfg)
            gen.reset(f, prompt, seed=0)
            a, p = gen._block_controls(static_actions(ae.tf))
            eps = torch.randn(zs[:, 1:2].shape, generator=torch.Generator().manual_seed(seed))
            x = (1 - s) * zs[:, 1:2] + s * eps
            v = dit(x, torch.full((1, 1), s), text=gen.text, actions=a, poses=p, attn_mode="block_causal",
                    cache=gen.cache, frame_offset=1)
            x0 = x - s * v
            errs.append(float((x0 - zs[:, 1:2]).pow(2).mean().sqrt()))
            fr = to_uint8_frames(ae.decode(torch.cat([zs[:, :1], x0], 1))[0])
            ps.append(np.mean([psnr_u8(y, f) for y in fr[1:]]))
        rows.append({"sigma": s, "latent_rmse": float(np.mean(errs)), "psnr_vs_f0": float(np.mean(ps))})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--suite", required=True)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--stride", type=int, default=8, help="every stride-th frame of every task")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    cfg, dit, ae, text = load_checkpoint(a.checkpoint, "cpu")
    frames, firsts = [], []
    for t in load_suite(a.suite).tasks:
        fr = t.gt_frames()
        frames += [np.ascontiguousarray(fr[i]) for i in range(0, len(fr), a.stride)]
        firsts.append((np.ascontiguousarray(fr[0]), t.prompt))
        t.release()
    ls = latent_spaces(ae, frames, [f for f, _ in firsts])
    print("latent spaces:", {k: (np.round(v, 3).tolist() if isinstance(v, list) else round(v, 3) if isinstance(v, float)
                                 else v) for k, v in ls.items()})
    for r in per_sigma(dit, ae, text, cfg, firsts):
        print(f"sigma {r['sigma']:.2f}: x0_hat latent RMSE vs still latent {r['latent_rmse']:.3f}, "
              f"decoded PSNR vs frame 0 {r['psnr_vs_f0']:.2f} dB")
    print(f"(load average {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
