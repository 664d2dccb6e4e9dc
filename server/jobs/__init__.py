"""Jobs: background work (training) queued for the worker."""
