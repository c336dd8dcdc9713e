"""Execution backends: they carry out a placement exactly, one interface for every kind of cluster
(`base.ClusterBackend`); `ray_local.RayBackend` runs attempts on the Ray cluster the server joined."""
