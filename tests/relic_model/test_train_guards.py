"""The autoencoder's learning-rate schedule and the gradient-spike guard (relic_model/train/common.py)."""
import math

import pytest
import torch

from relic_model.train.common import SpikeGuard, clip_and_step, cosine_lr


def test_cosine_lr_is_constant_before_decay_from_and_reaches_lr_min():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    lr = lambda step, start: (cosine_lr(opt, 1e-3, step, 20, start, 1000, 1e-5), opt.param_groups[0]["lr"])[1]
    assert lr(0, 400) == 1e-3 / 20          # warm-up
    assert lr(399, 400) == 1e-3             # constant until decay_from
    assert lr(400, 400) == 1e-3
    assert math.isclose(lr(700, 400), 1e-5 + 0.5 * (1e-3 - 1e-5))   # half-way
    assert math.isclose(lr(1000, 400), 1e-5) and math.isclose(lr(5000, 400), 1e-5)
    assert lr(999, -1) == 1e-3              # -1: constant
    cosine_lr(opt, 1e-3, 400, 20, 400, 1000, 1e-5, drop=0.2)
    assert math.isclose(opt.param_groups[0]["lr"], 2e-4)   # a step down at decay_from, then the cosine


def test_spike_guard_skips_outliers_and_non_finite_norms_only():
    g = SpikeGuard(10.0, window=100, min_seen=20)
    assert all(g.allow(1.0 + 0.01 * i) for i in range(30))
    assert not g.allow(50.0) and not g.allow(float("nan")) and not g.allow(float("inf"))
    assert g.allow(5.0) and g.skipped == 3
    assert SpikeGuard(0.0).allow(1e9)        # off
    fresh = SpikeGuard(10.0)
    assert fresh.allow(1e6)                  # too few norms seen to judge


def test_spike_guard_stops_a_run_whose_weights_have_diverged():
    g = SpikeGuard(10.0, min_seen=5, max_in_row=3)
    for _ in range(10):
        g.allow(1.0)
    assert not g.allow(100.0) and not g.allow(100.0) and not g.allow(100.0)
    with pytest.raises(RuntimeError, match="diverged"):
        g.allow(100.0)
    assert SpikeGuard(10.0, min_seen=5, max_in_row=3).allow(1.0)


def test_a_skipped_update_leaves_the_weights_and_clears_the_gradient():
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([p], lr=0.1)
    g = SpikeGuard(10.0, min_seen=2)
    for _ in range(3):
        (p * 0.1).sum().backward()
        clip_and_step(opt, [p], 1.0, g)
    before = p.detach().clone()
    (p * 1e4).sum().backward()               # pre-clip norm ~1.7e4 vs a median of ~0.17
    gn = clip_and_step(opt, [p], 1.0, g)
    assert gn > 1e3 and g.skipped == 1
    assert torch.equal(p.detach(), before) and p.grad is None
