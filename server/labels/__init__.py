"""Labels: set, clear and history of an item's label, validated against the project task."""
