"""Label import: CSV, JSON lines and COCO (categories, keypoints) onto a project's items."""
