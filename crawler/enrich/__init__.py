"""Enrichment pipelines: arXiv metadata and tweet embeds."""


def failure_text(exc: BaseException) -> str:
    """A download failure as one short line for a record's ``error`` (no request dump)."""
    message = str(exc).split(" in request <", 1)[0].strip()
    if len(message) > 200:
        message = message[:199] + "…"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
