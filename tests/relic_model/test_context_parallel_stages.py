"""The training stages under ``train.context_parallel: 2`` (DDP, 2 CPU processes under torchrun,
gloo): both ranks share every sample's frames; the teacher stage (odd frame count: padded shards,
sample videos rendered by both ranks) ends with the weights of one process with the same global
batch, and student init (hybrid forcing through a KV cache) and distillation (rollout, replay with
no_sync, critic) run under CP with both ranks identical."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from relic_model.data.synthetic import write_synthetic_corpus
from relic_model.train.common import RunContext
from relic_model.train.presets import micro_config
from relic_model.train.run import run_stage_named

ROOT = Path(__file__).resolve().parents[2]
TEACHER = {"curriculum": [{"latent_frames": 5, "steps": 2}], "batch": 2, "lr": 3e-3, "warmup": 1,
           "ckpt_every": 10, "sample_every": 2, "pool_clips": 4, "text_dropout": 0.25}
LATER = {"student_init": {"steps": 1, "batch": 2, "trajectories": 2, "ode_steps": 2, "sample_every": 0},
         "distill": {"curriculum": [{"num_blocks": 2, "steps": 2}], "batch": 2, "gen_update_every": 1,
                     "lr_gen": 1e-2, "warmup": 1, "sample_every": 0}}

WORKER = r'''
import sys, torch
from safetensors.torch import save_file
from relic_model.distributed import init_distributed
from relic_model.train.common import RunContext
from relic_model.train.presets import micro_config
from relic_model.train.run import make_stage, run_stage_named
from relic_model.train.loop import run_stage
import torch.distributed as dist
torch.set_num_threads(1)
corpus, out, teacher, later = sys.argv[1], sys.argv[2], eval(sys.argv[3]), eval(sys.argv[4])
info = init_distributed("cpu")
cfg = micro_config(teacher=teacher, **later)
cfg.train["context_parallel"] = 2
ctx = RunContext(cfg, corpus, out, info, progress=False)
assert ctx.info.cp == 2 and ctx.info.dp_size == 1, ctx.info
torch.manual_seed(ctx.seed)
st = make_stage(ctx, "teacher", None)
assert st.teacher.context_parallel is not None
run_stage(st, ctx.stage_dir("teacher"), st.cfg, st.total_steps, log_every=1, ckpt_every=10, sample_every=2,
          info=ctx.info, progress=False)
sd = {f"teacher.{k}": v.contiguous() for k, v in st.teacher.state_dict().items()}
sd.update({f"text.{k}": v.contiguous() for k, v in st.text.state_dict().items()})
save_file(sd, f"{out}/rank{info.rank}.safetensors")
run_stage_named(ctx, "student_init")
st = make_stage(ctx, "distill", None)
assert st.student.context_parallel is not None and st.fake.context_parallel is not None
run_stage(st, ctx.stage_dir("distill"), st.cfg, st.total_steps, ckpt_every=10, sample_every=0, info=ctx.info,
          progress=False)
sd = {f"student.{k}": v.contiguous() for k, v in st.student.state_dict().items()}
sd.update({f"fake.{k}": v.contiguous() for k, v in st.fake.state_dict().items()})
save_file(sd, f"{out}/distill_rank{info.rank}.safetensors")
dist.destroy_process_group()
'''


def test_context_parallel_stages_two_gloo_ranks(tmp_path):
    corpus = write_synthetic_corpus(tmp_path / "corpus", episodes=2, frames=30, height=32, width=48)
    base = RunContext(micro_config(autoencoder={"steps": 2}), corpus, tmp_path / "base", progress=False)
    run_stage_named(base, "autoencoder")
    for d in ("single", "cp"):
        shutil.copytree(tmp_path / "base/autoencoder", tmp_path / d / "autoencoder")
    single = RunContext(micro_config(teacher=TEACHER), corpus, tmp_path / "single", progress=False)
    torch.manual_seed(single.seed)
    from relic_model.train.loop import run_stage
    from relic_model.train.run import make_stage
    st = make_stage(single, "teacher", None)
    init = {k: v.clone() for k, v in st.teacher.state_dict().items()}
    run_stage(st, single.stage_dir("teacher"), st.cfg, st.total_steps, ckpt_every=10, sample_every=0, progress=False)
    ref = {f"teacher.{k}": v for k, v in st.teacher.state_dict().items()}
    ref.update({f"text.{k}": v for k, v in st.text.state_dict().items()})

    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           str(corpus), str(tmp_path / "cp"), repr(TEACHER), repr(LATER)]
    r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    r0 = load_file(str(tmp_path / "cp/rank0.safetensors"))
    r1 = load_file(str(tmp_path / "cp/rank1.safetensors"))
    assert r0.keys() == r1.keys() == ref.keys()
    moved = 0.0
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"ranks diverged at {k}"
        torch.testing.assert_close(r0[k], ref[k], rtol=1e-4, atol=2e-5, msg=k)
        if k.startswith("teacher.") and k[8:] in init:
            moved = max(moved, float((ref[k] - init[k[8:]]).abs().max()))
    assert moved > 5e-3
    assert sorted(p.name for p in (tmp_path / "cp/teacher/samples").glob("*.png"))   # sampled under CP
    d0 = load_file(str(tmp_path / "cp/distill_rank0.safetensors"))
    d1 = load_file(str(tmp_path / "cp/distill_rank1.safetensors"))
    si = load_file(str(tmp_path / "cp/student_init/final/model.safetensors"))
    for k in d0:
        assert torch.equal(d0[k], d1[k]), f"ranks diverged at {k} after distillation"
    assert max(float((d0[k] - si[k]).abs().max()) for k in si) > 1e-3
