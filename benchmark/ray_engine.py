"""`relic bench run --engine ray`: task rollouts and scoring on a Ray cluster.

The harness (:func:`benchmark.harness.run_benchmark`) keeps its two phases and every artefact;
with ``engine="ray"`` it hands the work of each phase to this module:

* **Rollouts**: per model, ``model_workers`` Ray actors (:class:`RolloutActor`) each build the
  model from its spec (``make_model``; a model given as an instance is shipped to them pickled)
  and load the suite from ``suite_root``; tasks are handed out one at a time and each actor returns
  the task's :class:`benchmark.rollout.Rollout` (frames and step timings). Give each model worker a
  GPU with ``gpus_per_model``. The driver saves frames, speed and strips exactly as locally, in
  task order. Speed metrics (fps, chunk latency) are measured inside the actors while other
  rollouts may run beside them: for speed numbers that are a model's own, run the local engine.
* **Scoring**: one actor per CPU of the cluster (:class:`ScoreActor`, torch with 1 thread, the
  suite loaded once, as the local process pool's workers), each scoring one (model, task) at a
  time from the frames file the driver saved.

Actors read the suite and the saved frames by path: on a multi-node cluster the suite folder and
the run folder (``--out``) must be on storage every node mounts at the same path. Scores are the
same numbers as the local engine's (same code, same inputs, one torch thread; tested on the mini
suite in ``tests/benchmark/test_ray_bench.py``). An actor that dies is restarted by Ray and its
(model, task) handed out again, up to ``MAX_ATTEMPTS`` times.
"""
from __future__ import annotations

import os
from typing import Iterable, Iterator, Optional

from benchmark.adapters import make_model
from benchmark.rollout import rollout
from benchmark.tasks.io import load_suite
from datagen import ray_session
from datagen.ray_session import is_actor_death

MAX_ATTEMPTS = 3


class RolloutActor:
    """One model instance on a Ray worker (wrapped with ``ray.remote`` in :meth:`RayEngine.rollouts`)."""

    def __init__(self, spec: str, instance, suite_root: str, env: dict):
        os.environ.update(env)

        self.model = instance if instance is not None else make_model(spec)
        self.suite = load_suite(suite_root)

    def rollout(self, task_id: str):
        """("ok", Rollout) or ("error", message, traceback) for one task."""
        import traceback

        task = self.suite.task(task_id)
        try:
            return "ok", rollout(self.model, task)
        except Exception as e:  # noqa: BLE001 - recorded by the harness as a rollout failure
            return "error", f"{type(e).__name__}: {e}", traceback.format_exc(limit=3)
        finally:
            task.release()

    def close(self) -> None:
        self.model.close()


class ScoreActor:
    """The local process pool's scoring worker as a Ray actor (same initialiser, same job function)."""

    def __init__(self, suite_root: str, env: dict):
        os.environ.update(env)
        from benchmark.score_jobs import worker_init

        worker_init(suite_root)

    def score(self, task_id: str, frames_path: Optional[str], estimator: str, est_trajectory, lpips: bool):
        """("ok", (metrics, curves, est_poses)) or ("error", message, traceback)."""
        import traceback

        from benchmark.score_jobs import worker_score

        try:
            return "ok", worker_score(task_id, frames_path, estimator, est_trajectory, lpips)
        except Exception as e:  # noqa: BLE001 - recorded by the harness as a scoring failure
            return "error", f"{type(e).__name__}: {e}", traceback.format_exc(limit=3)


def _forwarded_env() -> dict:
    """Environment the actors need from the driver (the LPIPS backbone file given on the command line)."""
    from benchmark.metrics.image_quality import LPIPS_WEIGHTS_ENV

    return {k: os.environ[k] for k in (LPIPS_WEIGHTS_ENV, "RELIC_DEBUG") if k in os.environ}


