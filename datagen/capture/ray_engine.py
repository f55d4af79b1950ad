"""`relic datagen build --engine ray`: the corpus build on a Ray cluster.

Same plan, same episodes, same files as the local engine (``datagen.capture.pipeline``); only the
place where episodes run changes:

* One Ray **actor per capture backend** (:class:`CaptureActor`): ``embedded`` (``--workers`` actors,
  each generating its scenes and rendering in-process), ``unrealcv`` (one actor per endpoint of
  ``--endpoints`` / ``--host --port``), or ``launch`` (``--workers`` actors, each starting its own
  UnrealCV server / UE instance ON ITS NODE with :class:`datagen.ue_launcher.UEInstance`; give each
  one a GPU with ``gpus_per_actor``). Actors ask Ray for ``cpus_per_actor`` CPUs (default 1) and
  ``gpus_per_actor`` GPUs, so Ray places them on nodes that have them.
* **Episodes are the units of work**: the driver (this process) hands each actor one episode at a
  time (the scene it rendered last first, as the local engine does). The actor captures it and
  writes it with :func:`datagen.corpus.writer.write_episode` (assembled in ``CORPUS/.tmp/``, moved
  into ``episodes/`` with one ``os.replace``), so ``--out`` must be storage every node sees at the
  same path; an actor refuses to start when it cannot see the corpus header there. The driver
  writes ``manifest.parquet/.csv`` after every episode, exactly as the local engine does.
* **Failures**: an actor whose process or node dies mid-episode (``ray.kill``, OOM, a lost node)
  is restarted by Ray (``max_restarts``) and the episode is handed out again from its first frame
  (its partial frames were never written); after ``MAX_ATTEMPTS`` attempts an episode is reported
  as failed. An UnrealCV endpoint that fails is retired (its episode re-queued on the others), as
  locally; a launched server that fails is restarted by its actor and the episode redone.
* **Resume**: the driver does what the local engine does before starting (same config hash,
  ``.tmp`` cleared, every finished episode checked against its sizes and sha256, broken ones
  captured again), so an interrupted build, local or Ray, resumes with either engine.

Episodes are deterministic functions of the config, so the corpus is byte-identical to a local
build (tested: ``tests/datagen/test_ray_engine.py``).
"""
from __future__ import annotations

import os
import socket
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from datagen import ray_session
from datagen.capture.config import CorpusConfig, EpisodeSpec, config_from_dict, plan_episodes
from datagen.capture.episode import capture_episode
from datagen.capture.pipeline import (MAX_ATTEMPTS, BuildResult, _Backends, _is_endpoint_error, _lock, _pending_episodes,
                                      probe_served_scenes)
from datagen.corpus import format as F
from datagen.corpus import writer as W
from datagen.ray_session import import_ray, is_actor_death
from datagen.ue_launcher.instance import LaunchError, UEInstance, free_port

KINDS = ("embedded", "unrealcv", "launch")


@dataclass
class RayBuildResult(BuildResult):
    ray_address: str = ""
    ray_startup_s: float = 0.0  # ray.init (not counted in `seconds`)
    actor_deaths: int = 0  # actor processes/nodes that died mid-build (episodes redone)
    nodes: dict = field(default_factory=dict)  # actor slot -> "host pid" of its latest incarnation


