"""Project deletion: rows, images no other project uses, model and job files."""
