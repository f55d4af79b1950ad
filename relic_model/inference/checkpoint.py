"""RELIC checkpoint directory: ``config.yaml`` + ``model.safetensors``.

``model.safetensors`` holds the state dicts of the three networks with key prefixes ``dit.``,
``autoencoder.`` and ``text.``; ``config.yaml`` is :func:`relic_model.config.save_config` output.
Both files are written atomically (:func:`datagen.atomic.atomic_write`).
"""
from __future__ import annotations

from pathlib import Path

from datagen.atomic import atomic_write
from relic_model.config import RelicConfig, load_config, save_config
from relic_model.nn.autoencoder import VideoAutoencoder
from relic_model.nn.dit import RelicDiT
from relic_model.nn.text import TextEncoder

BUNDLED = Path(__file__).resolve().parents[1] / "checkpoints" / "relic_tiny"
PREFIXES = ("dit", "autoencoder", "text")


def save_checkpoint(directory, cfg: RelicConfig, dit, autoencoder, text_encoder, extra: dict | None = None) -> Path:
    """Write ``directory/config.yaml`` and ``directory/model.safetensors``; returns the directory.
    ``extra``: optional {name: tensor} saved under the ``extra.`` prefix."""
    from safetensors.torch import save_file
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for prefix, mod in zip(PREFIXES, (dit, autoencoder, text_encoder)):
        for k, v in mod.state_dict().items():
            tensors[f"{prefix}.{k}"] = v.detach().to("cpu").contiguous().clone()
    for k, v in (extra or {}).items():
        tensors[f"extra.{k}"] = v.detach().to("cpu").contiguous().clone()
    atomic_write(d / "model.safetensors",
                 lambda tmp: save_file(tensors, str(tmp), metadata={"format": "relic-checkpoint", "name": cfg.name}))
    save_config(cfg, d / "config.yaml")
    return d


def build_models(cfg: RelicConfig, device="cpu"):
    """Fresh (randomly initialised, seeded by torch's global RNG) dit, autoencoder, text encoder."""
    return RelicDiT(cfg).to(device), VideoAutoencoder(cfg).to(device), TextEncoder(cfg.text).to(device)


def load_checkpoint(directory=None, device="cpu"):
    """Load ``(cfg, dit, autoencoder, text_encoder)`` (eval mode) from a checkpoint directory
    (default: the bundled ``relic_model/checkpoints/relic_tiny``)."""
    from safetensors.torch import load_file
    d = Path(directory) if directory is not None else BUNDLED
    if d.is_file() and d.name == "model.safetensors":
        d = d.parent
    cfg_p, w_p = d / "config.yaml", d / "model.safetensors"
    if not cfg_p.exists() or not w_p.exists():
        what = "the bundled RELIC checkpoint" if directory is None else f"RELIC checkpoint {d}"
        raise FileNotFoundError(f"{what} is missing ({cfg_p.name} and {w_p.name} expected in {d}); "
                                "train one with `relic train all --config relic_model/configs/tiny.yaml` "
                                "or pass a checkpoint directory")
    cfg = load_config(cfg_p)
    dit, ae, text = build_models(cfg, "cpu")
    tensors = load_file(str(w_p))
    for prefix, mod in zip(PREFIXES, (dit, ae, text)):
        sd = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        missing, unexpected = mod.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise RuntimeError(f"checkpoint {w_p} does not match its config for '{prefix}': "
                               f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    dit.set_frame_scale(cfg.dit.rope_frame_scale)
    return cfg, dit.to(device).eval(), ae.to(device).eval(), text.to(device).eval()


__all__ = ["save_checkpoint", "load_checkpoint", "build_models", "BUNDLED"]
