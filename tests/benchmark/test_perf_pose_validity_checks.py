"""The validity bars of perf/perf_pose_validity.py compare a variant scored on some tasks only with the
ground truth on the SAME tasks (a subset must not borrow the whole suite's mean)."""
import math

from perf.perf_pose_validity import checks


def _row(task, variant, trans, rot, fam="f"):
    return dict(task=task, family=fam, variant=variant, rpe_trans_rel=trans, rpe_rot_deg=rot, rpe_rot_rel=math.nan,
                spurious_trans=0.0, cmd_speed=1.0)


def test_subset_variant_is_compared_on_its_own_tasks():
    rows = [_row("easy", "gt", 0.01, 0.1), _row("hard", "gt", 0.40, 2.0),
            _row("easy", "static", 1.0, 20.0), _row("hard", "static", 1.0, 20.0),
            # reversed scored on the hard task only: 0.6 is < 2 x its gt (0.40), although the suite
            # mean of gt (0.205) would let it pass
            _row("hard", "reversed", 0.6, 30.0)]
    out = {d: (ok, v) for d, ok, v in checks(rows)}
    ok, vals = out["reversed rpe_trans_rel >= max(0.5, 2 x gt)"]
    assert not ok and "gt 0.400" in vals
    ok, vals = out["reversed rpe_rot_deg >= 2 x gt"]
    assert ok and "gt 2.000" in vals
    ok, vals = out["gt rpe_trans_rel <= 0.25 x static (suite mean)"]
    assert ok and vals.startswith("0.205")
