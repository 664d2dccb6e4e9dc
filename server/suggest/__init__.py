"""Suggest: which unlabelled items an annotator should label next, leased to them."""
