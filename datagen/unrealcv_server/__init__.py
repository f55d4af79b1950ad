"""UnrealCV-protocol server over a capture backend (the embedded renderer by default).

Modules: :mod:`.protocol` (framing), :mod:`.encoding` (png/bmp/npy bytes, instance colours),
:mod:`.commands` (command table, parsing, dispatch in UE units), :mod:`.server` (TCP loop),
:mod:`.cli` (``relic datagen serve``).
"""
