"""Embedded ray-cast renderer (Open3D RaycastingScene / Embree, CPU)."""
