"""Measure autograd memory: bytes of tensors saved for backward that are alive at once.

``SavedTensorMeter`` installs ``torch.autograd.graph.saved_tensors_hooks``; every tensor the
autograd engine saves for backward is counted once per distinct storage (so views and repeated
saves of one tensor are not double counted) while any graph still references it, and
``peak_bytes`` is the maximum of the live total. Leaf parameters (``requires_grad`` leaves) are
not counted: they exist regardless of the graph. This is the quantity replayed back-propagation
bounds (activations of about one block) independent of allocator behaviour.
"""
from __future__ import annotations

import torch


class _Handle:
    __slots__ = ("t", "meter", "key")

    def __init__(self, t, meter, key):
        self.t, self.meter, self.key = t, meter, key

    def __del__(self):
        if self.key is not None:
            self.meter._release(self.key)


class SavedTensorMeter:
    def __init__(self):
        self.live_bytes = 0
        self.peak_bytes = 0
        self._refs: dict[int, list[int]] = {}  # storage ptr -> [refcount, bytes]

    def _pack(self, t: torch.Tensor):
        if t.is_leaf and t.requires_grad:
            return _Handle(t, self, None)
        st = t.untyped_storage()
        key = st.data_ptr()
        ent = self._refs.get(key)
        if ent is None:
            self._refs[key] = [1, st.nbytes()]
            self.live_bytes += st.nbytes()
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        else:
            ent[0] += 1
        return _Handle(t, self, key)

    @staticmethod
    def _unpack(h: _Handle):
        return h.t

    def _release(self, key):
        ent = self._refs.get(key)
        if ent is None:
            return
        ent[0] -= 1
        if ent[0] == 0:
            self.live_bytes -= ent[1]
            del self._refs[key]

    def __enter__(self):
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)
        return False


def torch_cpu_peak_bytes(fn, *args, **kwargs) -> tuple[int, object]:
    """Peak of torch's CPU allocations made while ``fn(*args, **kwargs)`` runs, above what was
    allocated when it started (bytes), and ``fn``'s result.

    Measured with the torch profiler (``profile_memory=True``): every CPU allocator event
    (``[memory]``, +bytes on allocation, -bytes on free) is replayed in time order and the maximum
    running sum is returned. Tensors alive before the call and not freed inside count 0; frees of
    such tensors inside the call lower the running sum. This is torch's own allocation accounting
    (not RSS), so it is deterministic for a deterministic ``fn``."""
    import logging
    from torch.profiler import ProfilerActivity, profile
    logging.getLogger("torch.profiler").setLevel(logging.ERROR)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn(*args, **kwargs)
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and str(e.device_type()).lower().endswith("cpu")]
    events.sort(key=lambda e: e.start_ns())
    cur = peak = 0
    for e in events:
        cur += int(e.nbytes())
        peak = max(peak, cur)
    return peak, out
