"""Image-size presets as (WIDTH, HEIGHT) in pixels; every side divides by 8 (VAE downsampling).

"paper" is RELIC's 480x832 output; "train"/"small"/"medium" are training sizes. Any other size
works with the renderer; these are just names.
"""
RESOLUTIONS: dict[str, tuple[int, int]] = {
    "paper": (832, 480),
    "medium": (416, 240),
    "small": (224, 128),
    "train": (112, 64),
    "tiny": (64, 40),
}
DEFAULT_FOV_DEG = 90.0  # horizontal field of view of the default camera


def resolution(name_or_wxh: str) -> tuple[int, int]:
    """A preset name or a "WxH" string -> (width, height)."""
    if name_or_wxh in RESOLUTIONS:
        return RESOLUTIONS[name_or_wxh]
    try:
        w, h = (int(x) for x in name_or_wxh.lower().split("x"))
    except ValueError:
        raise ValueError(f"resolution {name_or_wxh!r}: use a preset ({', '.join(RESOLUTIONS)}) or WxH, e.g. 832x480")
    if w <= 0 or h <= 0:
        raise ValueError(f"resolution {name_or_wxh!r} must be positive")
    return w, h
