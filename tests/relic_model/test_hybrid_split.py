"""Hybrid forcing with a random clean prefix (issue 20): the student's ODE regression must also
train the blocks right after the first image, which the paper's fixed split never does."""
import pytest
import torch

from relic_model.objectives.ode_regression import hybrid_forcing_levels, hybrid_split


def test_fixed_split_never_trains_the_first_blocks():
    g = torch.Generator().manual_seed(0)
    assert {hybrid_split(6, 2, False, g) for _ in range(50)} == {4}
    idx, clean, loss = hybrid_forcing_levels(2, 6, 1, 2, 4, g)
    assert idx.shape == (2, 7) and not loss[:, :5].any() and loss[:, 5:].all()


def test_random_prefix_covers_every_position_including_block_1():
    g = torch.Generator().manual_seed(0)
    seen = {hybrid_split(6, 2, True, g) for _ in range(200)}
    assert seen == {0, 1, 2, 3, 4}
    idx, clean, loss = hybrid_forcing_levels(3, 6, 2, 2, 4, g, clean_blocks=0)
    assert idx.shape == (3, 1 + 2 * 2)                   # frame 0 + the two noisy blocks only
    assert clean[:, 0].all() and loss[:, 1:].all()       # the first block after frame 0 is trained
    assert ((idx[:, 1:3] == idx[:, 1:2]).all() and (idx[:, 3:5] == idx[:, 3:4]).all())   # one level per block


def test_clean_blocks_out_of_range():
    with pytest.raises(ValueError, match="clean_blocks"):
        hybrid_forcing_levels(1, 6, 1, 2, 4, clean_blocks=5)
