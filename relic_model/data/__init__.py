"""Training data for RELIC: clips sampled from a ``datagen.Corpus`` (with time-reverse
augmentation), per-latent-frame control tensors, and on-disk caches of encoded latents."""
