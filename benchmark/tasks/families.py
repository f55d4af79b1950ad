"""Task families and the two suite definitions ("smoke" and "full").

A task family names the kind of camera script a model is asked to follow and the trajectory
generator (:func:`datagen.trajectories.generate`) that produces it:

===========================  ==========================  ===============================================
family                       generator                   what it tests
===========================  ==========================  ===============================================
single_action                script_single               paper-style: one action held per segment
mixed_action                 script_mixed                paper-style: several actions at once
revisit_look_away            revisit_look_away           turn away from a view, turn back (memory)
revisit_pan360               revisit_pan360              full 360-degree pan back to the start view
revisit_out_and_back         revisit_out_and_back        walk out, walk back the same way
revisit_loop                 revisit_loop                a closed loop returning to the start
revisit_return_to_start      revisit_return_to_start     wander, then return to the first pose
long_horizon                 explore                     >= 60 s free exploration (drift, memory)
===========================  ==========================  ===============================================

A :class:`TaskSpec` fixes the family, the scene family, which held-out scene (index among the
family's test-split seeds), the duration and the trajectory seed. Suites are lists of specs plus a
resolution and fps; everything downstream is deterministic in them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

FAMILY_GENERATORS: dict[str, str] = {
    "single_action": "script_single",
    "mixed_action": "script_mixed",
    "revisit_look_away": "revisit_look_away",
    "revisit_pan360": "revisit_pan360",
    "revisit_out_and_back": "revisit_out_and_back",
    "revisit_loop": "revisit_loop",
    "revisit_return_to_start": "revisit_return_to_start",
    "long_horizon": "explore",
}
FAMILIES = tuple(FAMILY_GENERATORS)
LONG_HORIZON_MIN_S = 60.0


@dataclass(frozen=True)
class TaskSpec:
    family: str            # task family (key of FAMILY_GENERATORS)
    scene_family: str      # datagen scene family (e.g. an indoor or outdoor generator)
    scene_index: int       # which test-split scene of that family (0 = first test seed)
    duration_s: float      # clip length in seconds (frames = round(duration_s * fps))
    traj_seed: int         # seed of the trajectory generator
    params: dict = field(default_factory=dict, hash=False)  # extra generator parameters

    @property
    def generator(self) -> str:
        return FAMILY_GENERATORS[self.family]

    def task_id(self) -> str:
        return f"{self.family}__{self.scene_family}{self.scene_index}__s{self.traj_seed}"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    width: int
    height: int
    fps: float
    tasks: tuple[TaskSpec, ...]

    def to_dict(self) -> dict:
        return {"name": self.name, "width": self.width, "height": self.height, "fps": self.fps,
                "tasks": [t.to_dict() for t in self.tasks]}


# durations per family for the smoke suite (seconds): as short as each generator allows while still
# completing its revisit (the controller turns at 60 deg/s, walks at 1.4 m/s; an out-and-back or a
# loop needs ~20 s); long_horizon stays >= 60 s
SMOKE_DURATIONS = {"single_action": 4.0, "mixed_action": 4.0, "revisit_look_away": 8.0,
                   "revisit_pan360": 10.0, "revisit_out_and_back": 20.0, "revisit_loop": 20.0,
                   "revisit_return_to_start": 10.0, "long_horizon": 60.0}
FULL_DURATIONS = {"single_action": 20.0, "mixed_action": 20.0, "revisit_look_away": 20.0,
                  "revisit_pan360": 20.0, "revisit_out_and_back": 30.0, "revisit_loop": 30.0,
                  "revisit_return_to_start": 30.0, "long_horizon": 120.0}
#: a revisit-family task must have at least this many depth-verified revisit pairs; the builder tries
#: trajectory seeds traj_seed + k * SEED_STRIDE, k = 0 .. MAX_SEED_TRIES-1 (deterministic)
MIN_REVISIT_PAIRS = 4
SEED_STRIDE = 7919
MAX_SEED_TRIES = 12


def smoke_suite(scene_families: list[str], width: int = 112, height: int = 64, fps: float = 16.0) -> SuiteSpec:
    """One short task per family, scene families used round-robin (small: CI and the main job)."""
    tasks = []
    for i, fam in enumerate(FAMILIES):
        sf = scene_families[i % len(scene_families)]
        tasks.append(TaskSpec(fam, sf, 0, SMOKE_DURATIONS[fam], traj_seed=100 + i))
    return SuiteSpec("smoke", width, height, fps, tuple(tasks))


def full_suite(scene_families: list[str], width: int = 224, height: int = 128, fps: float = 16.0,
               scenes_per_family: int = 2) -> SuiteSpec:
    """Every task family on every scene family, ``scenes_per_family`` held-out scenes each."""
    tasks = []
    for fi, fam in enumerate(FAMILIES):
        for si, sf in enumerate(scene_families):
            for k in range(scenes_per_family):
                tasks.append(TaskSpec(fam, sf, k, FULL_DURATIONS[fam], traj_seed=1000 + 100 * fi + 10 * si + k))
    return SuiteSpec("full", width, height, fps, tuple(tasks))


def mini_suite(scene_families: list[str], width: int = 64, height: int = 40, fps: float = 16.0) -> SuiteSpec:
    """Three short tasks (a translation script, a look-away revisit, mixed actions): for tests."""
    sf = scene_families
    tasks = (TaskSpec("single_action", sf[0], 0, 3.0, traj_seed=100),
             TaskSpec("revisit_look_away", sf[1 % len(sf)], 0, 8.0, traj_seed=102),
             TaskSpec("mixed_action", sf[0], 0, 3.0, traj_seed=101))
    return SuiteSpec("mini", width, height, fps, tasks)
