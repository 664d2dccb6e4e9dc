"""The annotators' labelling page: static files served by the API."""
