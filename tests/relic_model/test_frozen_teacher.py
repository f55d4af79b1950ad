"""The frozen teacher of student init / distillation held cheaply (relic_model/train/frozen_teacher.py):
bf16 parameters close to the fp32 teacher within a stated tolerance, FSDP2-sharded over 2 gloo
processes equal to the unsharded teacher (fp32 and bf16), and the two stages under torchrun with
``teacher_dtype: bf16, teacher_shard: true`` producing the same teacher trajectories as one process."""
from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from relic_model.config import load_config
from relic_model.distributed import DistInfo
from relic_model.nn.dit import RelicDiT
from relic_model.train.frozen_teacher import prepare_frozen_teacher, teacher_bytes
from relic_model.train.stage_student_init import merge_trajectory_parts

ROOT = Path(__file__).resolve().parents[2]
#: bf16 teacher vs fp32 teacher: relative L2 error of the velocity (measured 0.0075 on this model)
BF16_REL_TOL = 0.03


def _model_and_inputs(seed=0, B=2, F=5):
    cfg = load_config("tiny")
    cfg.dit.dim, cfg.dit.depth, cfg.dit.heads = 64, 3, 4
    cfg.validate()
    torch.manual_seed(seed)
    m = RelicDiT(cfg)
    for p in m.parameters():            # non-zero adaLN gates: every block contributes
        if p.dim() == 2 and p.shape[0] == 6:
            torch.nn.init.normal_(p, std=0.05)
    g = torch.Generator().manual_seed(seed + 1)
    C, h, w = cfg.autoencoder.latent_channels, cfg.data.height // 8, cfg.data.width // 8
    x = torch.randn(B, F, C, h, w, generator=g)
    sig = torch.rand(B, F, generator=g)
    sig[:, 0] = 0
    args = (x, sig, torch.randn(B, 5, cfg.text.dim, generator=g), torch.rand(B, F, 4, 13, generator=g),
            torch.randn(B, F, 4, 12, generator=g) * 0.1, "bidirectional")
    return m.eval(), args


def test_bf16_teacher_close_to_fp32_and_half_the_bytes():
    m, args = _model_and_inputs()
    with torch.no_grad():
        ref = m(*args)
        t = prepare_frozen_teacher(copy.deepcopy(m), DistInfo(), "bf16", shard=True)   # one process: no shard
        out = t(*args)
    assert {p.dtype for p in t.parameters()} == {torch.bfloat16}
    assert all(b.dtype == torch.float32 for b in t.buffers())          # control-encoder scales stay fp32
    assert not any(p.requires_grad for p in t.parameters()) and not t.training
    assert teacher_bytes(t) * 2 == teacher_bytes(m)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    rel = float((out - ref).norm() / ref.norm())
    assert 1e-5 < rel < BF16_REL_TOL, rel                              # really bf16, and close
    with pytest.raises(ValueError, match="teacher_dtype"):
        prepare_frozen_teacher(copy.deepcopy(m), DistInfo(), "fp16")


def test_trajectory_parts_merge_in_clip_order_and_must_cover_every_clip():
    x0 = torch.arange(5.0)[:, None] * torch.ones(5, 3)
    xt = x0[:, None].repeat(1, 2, 1)
    parts = [{"x0": x0[[3, 4]], "xt": xt[[3, 4]], "index": torch.tensor([3, 4])},
             {"x0": x0[[0, 1, 2]], "xt": xt[[0, 1, 2]], "index": torch.tensor([0, 1, 2])}]
    m = merge_trajectory_parts(parts, 5)
    assert torch.equal(m["x0"], x0) and torch.equal(m["xt"], xt)
    with pytest.raises(RuntimeError, match="expected 0..5"):
        merge_trajectory_parts(parts, 6)


