"""Label export: every labelled item of a project as CSV, JSON lines or COCO, streamed."""
