"""Items: the images of a project (upload, zip import, list, fetch, delete)."""