class CaptureActor:
    """One capture backend inside a Ray actor (wrapped with ``ray.remote`` by :func:`_actor_class`).

    kind: ``embedded``, ``unrealcv`` (attach to ``endpoint``) or ``launch`` (start ``launch``, a
    UEInstance command template with ``{port}``, on a free port of this node). ``backend_wrapper``
    (optional, ``f(backend, spec) -> backend``) wraps every backend the actor uses: instrumentation
    or fault injection (tests kill an actor in the middle of a chosen episode with it).
    """

    def __init__(self, slot: int, kind: str, endpoint, launch: Optional[dict], cfg_dict: dict, out: str,
                 backend_wrapper=None):
        self.slot, self.kind, self.out = slot, kind, out
        self.cfg = config_from_dict(cfg_dict)
        self.wrapper = backend_wrapper
        self.instance = None
        if not (Path(out) / F.CORPUS_JSON).is_file():
            raise RuntimeError(f"node {socket.gethostname()} cannot see the corpus at {out} (no {F.CORPUS_JSON}): "
                               "with --engine ray on several nodes, --out must be on storage every node mounts "
                               "at the same path")
        if kind == "launch":
            endpoint = self._launch(launch)
        self.endpoint = tuple(endpoint) if endpoint else None
        self.owner = _Backends("embedded" if kind == "embedded" else "unrealcv", self.endpoint, self.cfg)

    # -- launched servers ------------------------------------------------------------------------
    def _pidfile(self) -> Path:
        return Path(self.out) / ".server_logs" / f"ray-slot{self.slot}-{socket.gethostname()}.pid"

    def _launch(self, launch: dict):
        """Start this actor's server on a free local port; kill the one a previous incarnation of
        this actor left running on this node (a killed actor cannot stop its server)."""
        pidfile = self._pidfile()
        pidfile.parent.mkdir(parents=True, exist_ok=True)
        _kill_recorded_server(pidfile, launch["command"])
        self.instance = UEInstance(launch["command"], port=free_port(), width=self.cfg.width,
                                   height=self.cfg.height, map_name=launch.get("map_name", ""),
                                   log_dir=launch.get("log_dir"), startup_timeout=launch.get("startup_timeout", 180.0))
        self.instance.launch()
        pidfile.write_text(f"{self.instance.pid}\n")
        self.instance.wait_ready()
        return self.instance.address

    # -- remote methods --------------------------------------------------------------------------
    def hello(self):
        """(node, pid, endpoint, scene ids its server hosts or None for embedded)."""
        served = None
        if self.kind != "embedded":
            served = probe_served_scenes(self.endpoint)
            served = [served] if isinstance(served, str) else list(served)
        return socket.gethostname(), os.getpid(), self.endpoint, served

    def capture(self, spec: EpisodeSpec):
        """Capture and write one episode. Returns ("done", row, frames) | ("endpoint_failed", why)
        | ("endpoint_restarted", why) | ("error", traceback)."""
        try:
            backend, scene = self.owner.get(spec)
            if self.wrapper is not None:
                backend = self.wrapper(backend, spec)
            backend_name = "embedded" if self.kind == "embedded" else "unrealcv"
            rec = capture_episode(spec, backend, self.cfg, scene=scene, backend_name=backend_name)
            W.write_episode(self.out, rec, png_compression=self.cfg.png_compression)
            return "done", W.manifest_row(rec.meta), len(rec.frames)
        except Exception as e:  # noqa: BLE001 - reported to the driver
            if self.kind != "embedded" and _is_endpoint_error(e):
                why = f"{self.endpoint[0]}:{self.endpoint[1]}: {type(e).__name__}: {e}"
                self.owner.close()
                self.owner.cache.clear()
                self.owner.remote = None
                if self.instance is not None and self._restart_server():
                    return "endpoint_restarted", why
                return "endpoint_failed", why
            return "error", "".join(traceback.format_exception(e))

    def _restart_server(self) -> bool:
        try:
            self.instance.ensure_alive(probe=True)
        except LaunchError:
            return False
        self._pidfile().write_text(f"{self.instance.pid}\n")
        return True

    def close(self) -> None:
        self.owner.close()
        if self.instance is not None:
            self.instance.stop()
            self._pidfile().unlink(missing_ok=True)


def _kill_recorded_server(pidfile: Path, command) -> None:
    """SIGKILL the process group recorded in `pidfile` when it still runs `command`'s program."""
    import shlex
    import signal

    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    prog = (shlex.split(command) if isinstance(command, str) else list(command))[0]
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return
    if Path(argv0).name == Path(prog).name:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _actor_class(max_restarts: int):
    ray = import_ray()
    return ray.remote(max_restarts=max_restarts, max_task_retries=0)(CaptureActor)


