"""The `goreports` command: composes core, workers, operator and api into programs."""
