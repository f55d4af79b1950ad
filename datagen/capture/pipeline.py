"""Build a corpus: plan episodes, farm them out to worker processes, write atomically, resume.

Coordinator (this process)
    1. ``init_corpus`` writes/validates corpus.json (same config hash required to resume).
    2. Removes leftovers in ``.tmp/`` (episodes in flight when a previous run died), checks every
       finished episode's files (sizes AND sha256 checksums), re-queues broken ones (missing,
       truncated or bit-flipped files) and skips the intact ones.
    3. Starts workers and hands each ONE episode at a time (preferring the scene it rendered last,
       so scene setup is reused), tracks which episode each worker holds, and re-queues it if the
       worker dies or its UnrealCV endpoint fails (that endpoint is then retired; the build fails
       only when no endpoint is left).
    4. Rewrites manifest.parquet/.csv after every finished episode (atomically), so a killed run
       leaves a consistent corpus of the episodes finished so far.

Workers (processes) each own a backend: ``embedded`` builds the scene in-process
(``datagen.scenes.library.generate_scene`` + ``datagen.backends.embedded.EmbeddedBackend``);
``unrealcv`` connects to one endpoint ``host:port`` (``datagen.backends.unrealcv_client``).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from datagen.backends.base import BackendError
from datagen.backends.unrealcv_client import UnrealCVBackend
from datagen.capture.config import CorpusConfig, EpisodeSpec, config_from_dict, plan_episodes
from datagen.capture.episode import capture_episode
from datagen.corpus import format as F
from datagen.corpus import writer as W
from datagen.corpus.format import CorpusError
from datagen.corpus.reader import Episode
from datagen.scenes.library import generate_scene, load_scene
from datagen.scenes.unreal import served_scene_ids

MAX_ATTEMPTS = 3  # per episode, over worker deaths / endpoint failures


@dataclass
class BuildResult:
    out: Path
    planned: int
    skipped: int  # already finished before this run
    built: int
    failed: list = field(default_factory=list)  # [(episode_id, error)]
    frames: int = 0
    seconds: float = 0.0
    endpoints_retired: list = field(default_factory=list)
    endpoint_restarts: dict = field(default_factory=dict)  # worker slot -> server restarts (restart_endpoint hook)

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def parse_endpoints(text: Optional[str]) -> list[tuple[str, int]]:
    """'host:port,host:port' -> [(host, port)]."""
    out = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"--endpoints: {item!r} is not host:port")
        out.append((host, int(port)))
    return out


# ---------------------------------------------------------------------------------------------
# worker side
class _Backends:
    """Per-worker backend owner (caches the last few scenes for the embedded backend)."""

    def __init__(self, kind: str, endpoint: Optional[tuple[str, int]], cfg: CorpusConfig, cache: int = 3):
        self.kind, self.endpoint, self.cfg, self.cache_size = kind, endpoint, cfg, cache
        self.cache: dict[str, tuple] = {}
        self.remote = None

    def scene(self, spec: EpisodeSpec):
        if spec.scene_file:
            return load_scene(spec.scene_file)
        return generate_scene(spec.family, spec.scene_seed)

    def get(self, spec: EpisodeSpec):
        """(backend, scene) for this episode."""
        if spec.scene_id in self.cache:
            return self.cache[spec.scene_id]
        scene = self.scene(spec)
        if self.kind == "embedded":
            from datagen.backends.embedded import EmbeddedBackend  # deferred: it imports open3d and numba

            be = EmbeddedBackend(scene, width=self.cfg.width, height=self.cfg.height, fov=self.cfg.fov_deg)
        else:
            if self.remote is not None:
                self.remote.close()
                self.cache.clear()
            host, port = self.endpoint
            be = UnrealCVBackend(host, port, scene=scene).connect()
            self.remote = be
        while len(self.cache) >= self.cache_size:
            old = self.cache.pop(next(iter(self.cache)))
            old[0].close()
        self.cache[spec.scene_id] = (be, scene)
        return be, scene

    def close(self):
        for be, _ in self.cache.values():
            try:
                be.close()
            except Exception:
                pass


def _is_endpoint_error(e: BaseException) -> bool:
    return isinstance(e, (BackendError, ConnectionError, TimeoutError, EOFError, BrokenPipeError, OSError))


def probe_served_scenes(endpoint: tuple[str, int]):
    """The scene id(s) the UnrealCV server at `endpoint` hosts (``vget /scene/name`` and, for UE
    builds, ``vget /level/name``; see ``datagen.scenes.unreal.served_scene_ids``)."""
    probe = UnrealCVBackend(endpoint[0], endpoint[1]).connect()
    try:
        served = probe.request("vget /scene/name").strip()
        try:  # a UE build answers its PROJECT name above; the level tells its levels apart
            level = probe.request("vget /level/name").strip()
        except Exception:  # noqa: BLE001 - older plugins lack it
            level = ""
    finally:
        probe.close()
    return served_scene_ids(served, level)


def _worker_main(wid: int, kind: str, endpoint, cfg_dict: dict, out: str, task_q, result_q) -> None:
    import signal

    # The coordinator handles Ctrl-C / SIGTERM and stops the workers (terminate = SIGTERM): a worker
    # ignores SIGINT and dies quietly on SIGTERM instead of printing a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    cfg = config_from_dict(cfg_dict)
    owner = _Backends(kind, endpoint, cfg)
    name = kind if endpoint is None else f"{kind}://{endpoint[0]}:{endpoint[1]}"
    if kind == "unrealcv":  # which scene does this server host? (vget /scene/name)
        try:
            served = probe_served_scenes(endpoint)
        except Exception as e:  # noqa: BLE001
            result_q.put(("endpoint_failed", wid, None, f"{name}: {type(e).__name__}: {e}", 0))
            return
        result_q.put(("hello", wid, served))
    parent = os.getppid()
    try:
        while True:
            try:
                spec = task_q.get(timeout=1.0)
            except queue.Empty:
                if os.getppid() != parent:  # coordinator died: stop (in-flight work is lost by design)
                    return
                continue
            if spec is None:
                break
            sent = [0]

            def progress(k, sent=sent):
                result_q.put(("frames", wid, k - sent[0]))
                sent[0] = k

            try:
                backend, scene = owner.get(spec)
                rec = capture_episode(spec, backend, cfg, scene=scene, backend_name=kind, progress=progress)
                W.write_episode(out, rec, png_compression=cfg.png_compression)
                result_q.put(("done", wid, spec.episode_id, W.manifest_row(rec.meta), len(rec.frames)))
            except Exception as e:  # noqa: BLE001 - reported to the coordinator
                if kind == "unrealcv" and _is_endpoint_error(e):
                    result_q.put(("endpoint_failed", wid, spec.episode_id, f"{name}: {type(e).__name__}: {e}",
                                  sent[0]))
                    return
                result_q.put(("error", wid, spec.episode_id, "".join(traceback.format_exception(e)), sent[0]))
    finally:
        owner.close()


# ---------------------------------------------------------------------------------------------
# coordinator side
@dataclass
class _Worker:
    wid: int
    proc: mp.Process
    task_q: object
    endpoint: Optional[tuple[str, int]]
    holding: Optional[EpisodeSpec] = None
    last_scene: Optional[str] = None
    alive: bool = True
    serves: Optional[str] = None  # unrealcv: the scene id its server hosts (None until known)


def _existing(out: Path, planned: list[EpisodeSpec], log) -> tuple[set, list[dict]]:
    """Finished intact episodes (ids) and their manifest rows; broken ones are removed."""
    done, rows = set(), []
    ids = {s.episode_id for s in planned}
    for sid in sorted(ids):
        d = W.episode_dir(out, sid)
        if not d.exists():
            continue
        try:
            ep = Episode(d)
            problems = ep.verify()  # every file against its size and sha256
            if problems:
                raise CorpusError("; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else ""))
            rows.append(W.manifest_row(ep.meta))
            done.add(sid)
        except (CorpusError, KeyError, ValueError, OSError) as e:
            log(f"relic: episode {sid} is broken ({e}); it will be captured again")
            import shutil

            trash = out / F.TMP_DIR / f"{sid}.broken"
            (out / F.TMP_DIR).mkdir(exist_ok=True)
            if trash.exists():
                shutil.rmtree(trash)
            os.replace(d, trash)
            shutil.rmtree(trash, ignore_errors=True)
    return done, rows


def build_corpus(cfg: CorpusConfig, out: str | os.PathLike, workers: int = 1, backend: str = "embedded",
                 endpoints: Optional[list[tuple[str, int]]] = None, progress: bool = True,
                 limit: Optional[int] = None, log=None,
                 restart_endpoint: Optional[Callable[[tuple[str, int]], bool]] = None,
                 max_restarts: int = 5) -> BuildResult:
    """Capture every planned episode of `cfg` into corpus directory `out` (resumable).

    backend: "embedded" (each of `workers` processes renders in-process) or "unrealcv" (one
    worker per endpoint in `endpoints`). limit: capture at most this many new episodes.
    restart_endpoint: optional ``f((host, port)) -> bool`` called when an UnrealCV endpoint fails
    (its worker reports a connection failure or dies); it should bring that server back (e.g.
    ``datagen.ue_launcher.InstancePool.restart``) and return True when it answers again. The
    interrupted episode is then redone from scratch on a fresh worker for the same endpoint (its
    partial frames were never written), instead of retiring the endpoint; at most `max_restarts`
    restarts per endpoint, after which it is retired as without the hook.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    out = Path(out)
    if backend not in ("embedded", "unrealcv"):
        raise ValueError(f"--backend must be embedded or unrealcv, got {backend!r}")
    if backend == "unrealcv" and not endpoints:
        raise ValueError("the unrealcv backend needs at least one endpoint (--host/--port or --endpoints)")
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    specs = plan_episodes(cfg)
    W.init_corpus(out, cfg.to_dict())
    lock = _lock(out)  # one build per corpus at a time (released when this process ends)
    try:
        return _build(cfg, out, specs, workers, backend, endpoints, progress, limit, log, restart_endpoint,
                      max_restarts)
    finally:
        lock.close()


