"""Benchmark metrics, one module per family; each module's docstring gives the exact definitions.

- image_quality: full-reference PSNR / SSIM / LPIPS (per frame, optionally masked).
- noref: no-reference image statistics (sharpness, luminance, colourfulness, saturation).
- rpe: action following (Sim(3)-aligned relative pose error computed with evo).
- retrieval: spatial-memory retrieval on revisit pairs (incl. co-visible region masks).
- drift: long-horizon curves over fixed time windows and their slope / ratio summaries.
"""