class RayEngine:
    """Rollouts and scoring on Ray for one harness run. Starts a local Ray (or joins ``address``)
    on first use unless Ray is already initialised; :meth:`close` shuts down what it started."""

    def __init__(self, suite_root: Optional[str], address: Optional[str] = None, gpus_per_model: float = 0.0,
                 model_workers: Optional[int] = None, cpus_per_worker: float = 1.0):
        if not suite_root:
            raise ValueError("--engine ray needs the suite on disk (suite_root): Ray workers load tasks from it")
        self.suite_root = str(os.path.abspath(suite_root))
        self.address, self.gpus_per_model = address, float(gpus_per_model)
        self.model_workers, self.cpus_per_worker = model_workers, float(cpus_per_worker)
        self.session = None
        self.env = _forwarded_env()

    def _ray(self):
        if self.session is None:
            self.session = ray_session.start(self.address)
        return ray_session.import_ray()

    def startup_s(self) -> float:
        return self.session.startup_s if self.session is not None else 0.0

    def close(self) -> None:
        if self.session is not None:
            ray_session.stop(self.session)
            self.session = None

    def _n_workers(self, jobs: int, per_model: bool) -> int:
        ray = self._ray()
        res = ray.cluster_resources()
        if per_model and self.gpus_per_model > 0:
            n = int(res.get("GPU", 0) // self.gpus_per_model)
            if n == 0:
                raise ValueError(f"--ray-gpus-per-model {self.gpus_per_model:g}: the Ray cluster has "
                                 f"{res.get('GPU', 0):g} GPUs, so no model worker could start")
        else:
            n = int(res.get("CPU", 1) // self.cpus_per_worker)
        if per_model and self.model_workers:
            n = self.model_workers
        return max(1, min(n, jobs))

    def _run(self, actor_cls, make_args: tuple, method: str, jobs: list[tuple], n: int, opts: dict) -> Iterator:
        """Run `method(*job)` for every job over `n` actors of `actor_cls`; yields (index, reply) in
        completion order. A job whose actor dies is handed out again (another actor, or the same one
        once Ray restarted it); after MAX_ATTEMPTS deaths it yields ("error", ...)."""
        ray = self._ray()
        Actor = ray.remote(max_restarts=MAX_ATTEMPTS, max_task_retries=0)(actor_cls)
        actors = [Actor.options(**opts).remote(*make_args) for _ in range(n)]
        todo = list(range(len(jobs)))[::-1]  # pop() from the end = job order
        attempts: dict[int, int] = {}
        inflight: dict = {}

        def give(a):
            if todo:
                i = todo.pop()
                inflight[getattr(a, method).remote(*jobs[i])] = (a, i)

        try:
            for a in actors:
                give(a)
            while inflight:
                ready, _ = ray.wait(list(inflight), num_returns=1)
                for ref in ready:
                    a, i = inflight.pop(ref)
                    try:
                        reply = ray.get(ref)
                    except Exception as e:  # noqa: BLE001
                        if not is_actor_death(e):
                            raise
                        attempts[i] = attempts.get(i, 0) + 1
                        if attempts[i] < MAX_ATTEMPTS and not getattr(e, "actor_init_failed", False):
                            todo.append(i)  # first in line again
                        else:
                            reply = ("error", f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}", "")
                            yield i, reply
                        give(a)
                        continue
                    yield i, reply
                    give(a)
        finally:
            if hasattr(actor_cls, "close"):  # e.g. a model's helper processes
                try:
                    ray.wait([a.close.remote() for a in actors], num_returns=len(actors), timeout=30)
                except Exception:  # noqa: BLE001
                    pass
            for a in actors:
                try:
                    ray.kill(a, no_restart=True)
                except Exception:  # noqa: BLE001
                    pass

    def rollouts(self, spec: str, instance, task_ids: list[str]) -> Iterator[tuple[str, tuple]]:
        """(task_id, ("ok", Rollout) | ("error", message, traceback)) for every task, in task order."""
        if not task_ids:
            return
        n = self._n_workers(len(task_ids), per_model=True)
        opts = {"num_cpus": self.cpus_per_worker, "num_gpus": self.gpus_per_model}
        done: dict[int, tuple] = {}
        nxt = 0
        for i, reply in self._run(RolloutActor, (spec, instance, self.suite_root, self.env), "rollout",
                                  [(t,) for t in task_ids], n, opts):
            done[i] = reply
            while nxt in done:  # in task order, as the local engine writes them
                yield task_ids[nxt], done.pop(nxt)
                nxt += 1

    def score(self, jobs: Iterable[tuple]) -> Iterator[tuple[int, tuple]]:
        """(job index, ("ok", result) | ("error", message, traceback)) in completion order; a job is
        (task_id, frames_path or None, estimator, est_trajectory, lpips)."""
        jobs = list(jobs)
        if not jobs:
            return
        n = self._n_workers(len(jobs), per_model=False)
        yield from self._run(ScoreActor, (self.suite_root, self.env), "score", jobs, n,
                             {"num_cpus": self.cpus_per_worker})
