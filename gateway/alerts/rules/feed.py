"""Which rule reads which stored message: one function for inline and elected evaluation.

The ingest (gateway.ingest.dispatch) calls :func:`feed` inside its transaction when the rules
run inline; the elected evaluator (gateway.alerts.evaluator) calls it on the journal's rows in
commit order. :func:`reads` says which messages go into the journal.
"""

from __future__ import annotations

from datetime import datetime

from contracts.models import (
    AccessEvent,
    Availability,
    CommandResult,
    DeviceState,
    DoorEvent,
    GalleryAck,
    Heartbeat,
    SecurityEvent,
    WireModel,
)
from contracts.topics import ParsedTopic
from gateway.alerts.originators import bridge_originator, device_originator, gate_originator
from gateway.alerts.rules.engine import AlertRules
from gateway.alerts.types import Signal

_READ = (
    AccessEvent,
    DoorEvent,
    SecurityEvent,
    Availability,
    Heartbeat,
    DeviceState,
    GalleryAck,
    CommandResult,
)


def reads(model: WireModel) -> bool:
    """Whether any rule reads this kind of message."""
    return isinstance(model, _READ)


def feed(
    rules: AlertRules, topic: ParsedTopic, model: WireModel, now: datetime, *, gaps: bool = True
) -> list[Signal]:
    """The signals one stored message raises; ``gaps`` False skips event-gap detection (a
    replica that sees only part of each gate's stream)."""
    if isinstance(model, AccessEvent):
        signals = rules.on_access(model, now)
    elif isinstance(model, DoorEvent):
        signals = rules.on_door(model, now)
    elif isinstance(model, SecurityEvent):
        signals = rules.on_security(model, now)
    elif isinstance(model, Availability):
        return _availability(rules, topic, model, now)
    elif isinstance(model, Heartbeat):
        return rules.on_heartbeat(model, topic.site, topic.building, now)
    elif isinstance(model, DeviceState):
        return rules.on_device_state(model, now)
    elif isinstance(model, GalleryAck | CommandResult):
        signals = []
    else:
        return []
    if not gaps or topic.gate_id is None:
        return signals
    originator = gate_originator(topic.site, topic.building, topic.gate_id)
    return signals + rules.on_seq(originator, model.seq, now)


def _availability(
    rules: AlertRules, topic: ParsedTopic, model: Availability, now: datetime
) -> list[Signal]:
    if topic.kind == "gate" and topic.gate_id is not None:
        originator = gate_originator(topic.site, topic.building, topic.gate_id)
    elif topic.kind == "device" and topic.room is not None and topic.device_id is not None:
        originator = device_originator(topic.site, topic.building, topic.room, topic.device_id)
    elif topic.kind == "bridge" and topic.device_id is not None:
        return rules.on_availability(
            bridge_originator(topic.site, topic.device_id), topic.site, "", model.state, now
        )
    else:
        return []
    return rules.on_availability(originator, topic.site, topic.building, model.state, now)
