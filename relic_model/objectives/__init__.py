"""Training objectives for RELIC: flow matching (teacher, critic), ODE regression (student
initialisation) and DMD (self-forcing distillation). Pure functions on tensors: no networks here.

Conventions (shared with ``relic_model.nn.dit``): ``x_t = (1 - sigma) * x0 + sigma * eps`` with
``sigma`` in [0, 1] per latent frame, the network predicts the velocity ``v = eps - x0``, so the
clean estimate is ``x0_hat = x_t - sigma * v``. Latent frame 0 is the clean first-image latent
(sigma 0) and is excluded from every loss.
"""
