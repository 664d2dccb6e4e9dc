"""Prometheus metrics of the API process: requests per route template, jobs by state, the
broker queue's depth and the oldest queued job's age, served at ``GET /metrics``."""
