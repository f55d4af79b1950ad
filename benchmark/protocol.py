"""The scoring protocol's version and headline metrics, defined once.

``PROTOCOL_VERSION`` is stamped into every run (run.json, results tables) and checked by
``relic bench merge`` and ``relic bench check``: numbers computed under different protocols never
share a table. Bump it whenever a metric's definition, the pose estimator's behaviour or the
alignment rules change in a way that moves published numbers.

History:
  1  (up to 2026-11-26) RMSE 1-s RPE over all segments after a whole-trajectory Sim(3), KLT odometry.
  2  (2026-12-06) action following per segment type (benchmark.metrics.action_following):
     ``rpe_trans_rel`` (headline translation, dimensionless), ``rpe_trans`` on translating segments,
     ``rpe_rot_deg`` over all 1-s segments, ``rpe_rot_rel`` on rotating segments, ``spurious_trans``
     on rotation-only segments; self-consistency headline ``revisit_consistency_gain``.
  3  (2026-12-06) the default estimator (``direct``) takes each keyframe's depth from the task's
     ground-truth depth at that frame's commanded pose (before: frame 0's only, then the video's own
     stereo, whose scale drifted on long tasks); motions are still solved from the video's pixels.
  4  (2026-12-06) the direct estimator re-localises a lost frame against the previous frame before
     giving up (before: it held the previous pose), and a frame that turned more than 8 deg since the
     previous one counts as lost (a tracking divergence on near, weakly textured objects had turned
     single frames by 20 deg on ground-truth video and flipped under imperceptible pixel changes).
     Action following leaves out the 1-s segments with a blank ground-truth frame (under 2 % of the
     pixels textured, benchmark.metrics.observability; counted in ``n_seg_blank``): no estimator can
     see motion there, not even on the ground truth.
  5  (2026-12-06) the direct estimator's fine-level guard: a coarse-to-fine result that explains the
     full-resolution frame worse than its best initialisation is solved again from that initialisation
     over the two finest levels (coarse levels had turned a strafe past a near post in front of bricks
     into a 4-6 deg pan per frame; on ground truth single_action__street1 rpe_trans_rel 0.74 -> 0.33,
     revisit_loop__apartment0 rpe_rot_deg 1.51 -> 0.17). Scoring also hands the estimator the
     commanded poses (``ref_poses``); the default estimator uses them only in its opt-in
     ``ref_depth="nearest"``.
  6  (2026-12-07) the long-horizon headline is ``drift_psnr_late`` (PSNR vs GT over the last quarter
     of the generated frames, benchmark.metrics.drift) instead of ``drift_psnr_slope``: the slope
     ranked frames in the wrong order level with ground truth (smoke long_horizon: shuffled +0.008,
     reversed -0.00004 dB/s against 0.000) and a random-walk-drifting oracle (-0.073) above a frozen
     video (-0.198) by less than noise; the slope stays a diagnostic column. Nothing else moved.
  7  (2026-12-07) ``revisit_consistency_gain``'s controls are earlier frames j (never frame 0) that do
     not see what the revisiting frame a sees, nearest in time to the first visit b, and the gain is
     S(G[a], G[b]) - mean S(G[a], G[j]) (benchmark.metrics.retrieval). Protocol 6 compared the pair
     with other pairs of the same time gap anywhere in the video, so a video that showed nothing after
     frame 0 (its mean colour) won: smoke suite 13.2 dB (faded into: 20.5) against the ground truth's
     11.3, and a bundled-model candidate that collapsed to grey scored 12.6 against its bundle's 6.8.
     Now the held one scores -4.85 (ground truth 10.38, shuffled -0.85; candidates searched: 256, was 64
     evenly spaced); the metric-validity section gained that check (the ``blank``
     reference). Nothing else moved.
"""
from __future__ import annotations

PROTOCOL_VERSION = 7

# Headline metrics and their direction (+1: higher is better, -1: lower is better). The gate checks
# these by default; ``drift_psnr_late`` only on long-horizon tasks.
HEADLINE_METRICS: dict[str, int] = {
    "revisit_psnr_gt": +1,
    "revisit_consistency_gain": +1,
    "rpe_trans_rel": -1,
    "rpe_rot_deg": -1,
    "drift_psnr_late": +1,
}

# Where a headline metric is defined (so a NaN there is a failure, not "undefined by definition"):
# on the tasks whose count metric (computed from ground truth / the command, the same for every model
# of a task) is > 0, and for the metrics in HEADLINE_FAMILIES only on those task families.
HEADLINE_DEFINED_BY: dict[str, str] = {
    "revisit_psnr_gt": "revisit_pairs",
    "revisit_consistency_gain": "revisit_gain_pairs",
    "rpe_trans_rel": "n_seg_trans",
    "rpe_rot_deg": "n_seg",
}
HEADLINE_FAMILIES: dict[str, tuple[str, ...]] = {"drift_psnr_late": ("long_horizon",)}
