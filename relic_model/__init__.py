"""relic_model: reference implementation of RELIC (networks, objectives, rollout pipelines,
trainers, streaming inference)."""
