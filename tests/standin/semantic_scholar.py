"""Semantic Scholar's paper batch endpoint: a JSON list in request order, ``null`` for unknowns.

Only the fields asked for are served (``paperId`` always); an unknown field, a body that is not
``{"ids": [...]}`` or more than 500 IDs get ``400 {"error": ...}``, as the real API answers.
"""

from __future__ import annotations

import json
from typing import Any

from .catalogue import Catalogue
from .citations import Citation
from .common import Answer, first, json_answer

MAX_IDS = 500
FIELDS = frozenset(
    {
        "externalIds",
        "corpusId",
        "url",
        "title",
        "abstract",
        "authors",
        "venue",
        "year",
        "citationCount",
        "influentialCitationCount",
        "referenceCount",
        "isOpenAccess",
        "openAccessPdf",
        "publicationDate",
        "tldr",
    }
)


def parse_ids(body: bytes) -> list[Any] | str:
    """The ``ids`` list of a batch body, or why the body is refused."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "Unable to parse the request body as JSON"
    ids = data.get("ids") if isinstance(data, dict) else None
    if not isinstance(ids, list):
        return 'Request body must be a JSON object with an "ids" list'
    return ids


def resolve(catalogue: Catalogue, ident: str) -> Citation | None:
    """``ARXIV:<id>`` (prefix in any case, no version), ``DOI:``, ``CorpusId:`` or a paperId."""
    prefix, _, rest = ident.partition(":")
    if not rest:
        return next((c for c in catalogue.citations.values() if c.paper_id == ident), None)
    prefix = prefix.lower()
    if prefix == "arxiv":
        return catalogue.citations.get(rest)
    if prefix == "doi":
        return next(
            (c for c in catalogue.citations.values() if (c.doi or "").lower() == rest.lower()), None
        )
    if prefix == "corpusid" and rest.isdigit():
        return next((c for c in catalogue.citations.values() if c.corpus_id == int(rest)), None)
    return None


def answer(catalogue: Catalogue, method: str, params: dict[str, list[str]], body: bytes) -> Answer:
    if method != "POST":
        return json_answer(405, {"message": "Method Not Allowed"})
    wanted = [f.strip() for f in first(params, "fields", "title").split(",") if f.strip()]
    unknown = [f for f in wanted if f not in FIELDS and f != "paperId"]
    if unknown:
        return json_answer(400, {"error": f"Unrecognized or unsupported fields: {unknown}"})
    ids = parse_ids(body)
    if isinstance(ids, str):
        return json_answer(400, {"error": ids})
    if len(ids) > MAX_IDS:
        return json_answer(400, {"error": f"Cannot process more than {MAX_IDS} ids at once"})
    if not all(isinstance(i, str) for i in ids):
        return json_answer(400, {"error": "ids must be strings"})
    out: list[dict[str, Any] | None] = []
    for ident in ids:
        citation = resolve(catalogue, ident)
        if citation is None:
            out.append(None)
            continue
        full = citation.fields()
        out.append({"paperId": citation.paper_id} | {f: full[f] for f in wanted if f in FIELDS})
    return json_answer(200, out)


def reshape(kind: str, normal: Answer) -> Answer:
    """``wrong_length``: one item short (or one extra ``null`` for an empty list);
    ``object``: the list wrapped in ``{"data": [...]}``; ``huge_numbers``: every paper with
    ``citationCount`` 10^20, ``referenceCount`` 2^63 and ``year`` 10^12."""
    if normal.status != 200 or not normal.body:
        return normal
    items = json.loads(normal.body)
    if kind == "shape:wrong_length":
        return json_answer(200, items[:-1] if items else [None])
    if kind == "shape:object":
        return json_answer(200, {"data": items})
    if kind == "shape:huge_numbers":
        huge = {"citationCount": 10**20, "referenceCount": 2**63, "year": 10**12}
        return json_answer(200, [None if item is None else item | huge for item in items])
    return normal
