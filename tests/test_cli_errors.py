"""`relic` as a new user meets it: expected errors are one line and a non-zero exit (never a
traceback unless RELIC_DEBUG=1), bad values are refused at once, output folders that are files
or hold someone else's files are refused, and every --help page shows its defaults.

Exit codes: 0 ok, 1 an expected error, 2 a usage error (bad/missing arguments or subcommand).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import relic_cli

ROOT = Path(__file__).resolve().parents[1]


def _relic(*argv, cwd=None, env=None, timeout=120):
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "relic_cli", *map(str, argv)], capture_output=True, text=True,
                       timeout=timeout, cwd=cwd or ROOT, env={**os.environ, **(env or {})})
    r.seconds = time.monotonic() - t0
    return r


def _one_line_error(r, code=None):
    assert r.returncode != 0, (r.stdout, r.stderr)
    if code is not None:
        assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "error:" in lines[0]
    return lines[0]


# ---------------------------------------------------------------------- help pages
def _command_parsers():
    for group, (_, cmds) in relic_cli.COMMANDS.items():
        for name in cmds:
            yield f"{group} {name}", [group, name]
    for name in relic_cli.TOP_LEVEL:
        yield name, [name]


def _subparser(parser: argparse.ArgumentParser, path: list[str]) -> argparse.ArgumentParser:
    for word in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    return parser


@pytest.mark.parametrize("label,path", list(_command_parsers()), ids=[c[0] for c in _command_parsers()])
def test_every_option_has_help_and_shows_its_default(label, path):
    parser = _subparser(relic_cli.build_parser(path), path)
    formatter = relic_cli.HelpFormatter(prog="relic")
    assert parser.formatter_class is relic_cli.HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help, f"relic {label}: {name} has no help text"
        text = formatter._get_help_string(action) % {**vars(action), "default": action.default}
        is_flag = isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction))
        if action.default is not None and not is_flag and action.option_strings and action.default != []:
            assert "default" in text.lower(), f"relic {label}: {name} does not show its default: {text!r}"
    parser.format_help()  # renders


def test_serve_help_states_the_defaults_in_the_issue():
    r = _relic("datagen", "serve", "--help")
    assert r.returncode == 0
    out = " ".join(r.stdout.split())
    for piece in ("--idle-timeout", "(default: 10.0)", "--save-quota", "(default: 1G)", "--queue-wait",
                  "(default: 30.0)", "--save-dir"):
        assert piece in out, piece


def test_no_subcommand_prints_help_and_exits_2_consistently():
    for argv in ([], ["datagen"], ["bench"], ["train"]):
        r = _relic(*argv)
        assert r.returncode == 2, argv
        assert "usage: relic" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------------- the issue's cases
@pytest.fixture()
def place(tmp_path):
    (tmp_path / "afile").write_text("mine\n")
    d = tmp_path / "adir"
    d.mkdir()
    (d / "user.txt").write_text("my notes\n")
    return tmp_path


def test_scene_out_is_a_directory(place):
    line = _one_line_error(_relic("datagen", "scene", "--family", "apartment", "--seed", "0", "--out",
                                  place / "adir"), code=1)
    assert "is a folder" in line
    assert sorted(os.listdir(place / "adir")) == ["user.txt"]


@pytest.mark.parametrize("argv", [
    ["datagen", "build", "--limit", "1", "--no-progress"],
    ["bench", "run", "--quiet"],
    ["bench", "tasks", "--suite", "mini", "--quiet"],
    ["bench", "score", "--videos", "v", "--suite", "s"],
    ["bench", "merge", "r1", "r2"],
    ["demo", "--skip-corpus"],
], ids=["build", "bench-run", "bench-tasks", "bench-score", "bench-merge", "demo"])
def test_out_is_a_file(place, argv):
    line = _one_line_error(_relic(*argv, "--out", place / "afile"), code=1)
    assert "is a file, not a folder" in line
    assert (place / "afile").read_text() == "mine\n"


@pytest.mark.parametrize("argv,what", [
    (["datagen", "build", "--limit", "1", "--no-progress"], "corpus"),
    (["bench", "tasks", "--suite", "mini", "--quiet"], "task suite"),
    (["demo", "--skip-corpus"], "demo run"),
], ids=["build", "bench-tasks", "demo"])
def test_out_folder_with_foreign_files_is_refused(place, argv, what):
    line = _one_line_error(_relic(*argv, "--out", place / "adir"), code=1)
    assert what in line and "user.txt" in line and "--force" in line
    assert sorted(os.listdir(place / "adir")) == ["user.txt"]


@pytest.mark.parametrize("argv,needle", [
    (["datagen", "build", "--limit", "-1"], "--limit"),
    (["datagen", "build", "--limit", "0"], "--limit"),
    (["datagen", "build", "--workers", "0"], "--workers"),
    (["datagen", "build", "--backend", "unrealcv", "--port", "70000"], "--port"),
    (["datagen", "build", "--backend", "unrealcv", "--host", "999.1.1.1"], "--host"),
    (["bench", "tasks", "--resolution", "7x7"], "--resolution"),
    (["bench", "tasks", "--resolution", "100x60"], "multiples of 8"),
    (["bench", "tasks", "--width", "100", "--height", "64"], "--width"),
    (["train", "autoencoder", "--config", "tiny", "--corpus", "c", "--threads", "0"], "--threads"),
    (["train", "finetune-decoder", "--corpus", "c", "--steps", "0"], "--steps"),
    (["play", "--image", "x.png", "--threads", "0"], "--threads"),
    (["datagen", "serve", "--scene", "s.json", "--port", "70000"], "--port"),
    (["datagen", "serve", "--scene", "s.json", "--host", "999.1.1.1"], "999.1.1.1"),
    (["datagen", "serve", "--scene", "s.json", "--idle-timeout", "0"], "--idle-timeout"),
    (["datagen", "serve", "--scene", "s.json", "--save-quota", "lots"], "--save-quota"),
    (["datagen", "launch", "--command", "x {port}", "--base-port", "0"], "--base-port"),
    (["datagen", "scene", "--render", "s.json", "--out", "v.png", "--res", "7x"], "--res"),
    (["datagen", "build", "--threads", "2"], "unrecognized arguments"),
], ids=lambda v: "_".join(v) if isinstance(v, list) else None)
def test_bad_values_are_refused_at_once(place, argv, needle):
    out = ["--out", place / "new"] if argv[0] in ("datagen", "bench", "train", "play") and argv[1:2] != ["serve"] \
        and argv[1:2] != ["launch"] and argv[1:2] != ["scene"] else []
    r = _relic(*argv, *out)
    line = _one_line_error(r, code=2)
    assert needle in line, line
    assert r.seconds < 30
    assert not (place / "new").exists()


def test_serve_scene_is_a_directory(place):
    line = _one_line_error(_relic("datagen", "serve", "--scene", place / "adir", "--port", "0", "--no-save"), code=1)
    assert "is a folder" in line


def test_oserror_family_is_one_line_and_debug_shows_the_traceback(place):
    (place / "adir" / "scene.json").mkdir()
    argv = ["datagen", "scene", "--info", place / "adir" / "missing.json"]
    line = _one_line_error(_relic(*argv), code=1)
    assert "missing.json" in line
    r = _relic(*argv, env={"RELIC_DEBUG": "1"})
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_one_line_formats_oserrors():
    e = IsADirectoryError(21, "Is a directory")
    e.filename = "x"
    assert relic_cli._one_line(e) == "Is a directory: 'x' (a folder; give a file path)"
    assert relic_cli._one_line(ValueError("bad\nvalue")) == "bad value"


def test_serve_on_a_foreign_address_says_so(tmp_path):
    from datagen.scenes.library import generate_scene, save_scene

    save_scene(generate_scene("apartment", 0), tmp_path / "s.json")
    line = _one_line_error(_relic("datagen", "serve", "--scene", tmp_path / "s.json", "--host", "10.99.99.99",
                                  "--port", "0", "--no-save"), code=1)
    assert "does not belong to this machine" in line and "another server" not in line
