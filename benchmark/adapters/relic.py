"""``relic`` / ``relic-nomem``: the bundled RELIC model (relic_model), with and without memory.

A thin wrapper: ``relic_model.inference.adapter.RelicWorldModel`` implements
:class:`benchmark.world_model.WorldModel`; it is imported lazily so the benchmark works without
relic_model. ``relic-nomem`` is the ablation with the compressed long-horizon memory disabled.
"""
from __future__ import annotations


def make_relic(checkpoint: str | None = None, memory: bool = True, options: str | None = None):
    """``options``: the part after ``@`` in ``relic@budget=12+select=pose`` (memory read budget,
    see relic_model.inference.adapter.parse_memory_options); the model is then named by its spec."""
    try:
        from relic_model.inference.adapter import RelicWorldModel, parse_memory_options
    except ImportError as e:
        raise RuntimeError(f"the RELIC model is not available in this installation ({e}); "
                           "install/build relic_model or leave 'relic' out of --models") from e
    try:
        model = RelicWorldModel(checkpoint=checkpoint, memory=memory, memory_options=parse_memory_options(options))
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{e} (or name one with --models relic:PATH)") from e
    model.name = "relic" if memory else "relic-nomem"
    if options:
        model.name += "@" + options
    return model
