"""Enrichment pipelines: arXiv metadata and tweet embeds."""

# Request meta key: an answer as the retry middleware's check parsed it, so the pipeline does not
# parse the same body twice. Each check clears it first: a retry copies the meta of its original.
PARSED = "parsed_answer"


def failure_text(exc: BaseException) -> str:
    """A download failure as one short line for a record's ``error`` (no request dump)."""
    message = str(exc).split(" in request <", 1)[0].strip()
    if len(message) > 200:
        message = message[:199] + "…"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
