"""Objectives (flow matching, ODE regression, DMD) and the teacher ODE sampler."""
import pytest
import torch

from relic_model.objectives.dmd import cfg_combine, dmd_gradient, dmd_loss, dmd_output_grad
from relic_model.objectives.flow_matching import (add_noise, first_frame_clean_sigma, flow_matching_loss,
                                                  sample_sigma, shift_sigma, velocity_target, x0_from_velocity)
from relic_model.objectives.ode_regression import hybrid_forcing_levels, ode_regression_loss
from relic_model.pipelines.teacher_sampling import sample_ode, sigma_grid, student_timesteps




def _t(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_flow_matching_identities():
    x0, eps = _t(2, 3, 4, 5, 6), _t(2, 3, 4, 5, 6, seed=1)
    sigma = torch.rand(2, 3, dtype=torch.float64)
    xt = add_noise(x0, eps, sigma)
    v = velocity_target(x0, eps)
    torch.testing.assert_close(x0_from_velocity(xt, sigma, v), x0)
    torch.testing.assert_close(add_noise(x0, eps, torch.zeros(2, 3, dtype=torch.float64)), x0)
    assert float(flow_matching_loss(v, x0, eps)) == 0.0
    mask = torch.zeros(2, 3, dtype=torch.bool)
    mask[:, 1:] = True
    bad = v.clone()
    bad[:, 0] += 5.0  # errors on masked-out frames do not count
    assert float(flow_matching_loss(bad, x0, eps, mask)) == 0.0
    bad[:, 2] += 1.0
    assert abs(float(flow_matching_loss(bad, x0, eps, mask)) - 0.5) < 1e-12


def test_sigma_sampling_and_shift():
    s = sample_sigma((4000,), torch.Generator().manual_seed(0), shift=3.0)
    assert float(s.min()) > 0 and float(s.max()) < 1
    s1 = sample_sigma((4000,), torch.Generator().manual_seed(0), shift=1.0)
    assert float(s.mean()) > float(s1.mean()) + 0.1  # shift > 1 moves mass to high noise
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert torch.all(torch.diff(shift_sigma(t, 3.0)) > 0)
    sig = first_frame_clean_sigma(torch.tensor([0.3, 0.9]), 4)
    assert sig.shape == (2, 4) and float(sig[:, 0].abs().sum()) == 0 and abs(float(sig[1, 3]) - 0.9) < 1e-6


def test_hybrid_forcing_levels_layout():
    idx, clean, loss = hybrid_forcing_levels(3, num_blocks=5, block_frames=2, num_noisy_blocks=2,
                                             num_student_steps=4, generator=torch.Generator().manual_seed(0))
    assert idx.shape == (3, 11)
    assert bool(clean[:, :7].all()) and not bool(clean[:, 7:].any())
    assert bool((idx[:, 7:] >= 0).all()) and bool((idx[:, 7:] < 4).all())
    assert bool((idx[:, 7] == idx[:, 8]).all()) and bool((idx[:, 9] == idx[:, 10]).all())  # one level per block
    assert torch.equal(loss, ~clean)


def test_ode_regression_loss_masks():
    a, b = _t(2, 4, 1, 2, 2), _t(2, 4, 1, 2, 2, seed=3)
    m = torch.tensor([[False, True, True, False], [False, False, True, True]])
    ref = ((a - b) ** 2)[m].mean()
    torch.testing.assert_close(ode_regression_loss(a, b, m), ref)


def test_dmd_gradient_is_the_surrogate_gradient():
    x = _t(2, 4, 3, 2, 2).requires_grad_(True)
    real, fake = _t(2, 4, 3, 2, 2, seed=5), _t(2, 4, 3, 2, 2, seed=6)
    mask = torch.ones(2, 4, dtype=torch.bool)
    mask[:, 0] = False
    g = dmd_gradient(x, real, fake, mask)
    assert float(g[:, 0].abs().sum()) == 0.0
    # normalisation: g * mean|x - real| over loss frames == fake - real
    norm = (x.detach() - real).abs()[:, 1:].flatten(1).mean(1)
    torch.testing.assert_close(g[:, 1:] * norm[:, None, None, None, None], (fake - real)[:, 1:])
    loss = dmd_loss(x, g, mask)
    loss.backward()
    torch.testing.assert_close(x.grad, dmd_output_grad(g, mask))
    assert abs(float(loss) - 0.5 * float(g[:, 1:].pow(2).mean())) < 1e-12
    assert float(dmd_gradient(x, real, real, mask).abs().sum()) == 0.0  # matched scores: no update
    torch.testing.assert_close(cfg_combine(real, fake, 1.0), real)
    torch.testing.assert_close(cfg_combine(real, fake, 3.0), fake + 3 * (real - fake))


def test_teacher_ode_with_exact_velocity_reaches_the_data_point():
    """For the straight-line flow to one data point x* (v = (x_t - x*) / sigma), Euler is exact:
    the sampler ends at x*, and the recorded states are (1 - t) x* + t eps."""
    xstar, eps = _t(1, 3, 2, 2, 2), _t(1, 3, 2, 2, 2, seed=9)
    first = xstar[:, :1]
    levels = student_timesteps(4)
    assert levels == [1.0, 0.75, 0.5, 0.25]

    def v(x, s):
        s = s[..., None, None, None]
        return torch.where(s > 0, (x - xstar) / s.clamp_min(1e-12), torch.zeros_like(x))
    x0, states = sample_ode(v, eps[:, 1:], first, num_steps=6, record=levels)
    torch.testing.assert_close(x0, xstar, rtol=0, atol=1e-12)
    for l in levels:
        exp = (1 - l) * xstar[:, 1:] + l * eps[:, 1:]
        torch.testing.assert_close(states[l][:, 1:], exp, rtol=0, atol=1e-12)
        torch.testing.assert_close(states[l][:, :1], first)  # frame 0 stays clean
    g = sigma_grid(6, 1.0, levels)
    assert g[0] == 1.0 and g[-1] == 0.0 and all(l in g for l in levels)