@dataclass
class _Slot:
    idx: int
    handle: object
    endpoint: Optional[tuple] = None
    ready: bool = False  # hello answered
    holding: Optional[EpisodeSpec] = None
    last_scene: Optional[str] = None
    serves: Optional[list] = None
    alive: bool = True
    deaths: int = 0


def build_corpus_ray(cfg: CorpusConfig, out: str | os.PathLike, workers: int = 2, backend: str = "embedded",
                     endpoints: Optional[list[tuple[str, int]]] = None, launch: Optional[dict] = None,
                     progress: bool = True, limit: Optional[int] = None, log=None,
                     ray_address: Optional[str] = None, cpus_per_actor: float = 1.0, gpus_per_actor: float = 0.0,
                     max_restarts: int = 5, backend_wrapper: Optional[Callable] = None) -> RayBuildResult:
    """Capture every planned episode of `cfg` into `out` on Ray (see module doc); resumable.

    backend: ``embedded`` (`workers` actors), ``unrealcv`` (one actor per endpoint) or ``launch``
    (`workers` actors each starting ``launch["command"]``, a UEInstance template; optional keys
    ``map_name``, ``log_dir``, ``startup_timeout``). ray_address: None starts a private local Ray
    (this machine's cores) for the build; "auto" / "HOST:PORT" joins a cluster. When Ray is already
    initialised in this process it is used as is (its start-up is then the caller's).
    max_restarts: Ray restarts of each actor (its deaths beyond that retire it).
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    out = Path(out).resolve()
    if backend not in KINDS:
        raise ValueError(f"--backend must be one of {', '.join(KINDS)} with --engine ray, got {backend!r}")
    if backend == "unrealcv" and not endpoints:
        raise ValueError("the unrealcv backend needs at least one endpoint (--host/--port or --endpoints)")
    if backend == "launch" and not (launch and launch.get("command")):
        raise ValueError("the launch backend needs a server command template (--launch or --ue-binary)")
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    ray_session.import_ray()
    specs = plan_episodes(cfg)
    W.init_corpus(out, cfg.to_dict())
    lock = _lock(out)
    try:
        n_actors = len(endpoints) if backend == "unrealcv" else workers
        need = int(-(-n_actors * cpus_per_actor // 1))  # a local Ray gets at least the CPUs the actors reserve
        session = ray_session.start(ray_address, num_cpus=max(os.cpu_count() or 1, need))
        have = float(session.resources.get("CPU", 0.0))
        if have < n_actors * cpus_per_actor:
            log(f"relic: the Ray cluster has {have:g} CPUs but {n_actors} capture actors reserve "
                f"{cpus_per_actor:g} each: some wait until CPUs free up (`ray status` shows the demand)")
        gpus = float(session.resources.get("GPU", 0.0))
        if gpus_per_actor > 0 and gpus < gpus_per_actor and session.address == "local":
            ray_session.stop(session)
            raise ValueError(f"--ray-gpus-per-actor {gpus_per_actor:g}: this machine's local Ray has {gpus:g} GPUs, "
                             "so no capture actor could ever start (drop the option, or join a cluster with GPUs)")
        if gpus_per_actor > 0 and gpus < n_actors * gpus_per_actor:
            log(f"relic: the Ray cluster has {gpus:g} GPUs but {n_actors} capture actors reserve {gpus_per_actor:g} "
                "each: " + ("none can start (no GPU in the cluster)" if gpus < gpus_per_actor else
                            "some wait until GPUs free up (`ray status` shows the demand)"))
        try:
            res = _build(cfg, out, specs, workers, backend, endpoints, launch, progress, limit, log,
                         cpus_per_actor, gpus_per_actor, max_restarts, backend_wrapper)
            res.ray_address, res.ray_startup_s = session.address, session.startup_s
            return res
        finally:
            ray_session.stop(session)
    finally:
        lock.close()


def _build(cfg, out: Path, specs, workers, backend, endpoints, launch, progress, limit, log, cpus_per_actor,
           gpus_per_actor, max_restarts, backend_wrapper) -> RayBuildResult:
    ray = import_ray()
    pending, rows = _pending_episodes(cfg, out, specs, limit, log)
    result = RayBuildResult(out=out, planned=len(specs), skipped=len(rows), built=0)
    rebalance, power = bool(cfg.balance["rebalance"]), float(cfg.balance["power"])
    if not pending:
        return result

    Actor = _actor_class(max_restarts)
    cfg_dict = cfg.to_dict()
    if backend == "unrealcv":
        targets = [tuple(ep) for ep in endpoints]
    else:
        targets = [None] * max(1, min(workers, len(pending)))
    launch_opts = None
    if backend == "launch":
        launch_opts = dict(launch)
        launch_opts.setdefault("log_dir", str(out / ".server_logs"))
    opts = {"num_cpus": cpus_per_actor, "num_gpus": gpus_per_actor}
    if backend == "launch":  # close() may then stop the server while a capture is still running
        opts["max_concurrency"] = 2
    slots: list[_Slot] = []
    for i, ep in enumerate(targets):
        h = Actor.options(**opts).remote(i, backend, ep, launch_opts, cfg_dict, str(out), backend_wrapper)
        slots.append(_Slot(i, h, endpoint=ep))
    planned_scenes = {s.scene_id for s in specs}
    inflight: dict = {}  # ObjectRef -> (slot, "hello" | "capture")
    attempts: dict[str, int] = {}
    remaining = len(pending)
    bar = None
    if progress:
        from tqdm import tqdm

        total = sum(int(round(s.duration_s * cfg.fps)) for s in pending)
        bar = tqdm(total=total, unit="frame", desc=f"build {out.name} (ray)", smoothing=0.1, dynamic_ncols=True)
    t0 = time.perf_counter()

    def say_hello(s: _Slot):
        inflight[s.handle.hello.remote()] = (s, "hello")

    def retire(s: _Slot, why: str):
        s.alive = False
        if backend != "embedded":
            result.endpoints_retired.append(s.endpoint)
        try:
            ray.kill(s.handle, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
        log(f"relic: capture actor {s.idx} retired: {why}")

    def requeue(s: _Slot, why: str):
        nonlocal remaining
        spec, s.holding = s.holding, None
        if spec is None:
            return
        attempts[spec.episode_id] = attempts.get(spec.episode_id, 0) + 1
        if attempts[spec.episode_id] >= MAX_ATTEMPTS:
            result.failed.append((spec.episode_id, why))
            remaining -= 1
            log(f"relic: giving up on episode {spec.episode_id} after {MAX_ATTEMPTS} attempts: {why}")
        else:
            pending.appendleft(spec)

    def dispatch(s: _Slot):
        if not pending or s.holding is not None or not s.alive or not s.ready:
            return
        if backend != "embedded":  # only episodes of the scene its server hosts
            pick = next((p for p in pending if p.scene_id in (s.serves or ())), None)
            if pick is None:
                return
        else:  # same scene as last time (its backend is cached), else a scene no other actor is on
            others = {o.last_scene for o in slots if o is not s and o.alive}
            pick = next((p for p in pending if p.scene_id == s.last_scene), None) or \
                next((p for p in pending if p.scene_id not in others), None) or pending[0]
        pending.remove(pick)
        s.holding, s.last_scene = pick, pick.scene_id
        inflight[s.handle.capture.remote(pick)] = (s, "capture")

    try:
        for s in slots:
            say_hello(s)
        while remaining > 0:
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5) if inflight else ([], [])
            for ref in ready:
                s, what = inflight.pop(ref)
                try:
                    msg = ray.get(ref)
                except Exception as e:  # noqa: BLE001
                    if not is_actor_death(e):
                        raise
                    # a hello that meets ActorDiedError: dead for good (restarts used up, or its constructor
                    # failed, e.g. the corpus is not visible on its node); ActorUnavailableError: restarting
                    gone = isinstance(e, ray.exceptions.ActorDiedError) and (
                        what == "hello" or getattr(e, "actor_init_failed", False))
                    detail = str(e).strip().splitlines()
                    s.ready = False
                    if what == "hello" and not gone:  # still restarting after an earlier death: ask again
                        time.sleep(0.2)
                        say_hello(s)
                        continue
                    s.deaths += 1
                    result.actor_deaths += 1
                    why = f"actor {s.idx} died ({type(e).__name__})"
                    log(f"relic: {why}" + (f" while capturing {s.holding.episode_id}; it will be redone"
                                           if s.holding else "") + (f": {detail[0]}" if detail else ""))
                    requeue(s, why)
                    if gone or s.deaths > max_restarts:
                        retire(s, f"died {s.deaths} time(s)" + (f": {' '.join(detail)[:2000]}" if gone else ""))
                    else:  # Ray restarts it; the hello waits for the new incarnation
                        say_hello(s)
                    continue
                if what == "hello":
                    node, pid, endpoint, served = msg
                    s.ready, s.endpoint = True, endpoint
                    result.nodes[s.idx] = f"{node} {pid}"
                    if served is not None:  # candidates for the served scene id: the planned ones
                        s.serves = [c for c in served if c in planned_scenes] or served[:1]
                    continue
                kind = msg[0]
                spec, s.holding = s.holding, None
                if kind == "done":
                    _, row, nfr = msg
                    rows.append(row)
                    W.write_manifest(out, rows, rebalance, power)
                    result.built += 1
                    result.frames += nfr
                    remaining -= 1
                    if bar is not None:
                        bar.update(nfr)
                elif kind == "endpoint_restarted":
                    s.holding = spec
                    result.endpoint_restarts[s.idx] = result.endpoint_restarts.get(s.idx, 0) + 1
                    log(f"relic: actor {s.idx}'s server failed ({msg[1]}); restarted it, redoing {spec.episode_id}")
                    requeue(s, msg[1])
                elif kind == "endpoint_failed":
                    s.holding = spec
                    requeue(s, msg[1])
                    retire(s, f"endpoint failed: {msg[1]}")
                else:  # "error": the episode itself failed (a bug or bad config): not retried, as locally
                    log(f"relic: episode {spec.episode_id} failed:\n{msg[1]}")
                    lines = msg[1].strip().splitlines()
                    result.failed.append((spec.episode_id, lines[-1] if lines else "error"))
                    remaining -= 1
            live = [s for s in slots if s.alive]
            if not live and remaining > 0:
                raise RuntimeError(f"every capture actor failed ({result.endpoints_retired or 'see above'}); "
                                   f"{remaining} episode(s) not captured; fix the cause and re-run to resume")
            if backend != "embedded" and live and all(s.ready and s.holding is None for s in live):
                served = {sc for s in live for sc in (s.serves or ())}
                for p in [p for p in pending if p.scene_id not in served]:  # no live server hosts their scene
                    pending.remove(p)
                    result.failed.append((p.episode_id, f"no live endpoint serves scene {p.scene_id} "
                                                        f"(servers host: {sorted(served)})"))
                    remaining -= 1
            for s in live:
                dispatch(s)
        clean_exit = True
    except BaseException:
        clean_exit = False
        raise
    finally:
        closing = []  # close backends; launched servers must be stopped even when interrupted
        for s in slots:
            if s.alive and (clean_exit or backend == "launch"):
                closing.append(s.handle.close.remote())
        if closing:
            try:
                ray.wait(closing, num_returns=len(closing), timeout=30)
            except Exception:  # noqa: BLE001
                pass
        for s in slots:
            try:
                ray.kill(s.handle, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
        if bar is not None:
            bar.close()
        result.seconds = time.perf_counter() - t0
    return result
