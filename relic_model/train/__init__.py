"""RELIC training: the shared loop (resume, logs, samples, checkpoints), the four stages
(autoencoder, teacher, student_init, distill), torch.distributed setup, and the final bundle.
See relic_model/README.md, section Training."""
