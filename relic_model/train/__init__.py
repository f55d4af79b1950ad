"""RELIC training: the shared loop (resume, logs, samples, checkpoints), the four stages
(autoencoder, teacher, student_init, distill), and the final bundle (torch.distributed setup
is relic_model/distributed.py, shared with the generator pipelines and the latent cache).
See relic_model/README.md, section Training."""
