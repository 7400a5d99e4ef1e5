"""The gateway's configuration: one pydantic tree, validated at start (`dormguard gateway`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, IPvAnyNetwork, field_validator, model_validator

from contracts.settings import MqttSettings, Secret, StrictModel
from contracts.topics import check_segment
from gateway.alerts.lifecycle import EscalationPolicy
from gateway.alerts.rules.config import RulesConfig
from gateway.alerts.rules.welfare import WelfareConfig
from gateway.notify.config import NotificationsConfig

PLACEHOLDER_SECRETS = frozenset(
    {"", "change-me", "changeme", "secret", "password", "admin", "dormguard", "placeholder"}
)


class GatewayMqttSettings(MqttSettings):
    """MQTT 5 ingest: a persistent session, so nothing published while we are down is lost."""

    client_id: str | None = Field(
        default=None,
        description="stable per replica (the broker keeps the session under it); "
        "defaults to 'dormguard-gateway-<site>'",
    )
    session_expiry_s: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description="how long the broker keeps our session and queued messages while we are away",
    )
    shared_group: str | None = Field(
        default=None,
        description="shared-subscription group ($share/<group>/...) so replicas split the load",
    )
    replica_delivery: Literal["all", "shared"] = Field(
        default="all",
        description="with shared_group (replicas): 'all' = every replica subscribes to every "
        "QoS 1 event stream and the database stores each event once (nothing waits for a "
        "dead replica; survives broker restarts); 'shared' = the broker splits them "
        "($share/<group>/...), for throughput: mosquitto 2.0.11 loses events on shared "
        "subscriptions across a broker restart (docs/reliability.md)",
    )
    receive_maximum: int = Field(
        default=5000, ge=10, le=65535, description="QoS 1 messages in flight to us at once"
    )

    @field_validator("protocol")
    @classmethod
    def _mqtt5(cls, v: str) -> str:
        if v != "5":
            raise ValueError("the gateway needs MQTT 5 (persistent sessions, shared subscriptions)")
        return v

    @field_validator("shared_group")
    @classmethod
    def _group(cls, v: str | None) -> str | None:
        return None if v is None else check_segment(v, "shared subscription group")


class DatabaseSettings(StrictModel):
    url: str = Field(
        default="sqlite:///gateway.db",
        description="SQLAlchemy URL: sqlite:///PATH (default, WAL) or postgresql+psycopg://...",
    )
    password: Secret | None = Field(
        default=None, description="database password, merged into the URL at start"
    )


class SqliteSeriesSettings(StrictModel):
    path: Path = Field(default=Path("series.db"), description="embedded time-series file")
    retention_days: float = Field(default=30, gt=0)
    write_ahead: bool = Field(
        default=True,
        description="samples are in the file before the ingest acknowledges their messages, so "
        "a killed gateway loses none (off: an in-memory queue written every 0.5 s, lost on a "
        "kill)",
    )


class InfluxSettings(StrictModel):
    url: str = Field(description="InfluxDB 2.x URL, e.g. http://influxdb:8086")
    org: str
    bucket: str
    token: Secret
    backlog_path: Path = Field(
        default=Path("influx-backlog.db"), description="on-disk backlog while InfluxDB is down"
    )
    max_backlog_rows: int = Field(default=2_000_000, ge=1000)
    batch_size: int = Field(default=5000, ge=1)
    flush_interval_s: float = Field(default=1.0, gt=0)
    write_ahead: bool = Field(
        default=True,
        description="points reach the on-disk backlog before the ingest acknowledges their "
        "messages, so a killed gateway replays them at its next start (off: an in-memory "
        "queue, lost on a kill)",
    )


class TimeSeriesSettings(StrictModel):
    sqlite: SqliteSeriesSettings = Field(
        default_factory=SqliteSeriesSettings,
        description="always kept: device history for the console (short retention)",
    )
    influx: InfluxSettings | None = Field(
        default=None, description="long-term sink for Grafana; off by default"
    )


class ApiSettings(StrictModel):
    host: str = Field(default="127.0.0.1", description="listen address")
    port: int = Field(default=8080, ge=0, le=65535, description="0 picks a free port")
    token_ttl_s: int = Field(default=12 * 3600, ge=60, description="login token lifetime")
    metrics_token: Secret | None = Field(
        default=None,
        description="a long-lived bearer token Prometheus may scrape /metrics with (and nothing "
        "else); without it /metrics needs an admin or auditor login",
    )
    login_max_failures: int = Field(
        default=5,
        ge=1,
        description="failed logins from one address (and for one account from one address) that "
        "cost no wait; each further one doubles the wait before the next try, from 1 s up to 5 "
        "min (an account from everywhere: up to 30 s); see docs/decisions/0007",
    )
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="reverse proxies (addresses or networks) whose X-Forwarded-For names the "
        "client for login throttling; empty: the connection's own address, X-Forwarded-For "
        "ignored",
    )
    auth_events_retention_days: float = Field(
        default=365,
        gt=0,
        description="how long the account security audit (auth_events: login throttling "
        "started, throttles lifted, with user names and addresses) is kept; older rows are "
        "deleted hourly",
    )
    ws_auth_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="how long a new live-alert WebSocket may take to send its first message "
        '{"type": "auth", "token": ...} before it is closed with 4401',
    )
    ws_token_in_url: bool = Field(
        default=False,
        description="also accept the login token as ?token= on the live-alert WebSocket, for "
        "old clients only: proxies and access logs record URLs, so tokens leak",
    )


class GateEntry(StrictModel):
    building: str
    id: str
    direction: Literal["in", "out"] = "in"
    name: str = ""

    @model_validator(mode="after")
    def _segments(self) -> Self:
        check_segment(self.building, "building")
        check_segment(self.id, "gate id")
        return self


class BuildingEntry(StrictModel):
    id: str
    name: str = ""

    @field_validator("id")
    @classmethod
    def _segment(cls, v: str) -> str:
        return check_segment(v, "building")


class EnrolmentSettings(StrictModel):
    gallery_key: Secret = Field(description="AES-256 key shared with the gates (base64)")
    template_key: Secret | None = Field(
        default=None,
        description="key for templates at rest in the database; defaults to the gallery key",
    )
    keep_photos: bool = Field(default=False, description="keep enrolment photos (encrypted)")
    photo_retention_days: float = Field(default=30, gt=0)
    min_face_px: int = Field(default=80, ge=40)
    min_sharpness: float = Field(default=20.0, ge=0)
    max_photo_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)


class SigningSettings(StrictModel):
    private_key: Secret = Field(
        description="the gateway's Ed25519 key that signs gate commands and galleries: base64 "
        "of the 32-byte seed or a PKCS#8 PEM (dormguard keys generate); gates trust its "
        "public half (command_auth.trusted_keys)"
    )


class RetentionSettings(StrictModel):
    """How long the tables that grow with every message keep their rows (hourly upkeep).

    The access log is not pruned: its hash chain is the audit evidence (docs/privacy.md).
    """

    device_states_days: float = Field(
        default=90, gt=0, description="appliance state history (the console's device history)"
    )
    cleared_alerts_days: float = Field(
        default=365, gt=0, description="cleared alerts, with their history and notices"
    )


class GatewayConfig(StrictModel):
    site: str
    mode: Literal["production", "development"] = Field(
        default="production",
        description="development (demos only) accepts placeholder secrets and serves the "
        "OpenAPI document; production refuses both and requires command_signing",
    )
    mqtt: GatewayMqttSettings = Field(default_factory=GatewayMqttSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    timeseries: TimeSeriesSettings = Field(default_factory=TimeSeriesSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    buildings: list[BuildingEntry] = Field(default_factory=list)
    gates: list[GateEntry] = Field(default_factory=list)
    rules: RulesConfig = Field(default_factory=RulesConfig)
    escalation: EscalationPolicy = Field(default_factory=EscalationPolicy)
    welfare: WelfareConfig = Field(default_factory=WelfareConfig)
    notifications: NotificationsConfig = Field(
        default_factory=NotificationsConfig,
        description="WeCom, DingTalk, Feishu, e-mail and webhook notifications of alerts",
    )
    command_signing: SigningSettings | None = Field(
        default=None,
        description="signs commands and gallery updates; without it no gate obeys this gateway "
        "(required in production)",
    )
    enrolment: EnrolmentSettings | None = Field(
        default=None, description="needed to enrol faces and push galleries to gates"
    )
    ingest_worker: bool = Field(
        default=True,
        description="store batches in a worker process (its own interpreter lock) beside the "
        "MQTT client: ~1.6x the ingest rate on two or more cores; false keeps one process",
    )
    welfare_interval_s: float = Field(
        default=60, gt=0, description="how often welfare warnings are re-evaluated"
    )
    dedup_days: float = Field(
        default=14, gt=0, description="remember event ids this long to drop redeliveries"
    )
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    alert_evaluation: Literal["auto", "inline", "elected"] = Field(
        default="auto",
        description="where the alert rules run: inline (in the ingest transaction; one "
        "gateway), elected (one replica, chosen by the database, reads the committed rule "
        "journal in order; docs/decisions/0016), auto (elected when mqtt.shared_group is set)",
    )
    rule_journal_keep_s: float = Field(
        default=3600,
        ge=600,
        description="elected evaluation: evaluated journal rows are kept this long, so a new "
        "evaluator rebuilds its windows from them (at least the longest rule window)",
    )

    @property
    def elected_rules(self) -> bool:
        """Whether one elected replica evaluates the rules from the journal."""
        if self.alert_evaluation == "auto":
            return self.mqtt.shared_group is not None
        return self.alert_evaluation == "elected"

    @field_validator("site")
    @classmethod
    def _site(cls, v: str) -> str:
        return check_segment(v, "site")

    @model_validator(mode="after")
    def _signing_in_production(self) -> Self:
        if self.mode == "production" and self.command_signing is None:
            raise ValueError(
                "command_signing is required in production: gates refuse unsigned commands and "
                "galleries (create a key with: dormguard keys generate --out FILE)"
            )
        return self

    @model_validator(mode="after")
    def _known_buildings(self) -> Self:
        known = {b.id for b in self.buildings}
        seen: set[tuple[str, str]] = set()
        for i, gate in enumerate(self.gates):
            if known and gate.building not in known:
                raise ValueError(
                    f"gates[{i}]: building {gate.building!r} is not listed under 'buildings'"
                )
            key = (gate.building, gate.id)
            if key in seen:
                raise ValueError(f"gates[{i}]: gate {gate.building}/{gate.id} is listed twice")
            seen.add(key)
        return self

    @model_validator(mode="after")
    def _journal_covers_windows(self) -> Self:
        r = self.rules
        longest = max(
            r.unknown_face_window_s, r.presentation_attack_window_s, r.repeated_denial_window_s
        )
        if self.rule_journal_keep_s < longest:
            raise ValueError(
                f"rule_journal_keep_s ({self.rule_journal_keep_s:g}) must be at least the longest "
                f"rule window ({longest:g} s): a new evaluator rebuilds its windows from it"
            )
        return self

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"dormguard-gateway-{self.site}"


def check_secret(name: str, value: str, mode: str) -> str:
    """Refuse placeholder secrets outside development mode; ValueError names the secret."""
    if mode != "development" and (
        value.strip().lower() in PLACEHOLDER_SECRETS or len(value.strip()) < 12
    ):
        raise ValueError(
            f"{name} is a placeholder or shorter than 12 characters; set a real secret "
            "(or run with mode: development for a demo)"
        )
    return value
