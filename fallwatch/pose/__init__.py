"""Pose stage: top-down keypoints (in progress: the heatmap decoder is here; the crop, models and estimator follow)."""
