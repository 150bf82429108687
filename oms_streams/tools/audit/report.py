"""The audit's report: its findings grouped by kind, rendered as text for ``oms audit`` or as JSON
for ``oms audit --json``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from oms_streams.tools.audit.model import Finding, FindingKind, TopicRead

EXAMPLES_PER_KIND = 20


@dataclass(frozen=True, slots=True)
class AuditReport:
    findings: tuple[Finding, ...]
    counts: Mapping[str, int]
    """What was checked and what was in flight or redelivered (not findings)."""
    read: Mapping[str, TopicRead] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.findings

    def by_kind(self) -> dict[FindingKind, list[Finding]]:
        grouped: dict[FindingKind, list[Finding]] = {}
        for finding in self.findings:
            grouped.setdefault(finding.kind, []).append(finding)
        return {kind: grouped[kind] for kind in FindingKind if kind in grouped}

    def render(self, examples: int = EXAMPLES_PER_KIND) -> str:
        lines = ["read:"]
        width = max((len(topic) for topic in self.read), default=0)
        for topic, read in self.read.items():
            if read.missing:
                lines.append(f"  {topic:<{width}}  missing (read as empty)")
                continue
            bad = ""
            if read.undecodable:
                reasons = "; ".join(f"{reason} x{n}" for reason, n in read.reasons)
                bad = f", {read.undecodable:,} undecodable ({reasons})"
            plural = "" if read.records == 1 else "s"
            lines.append(f"  {topic:<{width}}  {read.records:>9,} record{plural}{bad}")
        lines.append("checked: " + ", ".join(f"{name} {n:,}" for name, n in self.counts.items()))
        grouped = self.by_kind()
        if not grouped:
            lines.append("clean: no findings")
        for kind, findings in grouped.items():
            lines.append(f"{kind.value}: {len(findings):,}")
            for finding in findings[:examples]:
                lines.append(f"  {finding.key}  {finding.detail}")
            if len(findings) > examples:
                lines.append(f"  ... and {len(findings) - examples:,} more")
        if grouped:
            total = len(self.findings)
            lines.append(f"{total:,} finding{'s' if total != 1 else ''} of {len(grouped)} kind(s)")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "counts": dict(self.counts),
            "findings": {
                kind.value: [{"key": f.key, "detail": f.detail} for f in findings]
                for kind, findings in self.by_kind().items()
            },
            "read": {
                topic: {
                    "records": read.records,
                    "undecodable": read.undecodable,
                    "missing": read.missing,
                    "reasons": dict(read.reasons),
                }
                for topic, read in self.read.items()
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)
