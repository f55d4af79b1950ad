"""The bidirectional stage-2 teacher as a sampler, outside training.

- ``load_teacher(weights, cfg, text_encoder)``: the teacher DiT from a teacher stage checkpoint
  (``teacher.*`` tensors, e.g. ``RUN/teacher/final/model.safetensors``) and a copy of the text
  encoder carrying the ``text.*`` layers trained jointly with it.
- ``teacher_video(...)``: one clip sampled by the probability-flow ODE (``steps`` Euler steps) from
  seeded noise, conditioned exactly as in training (:func:`relic_model.nn.control.latent_controls`,
  poses integrated from the actions in label units), decoded with the checkpoint's autoencoder.

Used by the benchmark's probes (``benchmark.probes.still_shot``,
``benchmark.probes.action_following``).
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from relic_model.inference.streaming import to_model_image, to_uint8_frames
from relic_model.nn.control import integrate_actions, latent_controls
from relic_model.nn.dit import RelicDiT
from relic_model.pipelines.teacher_sampling import sample_ode


def load_teacher(weights: str | Path, cfg, text_encoder):
    """(teacher DiT, its text encoder) from a stage-2 checkpoint (keys ``teacher.*``; the ``text.*``
    layers trained jointly with it go into a copy of ``text_encoder``, which is left unchanged)."""
    sd = load_file(str(weights))
    t = {k[len("teacher."):]: v for k, v in sd.items() if k.startswith("teacher.")}
    if not t:
        raise ValueError(f"{weights}: no 'teacher.' tensors (expected a teacher stage checkpoint, "
                         "e.g. RUN/teacher/final/model.safetensors)")
    teacher = RelicDiT(cfg)
    teacher.load_state_dict(t)
    text = copy.deepcopy(text_encoder)
    layers = {k[len("text."):]: v for k, v in sd.items() if k.startswith("text.")}
    if layers:
        text.load_state_dict(layers, strict=False)
    return teacher.eval(), text


@torch.no_grad()
def teacher_video(teacher, ae, text_encoder, cfg, first_frame: np.ndarray, prompt: str, actions: np.ndarray,
                  steps: int = 16, seed: int = 0) -> np.ndarray:
    """uint8 (1 + len(actions), H, W, 3): the teacher's ODE sample for these actions (frame 0 = given)."""
    n = len(actions) + 1
    z0 = ae.encode(to_model_image(first_frame, cfg.data.height, cfg.data.width)[None, None])
    c2w = np.concatenate([np.eye(4)[None], integrate_actions(actions, 1.0, np.eye(4))])
    a_lat, p_lat = latent_controls(actions, c2w[:, :3, :4].reshape(n, 12), cfg.autoencoder.temporal_factor)
    a_lat, p_lat = torch.from_numpy(a_lat)[None], torch.from_numpy(p_lat)[None]
    text = text_encoder.encode_text([prompt])
    noise = torch.randn((1, a_lat.shape[1] - 1, *z0.shape[2:]), generator=torch.Generator().manual_seed(seed))
    x, _ = sample_ode(lambda x, s: teacher(x, s, text, a_lat, p_lat, "bidirectional"), noise, z0, num_steps=steps)
    out = to_uint8_frames(ae.decode(x)[0], first_frame.shape[:2])
    out[0] = first_frame
    return out
