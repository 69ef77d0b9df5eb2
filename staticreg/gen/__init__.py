"""Generators: files rendered from a published tree (nginx config, listings)."""