SHARD_WORKER = r'''
import copy, sys, torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor
sys.path.insert(0, sys.argv[2])
from test_frozen_teacher import _model_and_inputs
from relic_model.distributed import init_distributed, is_sharded
from relic_model.train.frozen_teacher import prepare_frozen_teacher, teacher_bytes
torch.set_num_threads(1)
info = init_distributed("cpu")
assert info.world_size == 2 and info.backend == "gloo"
m, args = _model_and_inputs()
r = slice(info.rank, info.rank + 1)                   # different rows on each rank
mine = tuple(a[r] if torch.is_tensor(a) else a for a in args)
res = {}
for dt in ("fp32", "bf16"):
    ref = prepare_frozen_teacher(copy.deepcopy(m), info, dt, shard=False)
    sh = prepare_frozen_teacher(copy.deepcopy(m), info, dt, shard=True)
    assert is_sharded(sh) and not is_sharded(ref)
    with torch.no_grad():
        for it in range(2):                           # twice: the state after a no-grad forward works
            a, b = ref(*mine), sh(*mine)
            res[f"{dt}{it}"] = torch.stack([a, b])
            # every parameter (the root's too) is resharded after the forward
            assert all(isinstance(p, DTensor) for p in sh.parameters()), dt
    res[f"{dt}_bytes"] = torch.tensor([teacher_bytes(ref), teacher_bytes(sh)])
torch.save(res, f"{sys.argv[1]}/rank{info.rank}.pt")
dist.barrier()
dist.destroy_process_group()
'''


def _torchrun(script: Path, *args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           *map(str, args)]
    r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-4000:]


def test_sharded_teacher_two_gloo_ranks_equals_unsharded(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(SHARD_WORKER)
    _torchrun(script, tmp_path, Path(__file__).parent)
    for rank in (0, 1):
        res = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for dt in ("fp32", "bf16"):
            for it in (0, 1):
                ref, sh = res[f"{dt}{it}"]
                assert float(ref.abs().max()) > 1e-2
                torch.testing.assert_close(sh, ref, rtol=1e-5, atol=1e-6, msg=f"rank {rank} {dt} call {it}")
            full, local = res[f"{dt}_bytes"].tolist()
            assert abs(local - full / 2) <= 0.01 * full, (dt, full, local)   # half the parameters per rank
        assert res["bf16_bytes"][0] * 2 == res["fp32_bytes"][0]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)["fp320"][0]
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)["fp320"][0]
    assert not torch.allclose(r0, r1)                  # the ranks really fed different rows


# FSDP2 student/critic as in the GPU configs (with checkpointing: the configs' setting; student init's
# cache committed with autograd needs it under FSDP2), bf16 sharded teacher
CHEAP = {"teacher_dtype": "bf16", "teacher_shard": True, "dist": "fsdp", "activation_checkpointing": True}
LATER = {"student_init": {"steps": 1, "batch": 2, "trajectories": 12, "ode_steps": 2, "sample_every": 0},
         "distill": {"curriculum": [{"num_blocks": 2, "steps": 1}], "batch": 2, "gen_update_every": 1, "lr_gen": 1e-2,
                     "warmup": 1, "sample_every": 0}}

STAGE_WORKER = r'''
import sys, torch
import torch.distributed as dist
from relic_model.train.common import RunContext
from safetensors.torch import save_file
from relic_model.distributed import full_state_dict, init_distributed, is_sharded
from relic_model.train.frozen_teacher import teacher_bytes
from relic_model.train.loop import run_stage
from relic_model.train.presets import micro_config
from relic_model.train.run import make_stage, run_stage_named
torch.set_num_threads(1)
corpus, out, top, later = sys.argv[1], sys.argv[2], eval(sys.argv[3]), eval(sys.argv[4])
info = init_distributed("cpu")
cfg = micro_config(**later)
cfg.train.update(top)
ctx = RunContext(cfg, corpus, out, info, progress=False)
run_stage_named(ctx, "student_init")
st = make_stage(ctx, "distill", None)
assert is_sharded(st.teacher) and {p.dtype for p in st.teacher.parameters()} == {torch.bfloat16}
full = sum(p.numel() for p in st.fake.parameters()) * 2
assert abs(teacher_bytes(st.teacher) - full / 2) < 0.05 * full, (teacher_bytes(st.teacher), full)
run_stage(st, ctx.stage_dir("distill"), st.cfg, st.total_steps, ckpt_every=10, sample_every=0, info=ctx.info,
          progress=False)
sd = full_state_dict(st.student)                      # collective
if info.is_main:
    save_file({k: v.contiguous() for k, v in sd.items()}, f"{out}/distilled_student.safetensors")
dist.barrier()
dist.destroy_process_group()
'''


