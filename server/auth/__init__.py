"""Bearer tokens: the admin token and per-project owner/annotator tokens."""
