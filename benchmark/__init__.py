"""benchmark: revisit task suites, the WorldModel interface and adapters, pose estimation,
metrics, scoring, leaderboard/report rendering and the regression gate."""
