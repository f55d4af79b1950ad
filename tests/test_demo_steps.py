"""`relic demo` runs its steps as the `relic` commands a user would type, in child processes."""
import argparse

import relic_demo


def test_step_runs_the_relic_command_and_returns_its_exit_status(capfd):
    assert relic_demo._relic_cli(["datagen", "scene", "--help"]) == 0
    assert "scene" in capfd.readouterr().out
    assert relic_demo._relic_cli(["datagen", "build", "--limit", "-1", "--out", "x"]) == 2   # usage error


def test_failed_corpus_step_is_reported_and_the_demo_goes_on(tmp_path, capsys):
    args = argparse.Namespace(out=tmp_path, corpus_config=str(tmp_path / "missing.yaml"), corpus_limit=1, quick=False)
    assert relic_demo.build_corpus(args) is None
    assert "corpus build did not finish" in capsys.readouterr().out
