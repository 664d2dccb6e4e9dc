"""X-model core: pure PyTorch models, losses, augmentation, training, acquisition and export.

Knows nothing of the service or the worker; takes plain dataclass configs.
"""
