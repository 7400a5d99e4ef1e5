"""RulesConfig: thresholds, switches and severities of the event-driven alert rules."""

from __future__ import annotations

from typing import get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.models import ApplianceFault
from gateway.alerts.types import DEFAULT_SEVERITY, AlertType, Severity, SeverityValue

DEFAULT_FAULT_SEVERITY: dict[str, Severity] = {
    "leak": Severity.CRITICAL,
    "over_temperature": Severity.CRITICAL,
    "over_current": Severity.MAJOR,
    "overrun": Severity.MAJOR,  # a hair dryer left on: fire risk
    "heater_fault": Severity.MAJOR,
    "stuck": Severity.WARNING,
    "filter_exhausted": Severity.INFO,
}
# "offline" is a fault in DeviceState too, but it is reported as device_offline.
_APPLIANCE_FAULTS = frozenset(get_args(ApplianceFault)) - {"offline"}


class RulesConfig(BaseModel):
    """Thresholds, switches and severities of the alert rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    unknown_face_count: int = Field(
        default=3, ge=1, description="unknown faces at one gate within the window to raise"
    )
    unknown_face_window_s: float = Field(
        default=300.0, gt=0, description="sliding window for unknown faces, seconds"
    )
    unknown_face_reasons: tuple[str, ...] = Field(
        default=("unknown_face",),
        description="denial reasons (without a person id) that count as an unknown face",
    )
    presentation_attack_count: int = Field(
        default=2,
        ge=1,
        description="faces refused as photos or screens at one gate within the window to raise",
    )
    presentation_attack_window_s: float = Field(
        default=600.0, gt=0, description="sliding window for presentation attacks, seconds"
    )
    repeated_denial_count: int = Field(
        default=3, ge=1, description="denials of one known person within the window to raise"
    )
    repeated_denial_window_s: float = Field(
        default=600.0, gt=0, description="sliding window for denials of one person, seconds"
    )
    tailgating_cycle_s: float = Field(
        default=20.0,
        gt=0,
        description="a door cycle ends this long after its last access event when the door "
        "did not open (or the gate has no contact sensor)",
    )
    offline_grace_s: float = Field(
        default=60.0,
        ge=0,
        description="an edge or device must stay offline this long before an alert "
        "(rides out broker restarts and reconnects); 0 raises at once",
    )
    event_gap_grace_s: float | None = Field(
        default=None,
        ge=0,
        description="a gap in a gate's event sequence must stay unfilled this long before an "
        "event_gap alert; default: at once with one gateway, 30 s with elected evaluation "
        "(replicas commit a gate's events in any order)",
    )
    enabled: dict[AlertType, bool] = Field(
        default_factory=dict,
        description="switch alert types off (e.g. {tailgating: false, after_curfew: false}); "
        "types not listed are on",
    )
    severity: dict[AlertType, SeverityValue] = Field(
        default_factory=dict,
        description="severity per alert type, overriding the defaults "
        "(appliance_fault: use fault_severity)",
    )
    fault_severity: dict[str, SeverityValue] = Field(
        default_factory=dict,
        description="severity per appliance fault, overriding the defaults "
        "(leak and over_temperature critical, over_current major, ...)",
    )

    @model_validator(mode="after")
    def _check(self) -> RulesConfig:
        if AlertType.APPLIANCE_FAULT in self.severity:
            raise ValueError(
                "severity.appliance_fault: the severity of an appliance alert comes from its "
                "faults; set fault_severity instead"
            )
        unknown = sorted(set(self.fault_severity) - _APPLIANCE_FAULTS)
        if unknown:
            raise ValueError(
                f"fault_severity: unknown fault(s) {unknown}; known: {sorted(_APPLIANCE_FAULTS)}"
            )
        if not self.unknown_face_reasons:
            raise ValueError("unknown_face_reasons must list at least one denial reason")
        return self

    def is_enabled(self, alert_type: AlertType) -> bool:
        """Whether alerts of this type are raised at all."""
        return self.enabled.get(alert_type, True)

    def severity_of(self, alert_type: AlertType) -> Severity:
        """The configured severity of an alert type."""
        return self.severity.get(alert_type, DEFAULT_SEVERITY[alert_type])

    def severity_of_fault(self, fault: str) -> Severity:
        """The configured severity of one appliance fault (unknown faults: major)."""
        return self.fault_severity.get(fault, DEFAULT_FAULT_SEVERITY.get(fault, Severity.MAJOR))
