"""The one error type of concept tagging, with a short stable reason code."""

from __future__ import annotations

from schemas.errors import ReasonError


class ConceptKbError(ReasonError):
    """A knowledge base that cannot be built or loaded.

    Reason codes: `rrf_missing`, `rrf_malformed`, `kb_missing`, `kb_incomplete`, `kb_empty`,
    `semtype_unknown`, `dependency_missing`.
    """
