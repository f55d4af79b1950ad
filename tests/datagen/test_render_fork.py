"""A renderer used in a forked child (the corpus build's workers are forked on Linux) must not wait on
the shading thread pool its parent created: the child inherits the pool object but not its threads.
Renders in the parent first (pool threads started), then in a forked child, with a timeout; the
child's image equals the parent's."""
import multiprocessing as mp
import sys

import numpy as np
import pytest

from datagen.conventions import intrinsics_from_fov, look_at
from datagen.render.renderer import Renderer
from datagen.scenes.library import generate_scene

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork start method")


def _render(r: Renderer) -> np.ndarray:
    c2w = look_at((0.0, 0.0, 1.5), (1.0, 0.3, 1.4))
    return r.render(c2w, intrinsics_from_fov(96, 64, 90.0), 96, 64, ("rgb", "depth")).rgb


def _child(r_before, q):
    q.put((_render(r_before), _render(Renderer(generate_scene("apartment", 0), threads=2))))


def test_render_after_fork_does_not_hang_and_matches():
    scene = generate_scene("apartment", 0)
    r = Renderer(scene, threads=2)
    ref = _render(r)                      # starts the parent's pool threads
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(r, q))
    p.start()
    try:
        before, fresh = q.get(timeout=120)
    finally:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
    assert np.array_equal(before, ref) and np.array_equal(fresh, ref)
