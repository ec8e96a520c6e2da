"""One module per upstream service."""
