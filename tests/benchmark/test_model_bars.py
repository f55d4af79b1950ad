"""The bundled model's bar table: each bar met or missed from small synthetic inputs, ties and
missing inputs handled explicitly."""
import json

import pandas as pd
import pytest

from benchmark.probes import model_bars as mb


def results(relic: dict, nomem: dict, static: dict) -> pd.DataFrame:
    rows = []
    for model, vals in (("relic", relic), ("relic-nomem", nomem), ("static", static)):
        for task, scale in (("t1", 1.0), ("t2", 3.0)):      # two tasks: the bar reads task means
            for metric, v in vals.items():
                rows.append({"model": model, "task": task, "family": "revisit_loop", "metric": metric,
                             "value": v * scale / 2.0, "protocol": 6})
    return pd.DataFrame(rows)


GOOD = {"revisit_psnr_gt": 18.0, "revisit_consistency_gain": 2.0, "rpe_rot_deg": 6.0, "rpe_trans_rel": 0.5}
NOMEM = {"revisit_psnr_gt": 15.0, "revisit_consistency_gain": 0.5, "rpe_rot_deg": 7.0, "rpe_trans_rel": 0.6}
STATIC = {"revisit_psnr_gt": 16.0, "revisit_consistency_gain": 0.0, "rpe_rot_deg": 20.0, "rpe_trans_rel": 1.0}


def test_good_model_meets_every_benchmark_bar():
    bars = mb.benchmark_bars(results(GOOD, NOMEM, STATIC))
    assert [b.met for b in bars] == [True] * 5
    assert bars[0].margin == pytest.approx(2.0)           # task means: 18 - 16
    assert bars[3].margin == pytest.approx(0.7 * 20.0 - 6.0)


def test_static_like_model_misses_and_ties_miss_strict_bars():
    bad = dict(STATIC, rpe_rot_deg=15.0, rpe_trans_rel=0.95)
    met = [b.met for b in mb.benchmark_bars(results(bad, NOMEM, STATIC))]
    # equal to static: "> static" is missed; gain 0 < nomem's 0.5; rot 15 > 14; trans 0.95 > 0.8
    assert met == [False, True, False, False, False]


def test_missing_model_rows_are_an_error():
    df = results(GOOD, NOMEM, STATIC)
    with pytest.raises(ValueError, match="relic-nomem"):
        mb.benchmark_bars(df[df["model"] != "relic-nomem"])


def still_rows(gaps):
    return [{"image": f"img{i}", "variant": "mem", "gap_min": g, "ae_rec": 28.0, "min_f0": 28.0 - g}
            for i, g in enumerate(gaps)] + [{"image": "img0", "variant": "nomem", "gap_min": 0.0,
                                             "ae_rec": 28.0, "min_f0": 28.0}]


def test_still_bar_is_the_worst_image():
    assert mb.still_bar(still_rows([1.0, 2.9])).met is True
    b = mb.still_bar(still_rows([1.0, 3.5, 0.2]))
    assert b.met is False and b.margin == pytest.approx(-0.5) and "img1" in b.reference
    with pytest.raises(ValueError, match="teacher"):
        mb.still_bar(still_rows([1.0]), variant="teacher")


def test_streaming_bar_needs_trained_weights():
    fast = {"weights": "random init (seed 0), config tiny", "realtime": {"frames_per_s": 50.0, "loadavg_1min": 1.0}}
    assert mb.streaming_bar(fast).met is None
    trained = {"weights": "checkpoint relic_model/checkpoints/relic_tiny",
               "realtime": {"frames_per_s": 15.0, "loadavg_1min": 1.0}}
    assert mb.streaming_bar(trained).met is False
    trained["realtime"]["frames_per_s"] = 16.0
    assert mb.streaming_bar(trained).met is True


def test_cli_writes_the_table(tmp_path):
    res = tmp_path / "results.csv"
    results(GOOD, NOMEM, STATIC).to_csv(res, index=False)
    still = tmp_path / "still.json"
    still.write_text(json.dumps(still_rows([4.0])))
    out = tmp_path / "bars.md"
    assert mb.main(["--results", str(res), "--still", str(still), "--out", str(out)]) == 0
    md = out.read_text()
    verdicts = [line.rsplit("|", 2)[1].strip() for line in md.splitlines() if line.startswith("| ")][1:]
    assert verdicts == ["**missed**"] + ["met"] * 5 and "protocol 6" in md
