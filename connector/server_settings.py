"""The `[server]` table of the config: the Outbound Message server's settings and their defaults.

Apart from the server (connector.server) so that loading the config does not load the server's
HTTP, metrics and SOAP code.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connector.salesforce.ids import org_key

DEFAULT_OBJECTS = ("Opportunity", "Order")
#: 100 notifications of a few dozen fields stay well under this; long text areas are the outlier.
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
#: "A single SOAP message can include up to 100 notifications" (SOAP API Developer Guide,
#: "Understanding Notifications", https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/
#: sforce_api_om_outboundmessaging_notifications.htm): more is not Salesforce.
DEFAULT_MAX_NOTIFICATIONS = 100

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ServerSettings(BaseModel):
    """The `[server]` table: where to listen, which org(s) and objects to take messages for, TLS."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8787, ge=0, le=65535)
    org_ids: list[str] = Field(default_factory=list)
    objects: list[str] = Field(default_factory=lambda: list(DEFAULT_OBJECTS))
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, gt=0)
    #: mutual TLS: PEM bundle of the certificate(s) or CA(s) a client certificate must verify against
    client_ca_file: Path | None = None
    #: with client_ca_file: the subject CN that a certificate posting to /outbound must have
    client_cert_cn: str | None = Field(None, min_length=1)
    #: CIDRs whose (TCP peer) addresses may connect at all; empty = any
    allowed_sources: list[str] = Field(default_factory=list)
    max_notifications_per_message: int = Field(DEFAULT_MAX_NOTIFICATIONS, gt=0)
    #: read by the daemon (connector.daemon): at most this many Outbound-Message-triggered cycles a minute
    max_triggered_cycles_per_minute: int = Field(6, ge=1)
    notification_retention_days: int = Field(7, ge=1)
    threads: int = Field(32, ge=1, le=1024)
    request_timeout_seconds: float = Field(10.0, gt=0, le=300)

    @field_validator("org_ids")
    @classmethod
    def _org_ids_are_ids(cls, value: list[str]) -> list[str]:
        for org in value:
            org_key(org)  # raises ValueError naming the bad id
        return value

    @field_validator("allowed_sources")
    @classmethod
    def _sources_are_networks(cls, value: list[str]) -> list[str]:
        bad = []
        for source in value:
            try:
                ipaddress.ip_network(source, strict=True)
            except ValueError as exc:
                bad.append(f"{source!r} ({exc})")
        if bad:
            raise ValueError(f"not a CIDR network such as \"13.108.0.0/14\": {'; '.join(bad)}")
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: set both for HTTPS, or neither")
        if self.client_ca_file is not None and self.tls_cert is None:
            raise ValueError("client_ca_file needs HTTPS: set tls_cert and tls_key too")
        if self.client_cert_cn is not None and self.client_ca_file is None:
            raise ValueError("client_cert_cn needs client_ca_file: a CN is only trusted from a verified certificate")
        return self

    @property
    def source_networks(self) -> list[Network]:
        """`allowed_sources` parsed."""
        return [ipaddress.ip_network(source) for source in self.allowed_sources]

    @property
    def notification_retention(self) -> dt.timedelta:
        """How long processed notifications are kept."""
        return dt.timedelta(days=self.notification_retention_days)
