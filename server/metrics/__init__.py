"""Metrics: the learning curve of a project, one point per model version."""
