"""Probes: one-off measurements of a model on the tasks of a benchmark suite (held-out scenes),
scored with the benchmark's estimator and metrics or with their own numbers (each module is its own
``python -m benchmark.probes.NAME`` command and documents its method in its docstring):
action_following (teacher vs student), still_shot (does the model keep the first view),
first_frame_latents (where the first view gets lost), ae_psnr (autoencoder reconstruction),
training_report (losses and probe metrics of a training run against step, per stage)."""