def test_student_init_and_distill_with_bf16_sharded_teacher_two_gloo_ranks(tmp_path):
    from relic_model.data.synthetic import write_synthetic_corpus
    from relic_model.train.common import RunContext
    from relic_model.train.presets import micro_config
    from relic_model.train.run import run_stage_named
    corpus = write_synthetic_corpus(tmp_path / "corpus", episodes=2, frames=30, height=32, width=48)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                          # the workers' thread count
    try:
        base = RunContext(micro_config(), corpus, tmp_path / "one", progress=False)
        run_stage_named(base, "autoencoder")
        run_stage_named(base, "teacher")
        shutil.copytree(tmp_path / "one", tmp_path / "two")
        cfg = micro_config(**LATER)
        cfg.train.update(teacher_dtype="bf16")        # one process: the same bf16 teacher, unsharded
        run_stage_named(RunContext(cfg, corpus, tmp_path / "one", progress=False), "student_init")
    finally:
        torch.set_num_threads(threads)
    script = tmp_path / "worker.py"
    script.write_text(STAGE_WORKER)
    _torchrun(script, corpus, tmp_path / "two", repr(CHEAP), repr(LATER))
    ode = lambda d: sorted((tmp_path / d / "cache").glob("ode_*.safetensors"))
    assert [p.name for p in ode("one")] == [p.name for p in ode("two")] and len(ode("two")) == 1
    assert not list((tmp_path / "two/cache").glob("*.part*"))                 # parts merged and removed
    a, b = load_file(str(ode("one")[0])), load_file(str(ode("two")[0]))
    assert a["x0"].shape[0] == 12                      # batches 0-7 (rank 0) and 8-11 (rank 1)
    for k in ("x0", "xt"):
        rel = (b[k] - a[k]).flatten(1).norm(dim=1) / a[k].flatten(1).norm(dim=1)
        assert float(rel.max()) < 1e-3, (k, rel)       # the same clips in the same rows, same teacher
    si = load_file(str(tmp_path / "two/student_init/final/model.safetensors"))
    dd = load_file(str(tmp_path / "two/distilled_student.safetensors"))
    assert dd.keys() == {k[len("student."):] for k in si}
    assert max(float((dd[k[len("student."):]] - v).abs().max()) for k, v in si.items()) > 1e-4   # a DMD step moved it


def test_device_check_script_runs_on_cpu(tmp_path):
    """perf/check_frozen_teacher.py (run on a GPU for the README's numbers) at tiny size."""
    import json
    from perf.check_frozen_teacher import main
    threads = torch.get_num_threads()
    try:
        assert main(["--device", "cpu", "--config", "tiny", "--frames", "3", "--skip-stages", "--out",
                     str(tmp_path / "r.json")]) == 0
    finally:
        torch.set_num_threads(threads)
    r = json.loads((tmp_path / "r.json").read_text())
    d = r["dtype"]
    assert d["params_bf16_gib"] * 2 == pytest.approx(d["params_fp32_gib"])
    assert 0 < d["rel_err_bf16_vs_fp32"] < BF16_REL_TOL and d["out_dtype"] == "torch.float32"
    assert r["shard"] == {"fp32_sharded_equal": True, "fp32_resharded_after_forward": True,
                          "bf16_sharded_equal": True, "bf16_resharded_after_forward": True}
