"""pipeline/embedders."""
