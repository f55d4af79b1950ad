"""datagen: scenes, capture backends (embedded renderer, UnrealCV), trajectories, RELIC action
labels, and the curated on-disk corpus.

    from datagen import Corpus
    c = Corpus.open("path/to/corpus")
"""
from __future__ import annotations


def __getattr__(name):  # lazy, so `import datagen` stays light
    if name in ("Corpus", "Episode"):
        from datagen.corpus import reader

        return getattr(reader, name)
    raise AttributeError(name)


__all__ = ["Corpus", "Episode"]
