"""What the coordinator learns about one site during a run.

The study protocol (:mod:`genofed.coordinator.runner`) fills these records,
:mod:`genofed.coordinator.receipt_check` annotates them with the outcome of
each receipt check, and :mod:`genofed.coordinator.writers.provenance` writes
them into ``provenance.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SiteRecord:
    """What the coordinator learned about one site during a run."""

    node_id: int
    name: str
    facts: dict[str, str] = field(default_factory=dict)
    software_version: str = ""
    replies: list[dict[str, object]] = field(default_factory=list)
    #: Set when the site dropped out of the study: round, step, reason code, message.
    missing: dict[str, object] | None = None


__all__ = ["SiteRecord"]
