"""Projects: the task, image size, backbone and training settings of one dataset."""
