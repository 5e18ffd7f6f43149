"""GenoFed."""
