"""RELIC network modules: autoencoder, diffusion transformer, attention, RoPE, control encoders,
the two-branch KV memory and the offline text encoder."""
