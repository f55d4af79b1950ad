"""`relic`: the suite's one console command. Subcommands are grouped by package.

Each command lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``;
this file only maps names to modules (imported lazily so ``--help`` stays fast).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from datagen.cli_common import CliError

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
        "plan": ("relic_model.cli.train_plan", "Memory/compute plan of a config's training stages on N GPUs."),
    }),
    "bench": ("Benchmark world models on held-out revisit suites.", {
        "tasks": ("benchmark.cli.tasks", "Build a versioned task suite on held-out scenes."),
        "run": ("benchmark.cli.run", "Run models on a suite, score them, write leaderboard and report."),
        "score": ("benchmark.cli.score", "Score a folder of externally generated videos."),
        "check": ("benchmark.cli.check", "Regression gate against a baseline results file."),
        "merge": ("benchmark.cli.merge", "Merge finished runs on the same suite into one leaderboard."),
        "export": ("benchmark.cli.export", "Write a suite's task pack (inputs and controls) for any lab to run."),
    }),
}
TOP_LEVEL: dict[str, tuple[str, str]] = {
    "play": ("relic_model.cli.play", "Turn an action script into a video with a RELIC checkpoint."),
    "demo": ("relic_demo", "The main job end to end: corpus, (fine-tune), benchmark, report."),
}


def _load(module: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:  # a command whose module is not installed/built
        if e.name and module.startswith(e.name):
            return None
        raise


# Exit codes (the same for every command): 0 success, 1 an expected error (one line on stderr:
# "relic: error: ..."), 2 a usage error (bad or missing arguments, missing subcommand; argparse's
# convention), 130 interrupted (Ctrl-C / SIGTERM where the command turns it into an interrupt).
EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130

# Commands whose --out is a folder: a file there is refused before the command runs (the command
# itself checks what is inside the folder where it matters).
FOLDER_OUTPUTS = {("bench", "run"), ("bench", "score"), ("bench", "merge"), ("bench", "tasks"), ("bench", "export"),
                  ("datagen", "build"), ("datagen", "report"), ("demo", None), ("train", None)}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default, except where the help text already states it or there is
    nothing to show (flags, None)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (action.default is None or action.default is False or action.default is argparse.SUPPRESS
                or isinstance(action, (argparse._HelpAction, argparse._StoreTrueAction, argparse._StoreFalseAction))):
            return text
        low = text.lower()
        if "%(default)" in text or "(default" in low or "default:" in low:
            return text
        if not action.option_strings and action.nargs not in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return text
        default = action.default
        if isinstance(default, (list, tuple)) and not default:
            return text
        return (text + " " if text else "") + "(default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `relic datagen build: error: argument --limit: must be >= 1,
    got -1 (see relic datagen build --help)` and exit code 2."""

    def error(self, message: str):
        message = " ".join(str(message).split())
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = Parser(prog="relic", formatter_class=HelpFormatter,
                    description="relic-suite: data generation, training and benchmarking for interactive "
                                "video world models with long-horizon memory. Exit codes: 0 ok, 1 error, "
                                "2 usage error, 130 interrupted; RELIC_DEBUG=1 shows tracebacks.")
    sub = parser.add_subparsers(dest="group", metavar="{" + ",".join([*COMMANDS, *TOP_LEVEL]) + "}")
    # Only import the module of the command actually asked for (argv), so --help stays fast.
    wanted = [a for a in argv if not a.startswith("-")][:2]
    for group, (ghelp, cmds) in COMMANDS.items():
        gp = sub.add_parser(group, help=ghelp, description=ghelp, formatter_class=HelpFormatter)
        gp.set_defaults(_group_parser=gp)
        gsub = gp.add_subparsers(dest="command", metavar="{" + ",".join(cmds) + "}")
        for name, (module, chelp) in cmds.items():
            cp = gsub.add_parser(name, help=chelp, description=chelp, formatter_class=HelpFormatter)
            cp.set_defaults(_module=module, _group_parser=None, _parser=cp)
            if wanted[:2] == [group, name]:
                mod = _load(module)
                if mod is not None:
                    mod.add_arguments(cp)
    for name, (module, chelp) in TOP_LEVEL.items():
        cp = sub.add_parser(name, help=chelp, description=chelp, formatter_class=HelpFormatter)
        cp.set_defaults(_module=module, _parser=cp)
        if wanted[:1] == [name]:
            mod = _load(module)
            if mod is not None:
                mod.add_arguments(cp)
    return parser


def _one_line(e: BaseException) -> str:
    """A readable one-line message for an expected error."""
    if isinstance(e, OSError) and e.strerror and not e.args[1:2] == (None,):
        where = " -> ".join(repr(str(f)) for f in (e.filename, e.filename2) if f is not None)
        text = f"{e.strerror}: {where}" if where else e.strerror
        if isinstance(e, IsADirectoryError):
            text += " (a folder; give a file path)"
        elif isinstance(e, NotADirectoryError):
            text += " (a file where a folder is needed)"
        elif isinstance(e, FileExistsError):
            text += " (already exists, and is not what is needed there)"
    else:
        text = str(e) or type(e).__name__
    if type(e).__name__ not in ("CliError", "ValueError", "RuntimeError") and not isinstance(e, OSError):
        text = f"{text} ({type(e).__name__})" if str(e) else type(e).__name__
    return " ".join(text.split())


def _check_folder_output(args, key) -> None:
    out = getattr(args, "out", None)
    if out is None:
        return
    if key in FOLDER_OUTPUTS or (key[0], None) in FOLDER_OUTPUTS:
        from pathlib import Path

        p = Path(out)
        if p.exists() and not p.is_dir():
            raise CliError(f"--out {out} is a file, not a folder; give a folder path (it is created if missing)")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the parser of the command they were given to
        (getattr(args, "_parser", None) or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    module = getattr(args, "_module", None)
    if module is None:
        # `relic` or `relic GROUP` alone: the relevant help on stderr, usage exit code.
        (getattr(args, "_group_parser", None) or parser).print_help(sys.stderr)
        return EXIT_USAGE
    mod = _load(module)
    if mod is None:
        print(f"relic: command module {module} is not available in this installation", file=sys.stderr)
        return EXIT_ERROR
    debug = getattr(args, "debug", False) or os.environ.get("RELIC_DEBUG", "") not in ("", "0")
    try:
        _check_folder_output(args, (args.group, getattr(args, "command", None)))
        return int(mod.run(args) or 0)
    except KeyboardInterrupt:
        print("relic: interrupted; finished work is kept and a re-run resumes", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (OSError, ValueError, RuntimeError, EOFError, ImportError) as e:
        # Every expected failure (files, bad values, ports, hosts, missing optional packages) is one
        # line; RELIC_DEBUG=1 shows the traceback.
        if debug:
            raise
        print(f"relic: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
