"""`relic`: the suite's one console command. Subcommands are grouped by package.

Each command lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``;
this file only maps names to modules (imported lazily so ``--help`` stays fast).
"""
from __future__ import annotations

import argparse
import importlib
import sys

# group -> (group help, {command: (module, one-line help)})
COMMANDS: dict[str, tuple[str, dict[str, tuple[str, str]]]] = {
    "datagen": ("Scenes, capture backends, corpus building and curation.", {
        "scene": ("datagen.scenes.cli", "List scene families, generate or inspect scene files."),
        "serve": ("datagen.unrealcv_server.cli", "Run an UnrealCV-protocol TCP server over the embedded renderer."),
        "build": ("datagen.capture.cli", "Capture episodes into a curated corpus (resumable)."),
        "report": ("datagen.report.cli", "Write a curation report for a corpus."),
        "launch": ("datagen.ue_launcher.cli", "Launch (or attach to) packaged Unreal Engine binaries with UnrealCV."),
    }),
    "train": ("Train RELIC stages (resumable, safetensors checkpoints).", {
        "autoencoder": ("relic_model.cli.train_autoencoder", "Stage 1: causal video autoencoder."),
        "teacher": ("relic_model.cli.train_teacher", "Stage 2: bidirectional long-horizon teacher."),
        "student-init": ("relic_model.cli.train_student_init", "Stage 3: student init by ODE regression with hybrid forcing."),
        "distill": ("relic_model.cli.train_distill", "Stage 4: self-forcing DMD distillation with replayed back-propagation."),
        "all": ("relic_model.cli.train_all", "Run every stage in order from one config."),
        "finetune-decoder": ("relic_model.cli.train_finetune_decoder",
                             "Fine-tune a checkpoint's decoders on multi-latent clips (latents unchanged)."),
    }),
    "bench": ("Benchmark world models on held-out revisit suites.", {
        "tasks": ("benchmark.cli.tasks", "Build a versioned task suite on held-out scenes."),
        "run": ("benchmark.cli.run", "Run models on a suite, score them, write leaderboard and report."),
        "score": ("benchmark.cli.score", "Score a folder of externally generated videos."),
        "check": ("benchmark.cli.check", "Regression gate against a baseline results file."),
        "merge": ("benchmark.cli.merge", "Merge finished runs on the same suite into one leaderboard."),
    }),
}
TOP_LEVEL: dict[str, tuple[str, str]] = {
    "play": ("relic_model.cli.play", "Turn an action script into a video with a RELIC checkpoint."),
    "demo": ("benchmark.cli.demo", "The main job end to end: corpus, (fine-tune), benchmark, report."),
}


def _load(module: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:  # a command whose module is not installed/built
        if e.name and module.startswith(e.name):
            return None
        raise




def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relic", description="relic-suite: data generation, training and "
                                     "benchmarking for interactive video world models with long-horizon memory.")
    sub = parser.add_subparsers(dest="group", metavar="{" + ",".join([*COMMANDS, *TOP_LEVEL]) + "}")
    # Only import the module of the command actually asked for (argv), so --help stays fast.
    wanted = [a for a in argv if not a.startswith("-")][:2]
    for group, (ghelp, cmds) in COMMANDS.items():
        gp = sub.add_parser(group, help=ghelp, description=ghelp)
        gsub = gp.add_subparsers(dest="command", metavar="{" + ",".join(cmds) + "}")
        for name, (module, chelp) in cmds.items():
            cp = gsub.add_parser(name, help=chelp, description=chelp)
            cp.set_defaults(_module=module)
            if wanted[:2] == [group, name]:
                mod = _load(module)
                if mod is not None:
                    mod.add_arguments(cp)
    for name, (module, chelp) in TOP_LEVEL.items():
        cp = sub.add_parser(name, help=chelp, description=chelp)
        cp.set_defaults(_module=module)
        if wanted[:1] == [name]:
            mod = _load(module)
            if mod is not None:
                mod.add_arguments(cp)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    module = getattr(args, "_module", None)
    if module is None:
        # `relic` or `relic GROUP` alone: show the relevant help.
        if args.group:
            parser.parse_args([args.group, "--help"])
        parser.print_help()
        return 2
    mod = _load(module)
    if mod is None:
        print(f"relic: command module {module} is not available in this installation", file=sys.stderr)
        return 2
    try:
        return int(mod.run(args) or 0)
    except KeyboardInterrupt:
        print("relic: interrupted; finished work is kept and a re-run resumes", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        if getattr(args, "debug", False) or __import__("os").environ.get("RELIC_DEBUG"):
            raise
        print(f"relic: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
