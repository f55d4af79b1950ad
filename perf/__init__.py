"""Speed and memory measurement scripts for datagen, relic_model and benchmark (top level, above
all three packages). Each script writes its results under reports/ and says how it was run; run
them from the repository root, as ``python perf/NAME.py`` or ``python -m perf.NAME``."""
