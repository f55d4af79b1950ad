"""`relic datagen report`: Markdown + PNGs + summary.json consistent with the manifest."""
import json

import pytest

from datagen import Corpus
from datagen.capture.config import config_from_dict
from datagen.capture.pipeline import build_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "corpus"
    cfg = config_from_dict({
        "name": "test-report", "fps": 16, "width": 32, "height": 24,
        "scenes": [{"family": "apartment", "seeds": [1]}, {"family": "park", "seeds": [1]}],
        "episodes": [{"generator": "explore", "duration_s": 5}, {"generator": "revisit_pan360", "duration_s": 8}],
        "balance": {"rebalance": True},
    })
    res = build_corpus(cfg, out, workers=2, progress=False)
    assert res.failed == []
    return out


def test_report_cli(corpus, tmp_path, capsys):
    from relic_cli import main

    rep = tmp_path / "rep"
    assert main(["datagen", "report", str(corpus), "--out", str(rep), "--verify"]) == 0
    assert "verify: 0 problem(s)" in capsys.readouterr().out
    md = (rep / "report.md").read_text()
    for png in ("actions.png", "clip_lengths.png", "filters.png", "samples.png",
                "map_apartment-0001.png", "map_park-0001.png"):
        assert (rep / png).stat().st_size > 1000 and f"({png})" in md
    s = json.loads((rep / "summary.json").read_text())
    m = Corpus.open(corpus).manifest
    assert s["episodes"] == len(m) == 4 and s["frames"] == int(m.num_frames.sum())
    assert s["minutes_captured"] == pytest.approx(m.num_frames.sum() / 16 / 60)
    assert s["minutes_kept"] == pytest.approx(m.kept_s.sum() / 60)
    assert sum(s["status"].values()) == 4 and s["revisit_pairs"] == int(m.num_revisit_pairs.sum())
    assert set(s["flagged_frames"]) >= {"pan_speed", "near_collision", "degenerate"}
    assert "## Curation filters and reasons" in md and "## Top-down trajectory maps" in md


def test_report_default_location_and_rebalanced_weights(corpus):
    from datagen.report.report import write_report

    p = write_report(corpus)
    assert p == corpus / "report" / "report.md" and p.is_file()
    m = Corpus.open(corpus).manifest
    usable = m[m.status != "rejected"]
    assert usable.sample_weight.mean() == pytest.approx(1.0)  # rebalance on: weights of mean 1


def test_report_on_missing_corpus_fails_clearly(tmp_path):
    from relic_cli import main

    assert main(["datagen", "report", str(tmp_path / "nope")]) == 1


def test_verify_lists_every_problem_and_writes_no_report(corpus, tmp_path, capsys):
    """--verify lists missing, truncated and bit-flipped files of several episodes (not only the
    first), exits 1 and writes no report (not even a half-written one)."""
    import shutil

    from relic_cli import main

    from datagen.corpus import format as F

    damaged = tmp_path / "damaged"
    shutil.copytree(corpus, damaged)
    shutil.rmtree(damaged / "report", ignore_errors=True)
    eids = sorted(p.name for p in (damaged / "episodes").iterdir())
    (damaged / "episodes" / eids[0] / "rgb" / "000003.png").unlink()                        # missing
    d = damaged / "episodes" / eids[1] / F.DEPTH_FILE
    d.write_bytes(d.read_bytes()[:-7])                                                         # truncated
    f = damaged / "episodes" / eids[2] / "rgb" / "000001.png"
    b = bytearray(f.read_bytes())
    b[len(b) // 2] ^= 0x01                                                                     # one bit flipped
    f.write_bytes(bytes(b))
    rep = tmp_path / "rep"
    assert main(["datagen", "report", str(damaged), "--out", str(rep), "--verify"]) == 1
    out = capsys.readouterr()
    assert f"{eids[0]}: rgb/000003.png missing" in out.out
    assert f"{eids[1]}: {F.DEPTH_FILE} has wrong size" in out.out
    assert f"{eids[2]}: rgb/000001.png fails sha256" in out.out
    assert "verify: 3 problem(s)" in out.out and "no report written" in out.err
    assert not rep.exists() and not (damaged / "report").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rep")]


def test_report_of_a_damaged_corpus_leaves_no_half_written_folder(corpus, tmp_path):
    import shutil

    from datagen.report.report import write_report

    damaged = tmp_path / "damaged"
    shutil.copytree(corpus, damaged)
    eid = sorted(p.name for p in (damaged / "episodes").iterdir())[0]
    (damaged / "episodes" / eid / "episode.json").unlink()
    with pytest.raises(Exception):
        write_report(damaged, tmp_path / "rep")
    assert not (tmp_path / "rep").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["damaged"]
