"""Rollout pipelines: teacher ODE sampling, self-forcing block-wise rollout, and replayed
back-propagation. They drive networks through small interfaces (``BlockGenerator`` and velocity
callables), so they are independent of the exact network classes."""