def _lock(out: Path):
    import fcntl

    f = open(out / ".build.lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise RuntimeError(f"another `relic datagen build` is writing {out} right now; wait for it or use another --out") from None
    return f


def _pending_episodes(cfg: CorpusConfig, out: Path, specs: list, limit: Optional[int], log) -> tuple[deque, list]:
    """The start of every build, whatever the engine: leftovers of an interrupted write removed, the
    manifest rewritten from the episodes already finished, and the episodes still to capture (at most
    ``limit``) with the manifest rows of those already done."""
    W.clean_tmp(out)
    done, rows = _existing(out, specs, log)
    pending = deque(s for s in specs if s.episode_id not in done)
    if limit is not None:
        pending = deque(list(pending)[:limit])
    W.write_manifest(out, rows, bool(cfg.balance["rebalance"]), float(cfg.balance["power"]))
    return pending, rows


def _build(cfg: CorpusConfig, out: Path, specs: list, workers: int, backend: str, endpoints, progress: bool,
           limit: Optional[int], log, restart_endpoint=None, max_restarts: int = 5) -> BuildResult:
    """Capture the episodes still to do with a pool of worker processes (module docstring, 2.-4.)."""
    pending, rows = _pending_episodes(cfg, out, specs, limit, log)
    result = BuildResult(out=out, planned=len(specs), skipped=len(rows), built=0)
    if not pending:
        return result
    return _Coordinator(cfg, out, specs, pending, rows, result, workers, backend, endpoints, log,
                        restart_endpoint, max_restarts).run(progress)


class _Coordinator:
    """The coordinator of one build: starts the workers, hands out episodes, handles their messages,
    re-queues the work of dead workers and failed endpoints, and stops the pool at the end.

    State: ``pending`` (episodes not handed out yet, in order), ``rows`` (manifest rows of finished
    episodes), ``result`` (the BuildResult being filled), ``pool`` (one _Worker per slot, index =
    worker id), ``remaining`` (episodes neither finished nor given up), ``attempts`` (per episode),
    ``frames_counted`` (progress-bar frames of episodes in flight), ``restarts`` (per worker slot)."""

    def __init__(self, cfg: CorpusConfig, out: Path, specs: list, pending: deque, rows: list,
                 result: BuildResult, workers: int, backend: str, endpoints, log, restart_endpoint,
                 max_restarts: int):
        self.cfg, self.out, self.pending, self.rows, self.result = cfg, out, pending, rows, result
        self.backend, self.log = backend, log
        self.restart_endpoint, self.max_restarts = restart_endpoint, max_restarts
        self.rebalance, self.power = bool(cfg.balance["rebalance"]), float(cfg.balance["power"])
        self.ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        self.result_q = self.ctx.Queue()
        self.slots = [(None,)] * workers if backend == "embedded" else [(ep,) for ep in endpoints]
        self.pool: list[_Worker] = []
        self.cfg_dict = cfg.to_dict()
        self.planned_scenes = {s.scene_id for s in specs}
        self.attempts: dict[str, int] = {}
        self.remaining = len(pending)
        self.frames_counted: dict[str, int] = {}
        self.restarts: dict[int, int] = {}
        result.endpoint_restarts = self.restarts  # wid -> restarts done (launcher-managed endpoints)
        self.bar = None

    # ------------------------------------------------------------------------------ the run
    def run(self, progress: bool) -> BuildResult:
        """Start the workers, loop until every episode is finished or given up, stop the pool."""
        self._start_pool()
        self._open_bar(progress)
        t0 = time.perf_counter()
        try:
            for w in self.pool:
                self.dispatch(w)
            while self.remaining > 0:
                try:
                    msg = self.result_q.get(timeout=0.5)
                except queue.Empty:
                    msg = None
                if msg is not None:
                    self.handle(msg)
                self.reap_dead_workers()
                live = self.check_live()
                for w in live:
                    self.dispatch(w)
            clean_exit = True
        except BaseException:
            clean_exit = False
            raise
        finally:
            self.stop_pool(clean_exit)
            if self.bar is not None:
                self.bar.close()
            self.result.seconds = time.perf_counter() - t0
        return self.result

    def _start_pool(self) -> None:
        """One worker per endpoint (unrealcv), else up to ``workers`` but no more than episodes pending."""
        slots = self.slots
        n_start = len(slots) if self.backend == "unrealcv" else max(1, min(len(slots), len(self.pending)))
        for wid, (ep,) in enumerate(slots[:n_start]):
            self.pool.append(self.start(wid, ep))

    def _open_bar(self, progress: bool) -> None:
        """A frame progress bar over every pending episode (when ``progress``)."""
        total_frames = sum(int(round(s.duration_s * self.cfg.fps)) for s in self.pending)
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total_frames, unit="frame", desc=f"build {self.out.name}", smoothing=0.1,
                            dynamic_ncols=True)

    def start(self, wid: int, endpoint) -> _Worker:
        """A new worker process for slot ``wid`` (with its own task queue)."""
        tq = self.ctx.Queue()
        p = self.ctx.Process(target=_worker_main,
                             args=(wid, self.backend, endpoint, self.cfg_dict, str(self.out), tq, self.result_q),
                             daemon=True, name=f"relic-capture-{wid}")
        p.start()
        return _Worker(wid, p, tq, endpoint)

    def stop_pool(self, clean_exit: bool) -> None:
        """Finished: ask workers to stop; interrupted/failed: stop them now; then join them all."""
        for w in self.pool:
            if w.proc.is_alive():
                if clean_exit:
                    try:
                        w.task_q.put(None)
                    except Exception:
                        pass
                else:
                    w.proc.terminate()
        for w in self.pool:
            w.proc.join(timeout=10)
            if w.proc.is_alive():
                w.proc.terminate()
                w.proc.join(timeout=5)

    # ------------------------------------------------------------------------- scheduling
    def dispatch(self, w: _Worker) -> None:
        """Hand an idle live worker its next episode: unrealcv, one of the scene its server hosts;
        embedded, the scene it rendered last (its backend is cached), else a scene no other worker
        is on, else the first pending."""
        pending = self.pending
        if not pending or w.holding is not None or not w.alive:
            return
        if self.backend == "unrealcv":  # only episodes of the scene its server hosts
            if w.serves is None:
                return
            pick = next((s for s in pending if s.scene_id == w.serves), None)
            if pick is None:
                return
        else:  # same scene as last time (its backend is cached), else a scene no other worker is on
            others = {o.last_scene for o in self.pool if o is not w and o.alive}
            pick = next((s for s in pending if s.scene_id == w.last_scene), None) or \
                next((s for s in pending if s.scene_id not in others), None) or pending[0]
        pending.remove(pick)
        w.holding, w.last_scene = pick, pick.scene_id
        w.task_q.put(pick)

    def requeue(self, w: _Worker, why: str) -> None:
        """Take back the episode ``w`` held: first in line again, or given up after MAX_ATTEMPTS."""
        spec = w.holding
        w.holding = None
        if spec is None:
            return
        if self.bar is not None and self.frames_counted.get(spec.episode_id):
            self.bar.update(-self.frames_counted.pop(spec.episode_id))
        self.attempts[spec.episode_id] = self.attempts.get(spec.episode_id, 0) + 1
        if self.attempts[spec.episode_id] >= MAX_ATTEMPTS:
            self.result.failed.append((spec.episode_id, why))
            self.remaining -= 1
            self.log(f"relic: giving up on episode {spec.episode_id} after {MAX_ATTEMPTS} attempts: {why}")
        else:
            self.pending.appendleft(spec)

    def try_restart(self, w: _Worker, why: str) -> bool:
        """Launcher hook: bring w's server back and give the endpoint a fresh worker."""
        restarts, max_restarts = self.restarts, self.max_restarts
        if self.backend != "unrealcv" or self.restart_endpoint is None or restarts.get(w.wid, 0) >= max_restarts:
            return False
        restarts[w.wid] = restarts.get(w.wid, 0) + 1
        self.log(f"relic: endpoint {w.endpoint[0]}:{w.endpoint[1]} failed ({why}); restarting it "
                 f"(restart {restarts[w.wid]}/{max_restarts})")
        try:
            ok = bool(self.restart_endpoint(tuple(w.endpoint)))
        except Exception as e:  # noqa: BLE001 - a failed restart retires the endpoint
            self.log(f"relic: restarting {w.endpoint[0]}:{w.endpoint[1]} failed: {type(e).__name__}: {e}")
            ok = False
        if not ok:
            return False
        self.requeue(w, why)  # the interrupted episode goes first in line, to be redone from scratch
        self.pool[w.wid] = self.start(w.wid, w.endpoint)
        return True

    # --------------------------------------------------------------------------- messages
    def handle(self, msg: tuple) -> None:
        """One worker message: ("hello", wid, served scene ids), ("frames", wid, k), ("done", wid,
        episode id, manifest row, frames), ("endpoint_failed", wid, episode id, why, frames) or
        ("error", wid, episode id, traceback, frames)."""
        kind, wid = msg[0], msg[1]
        w = self.pool[wid]
        if kind == "hello":  # candidates for the served scene id: take the one planned, if any
            cands = [msg[2]] if isinstance(msg[2], str) else list(msg[2])
            w.serves = next((c for c in cands if c in self.planned_scenes), cands[0])
        elif kind == "frames":
            if self.bar is not None:
                self.bar.update(msg[2])
            if w.holding is not None:
                eid = w.holding.episode_id
                self.frames_counted[eid] = self.frames_counted.get(eid, 0) + msg[2]
        elif kind == "done":
            self._on_done(w, msg)
        elif kind == "endpoint_failed":
            w.alive = False
            w.proc.join(timeout=10)  # it returns right after reporting
            if not self.try_restart(w, msg[3]):
                self.log(f"relic: endpoint failed, retiring it and re-queueing {msg[2]}: {msg[3]}")
                self.result.endpoints_retired.append(w.endpoint)
                self.requeue(w, msg[3])
        elif kind == "error":
            self._on_error(w, msg)

    def _on_done(self, w: _Worker, msg: tuple) -> None:
        """An episode is on disk: its manifest row joins the manifest (rewritten atomically)."""
        _, _, eid, row, nfr = msg
        self.rows.append(row)
        W.write_manifest(self.out, self.rows, self.rebalance, self.power)
        self.result.built += 1
        self.result.frames += nfr
        self.remaining -= 1
        self.frames_counted.pop(eid, None)
        w.holding = None
        self.dispatch(w)

    def _on_error(self, w: _Worker, msg: tuple) -> None:
        """An episode raised in its worker: logged and counted as failed (not retried)."""
        _, _, eid, tb, _ = msg
        self.log(f"relic: episode {eid} failed:\n{tb}")
        w.holding = None
        if self.bar is not None and self.frames_counted.get(eid):
            self.bar.update(-self.frames_counted.pop(eid))
        self.result.failed.append((eid, tb.strip().splitlines()[-1] if tb.strip() else "error"))
        self.remaining -= 1
        self.dispatch(w)

    # ----------------------------------------------------------------------------- health
    def reap_dead_workers(self) -> None:
        """Dead workers (killed, crashed) -> re-queue what they held; respawn embedded ones; unrealcv
        ones get their server restarted (hook) or their endpoint retired."""
        for w in self.pool:
            if w.alive and not w.proc.is_alive():
                w.alive = False
                why = f"worker {w.wid} died (exit code {w.proc.exitcode})"
                self.log(f"relic: {why}; re-queueing {w.holding.episode_id if w.holding else 'nothing'}")
                if self.backend == "unrealcv" and self.try_restart(w, why):
                    continue
                if self.backend == "unrealcv":
                    self.result.endpoints_retired.append(w.endpoint)
                self.requeue(w, why)
                if self.backend == "embedded" and self.remaining > 0:
                    nw = self.start(w.wid, None)
                    self.pool[w.wid] = nw

    def check_live(self) -> list[_Worker]:
        """The live workers; RuntimeError when none is left with work remaining. With unrealcv, once
        every live server is known and idle, episodes of scenes no live server hosts are failed."""
        live = [w for w in self.pool if w.alive]
        if not live and self.remaining > 0:
            raise RuntimeError(f"every capture endpoint failed ({self.result.endpoints_retired}); "
                               f"{self.remaining} episode(s) not captured; fix the servers and re-run to resume")
        if self.backend == "unrealcv" and all(w.serves is not None and w.holding is None for w in live):
            served = {w.serves for w in live}
            orphans = [s for s in self.pending if s.scene_id not in served]
            for s in orphans:  # no live server hosts their scene
                self.pending.remove(s)
                self.result.failed.append((s.episode_id, f"no live endpoint serves scene {s.scene_id} "
                                                         f"(servers host: {sorted(served)})"))
                self.remaining -= 1
        return live
