"""The one error type of concept tagging, with a short stable reason code."""

from __future__ import annotations


class ConceptKbError(Exception):
    """A knowledge base that cannot be built or loaded.

    Reason codes: `rrf_missing`, `rrf_malformed`, `kb_missing`, `kb_incomplete`, `kb_empty`,
    `semtype_unknown`, `dependency_missing`.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
