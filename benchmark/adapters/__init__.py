"""Model adapters and the spec parser used by ``relic bench run --models``.

Spec grammar: ``NAME`` or ``NAME:ARG``.

==============================  =====================================================
``oracle``                      ground-truth renders (privileged; upper bound)
``static``                      repeats frame 0
``blank``                       frame 0, then its mean colour (shows nothing; a validity reference)
``reproject``                   warps frame 0 with its GT depth to the commanded poses
``noisy-oracle:KIND=S``         GT with one corruption: drift | blur | forget (strength S)
``video-folder:DIR``            externally generated videos ``DIR/<task_id>.mp4`` or PNG folders
``relic[:CKPT]``                the RELIC model (bundled checkpoint unless CKPT is given)
``relic-nomem[:CKPT]``          RELIC with its long-horizon memory disabled
``relic@OPTS[:CKPT]``           RELIC with memory read-budget options, e.g.
                                ``relic@budget=12+select=pose`` (see benchmark.adapters.relic)
``matrix-game-2[:WEIGHTS]``     Matrix-Game-2.0 (universal) through fastvideo in the baselines env
``gamecraft[:WEIGHTS]``         Hunyuan-GameCraft through fastvideo in the baselines env
==============================  =====================================================
"""
from __future__ import annotations

from benchmark.adapters import gamecraft, matrix_game
from benchmark.adapters.blank import BlankModel
from benchmark.adapters.gamecraft import GameCraftModel
from benchmark.adapters.matrix_game import MatrixGame2Model
from benchmark.adapters.noisy_oracle import NoisyOracleModel, parse_spec
from benchmark.adapters.oracle import OracleModel
from benchmark.adapters.reproject import ReprojectModel
from benchmark.adapters.static import StaticModel
from benchmark.adapters.video_folder import VideoFolderModel
from benchmark.world_model import WorldModel

BASELINES = ("oracle", "static", "reproject")
#: the report's metric-validity section: noisy-oracle variants (two strengths per kind) and a video
#: that shows nothing after frame 0
VALIDITY_VARIANTS = ("noisy-oracle:drift=0.5", "noisy-oracle:drift=2", "noisy-oracle:blur=1",
                     "noisy-oracle:blur=2.5", "noisy-oracle:forget=0.5", "noisy-oracle:forget=1", "blank")
KNOWN = ("oracle", "static", "blank", "reproject", "noisy-oracle", "video-folder", "relic", "relic-nomem",
         "matrix-game-2", "gamecraft")


def make_model(spec: str) -> WorldModel:
    """Build a model from its spec string (see module doc); raises ValueError on unknown names."""
    spec = spec.strip()
    name, _, arg = spec.partition(":")
    if name == "oracle":
        return OracleModel()
    if name == "static":
        return StaticModel()
    if name == "blank":
        return BlankModel()
    if name == "reproject":
        return ReprojectModel()
    if name == "noisy-oracle":
        return NoisyOracleModel(*parse_spec(arg))
    if name == "video-folder":
        if not arg:
            raise ValueError("video-folder needs a folder: video-folder:DIR")
        return VideoFolderModel(arg)
    if name == "matrix-game-2":
        return MatrixGame2Model(arg or None)
    if name == "gamecraft":
        return GameCraftModel(arg or None)
    base, _, opts = name.partition("@")
    if base in ("relic", "relic-nomem"):
        try:
            from benchmark.adapters.relic import make_relic
        except ImportError as e:
            raise RuntimeError(f"the RELIC model is not available in this installation ({e}); "
                               "install/build relic_model or leave 'relic' out of --models") from e
        return make_relic(checkpoint=arg or None, memory=(base == "relic"), options=opts or None)
    raise ValueError(f"unknown model {spec!r}; known: {', '.join(KNOWN)} (see `relic bench run --help`)")


def validate_spec(spec: str) -> None:
    """Check a model spec without building the model: ValueError for an unknown name or a malformed
    argument, FileNotFoundError for a checkpoint / video folder that does not exist. ``relic bench
    run`` / ``score`` call it for every spec before rolling anything out, so a typo stops the run at
    once with one line instead of producing a leaderboard without the model."""
    import os

    spec = spec.strip()
    name, _, arg = spec.partition(":")
    base = name.partition("@")[0]
    if base not in KNOWN:
        raise ValueError(f"unknown model {spec!r}; known: {', '.join(KNOWN)} (see `relic bench run --help`)")
    if base in ("oracle", "static", "blank", "reproject") and (arg or base != name):
        raise ValueError(f"model {spec!r}: {base} takes no argument")
    if base == "noisy-oracle":
        parse_spec(arg)
    if base == "video-folder":
        if not arg:
            raise ValueError("video-folder needs a folder: video-folder:DIR")
        if not os.path.isdir(arg):
            raise FileNotFoundError(f"model {spec!r}: video folder {arg} does not exist")
    if base in ("relic", "relic-nomem") and arg and not os.path.exists(arg):
        raise FileNotFoundError(f"model {spec!r}: checkpoint {arg} does not exist")
    if base == "matrix-game-2" or base == "gamecraft":
        if base != name:
            raise ValueError(f"model {spec!r}: {base} takes no @options")
        (matrix_game if base == "matrix-game-2" else gamecraft).check(arg or None)


def parse_models(text: str) -> list[str]:
    """Split a comma-separated --models value; the word ``validity`` expands to VALIDITY_VARIANTS."""
    out: list[str] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if part == "baselines":
            out.extend(BASELINES)
        elif part == "validity":
            out.extend(VALIDITY_VARIANTS)
        else:
            out.append(part)
    seen = set()
    return [m for m in out if not (m in seen or seen.add(m))]
