"""Receiving Salesforce Outbound Messages: store each notification, then acknowledge it.

Salesforce sends a SOAP `notifications` call with up to 100 `Notification` elements and resends
it until the listener answers `<Ack>true</Ack>`, for up to 24 hours, with retries spaced up to two
hours apart; a message may arrive more than once and out of order (SOAP API Developer Guide,
"Understanding Notifications"). So the receiver writes every notification to the store in one
transaction *before* it answers: a crash after the commit costs a resend, never a notification,
and the resend is dropped by its notification id. Polling stays the safety net for anything
Salesforce gave up on.

A message whose OrganizationId is not ours, or that is not a well-formed `notifications` call,
gets an error and no ack, as the security considerations of Outbound Messaging ask ("the client
application should check that the organization Id is included in the message").

Org ids are not secret, so the same page's other advice is available too (SOAP API Developer Guide,
"Considerations for Security", https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/
sforce_api_om_outboundmessaging_security.htm): accept requests only from Salesforce's IP ranges
(`allowed_sources`, checked against the socket's peer address, never a forwarded header, by the
server right after the accept and again here) and validate Salesforce's client certificate (mutual
TLS: the server's `client_ca_file`, plus `client_cert_cn` checked here). A message with more
notifications than Salesforce ever puts in one is refused before anything is stored, and the daemon
is woken only for notifications that were new: a resend, a forgery or a refusal wakes nothing.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from connector.clock import Clock
from connector.salesforce.ids import ID_PATTERN, org_key
from connector.salesforce.ids import id_suffix as id_suffix  # its home until the config needed org_key
from connector.server_settings import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_NOTIFICATIONS, DEFAULT_OBJECTS, Network
from connector.store import schema as t

log = logging.getLogger(__name__)

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
SOBJECT_NS = "urn:sobject.enterprise.soap.sforce.com"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

ACK = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}">'
    "<soapenv:Body>"
    f'<notificationsResponse xmlns="{OUTBOUND_NS}"><Ack>true</Ack></notificationsResponse>'
    "</soapenv:Body>"
    "</soapenv:Envelope>"
).encode()

OnNotified = Callable[[str, list[str]], None]


class MessageRefused(Exception):
    """A message that gets no ack; `client` says whether Salesforce sent something wrong."""

    def __init__(self, reason: str, *, status: str, soap: bool, client: bool = True):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.soap = soap
        self.client = client


@dataclass(frozen=True)
class Notified:
    """One notification of a message: its id, the object and the record it is about."""

    notification_id: str
    object: str
    record_id: str


@dataclass(frozen=True)
class OutboundMessage:
    """A parsed `notifications` call."""

    organization_id: str
    action_id: str
    notifications: tuple[Notified, ...]


@dataclass(frozen=True)
class Notification:
    """A stored notification, as the daemon reads it back."""

    id: int
    notification_id: str
    object: str
    record_id: str
    received_at: dt.datetime


def _text(parent, tag: str, what: str) -> str:
    element = parent.find(tag)
    value = (element.text or "").strip() if element is not None else ""
    if not value:
        raise MessageRefused(f"{what} is missing", status="500 Internal Server Error", soap=True)
    return value


def parse_message(body: bytes, max_notifications: int = DEFAULT_MAX_NOTIFICATIONS) -> OutboundMessage:
    """Parse an Outbound Message body with defusedxml; raise MessageRefused if it is not one.

    A message with more than `max_notifications` Notification elements is refused as a whole.
    """
    try:
        # SOAP 1.1 section 3: "A SOAP message MUST NOT contain a Document Type Declaration", so
        # any DTD is refused before entities (billion laughs, external files) could be expanded.
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise MessageRefused(f"forbidden XML construct: {type(exc).__name__}",
                             status="400 Bad Request", soap=False) from exc
    except SafeET.ParseError as exc:
        raise MessageRefused(f"not well-formed XML: {exc}", status="400 Bad Request", soap=False) from exc
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise MessageRefused("not a SOAP 1.1 envelope", status="400 Bad Request", soap=False)
    call = root.find(f"{{{SOAP_ENV}}}Body/{{{OUTBOUND_NS}}}notifications")
    if call is None:
        raise MessageRefused("the SOAP body holds no Outbound Messaging notifications call",
                             status="500 Internal Server Error", soap=True)
    org = _text(call, f"{{{OUTBOUND_NS}}}OrganizationId", "OrganizationId")
    action = _text(call, f"{{{OUTBOUND_NS}}}ActionId", "ActionId")
    elements = call.findall(f"{{{OUTBOUND_NS}}}Notification")
    if len(elements) > max_notifications:
        raise MessageRefused(f"{len(elements)} notifications in one message; Salesforce sends at most "
                             f"{max_notifications}", status="500 Internal Server Error", soap=True)
    notified = []
    for number, element in enumerate(elements, start=1):
        where = f"Notification {number}"
        notification_id = _text(element, f"{{{OUTBOUND_NS}}}Id", f"{where}: Id")
        sobject = element.find(f"{{{OUTBOUND_NS}}}sObject")
        if sobject is None:
            raise MessageRefused(f"{where}: sObject is missing", status="500 Internal Server Error", soap=True)
        # xsi:type is a QName such as "sf:Order"; the prefix is bound to the enterprise sObject
        # namespace in the message, so the local part is the object's API name.
        object_type = (sobject.get(f"{{{XSI_NS}}}type") or "").rpartition(":")[2]
        if not object_type:
            raise MessageRefused(f"{where}: sObject has no xsi:type", status="500 Internal Server Error", soap=True)
        record_id = _text(sobject, f"{{{SOBJECT_NS}}}Id", f"{where}: sObject Id")
        if not ID_PATTERN.fullmatch(record_id) or len(notification_id) > 64:
            raise MessageRefused(f"{where}: malformed Id", status="500 Internal Server Error", soap=True)
        notified.append(Notified(notification_id, object_type, record_id))
    if not notified:
        raise MessageRefused("the message holds no Notification", status="500 Internal Server Error", soap=True)
    return OutboundMessage(org, action, tuple(notified))


def store_notifications(conn: Connection, notified: Sequence[Notified], at: dt.datetime) -> int:
    """Insert the notifications not stored yet (by notification id); return how many were new."""
    return len(store_new_notifications(conn, notified, at))


def store_new_notifications(conn: Connection, notified: Sequence[Notified], at: dt.datetime) -> list[Notified]:
    """Insert the notifications not stored yet (by notification id); return those that were new.

    Salesforce resends a notification until it is acked, so a duplicate is the normal case. The
    ids already present are read first and only the others inserted: plain SQL on every dialect.
    Two deliveries of the same message racing each other make one insert fail on the unique
    notification id; the caller's retry then finds the row and inserts nothing.
    """
    unique = list({n.notification_id: n for n in notified}.values())
    ids = [n.notification_id for n in unique]
    present = set(conn.execute(select(t.notifications.c.notification_id)
                               .where(t.notifications.c.notification_id.in_(ids))).scalars())
    new = [n for n in unique if n.notification_id not in present]
    if new:
        conn.execute(insert(t.notifications), [
            {"notification_id": n.notification_id, "object": n.object, "record_id": n.record_id,
             "received_at": at} for n in new])
    return new


def pending_notifications(conn: Connection, limit: int) -> list[Notification]:
    """The oldest notifications the daemon has not processed yet, at most `limit`."""
    n = t.notifications.c
    query = (select(n.id, n.notification_id, n.object, n.record_id, n.received_at)
             .where(n.processed_at.is_(None)).order_by(n.id).limit(limit))
    return [Notification(r.id, r.notification_id, r.object, r.record_id, r.received_at)
            for r in conn.execute(query)]


def mark_processed(conn: Connection, ids: Iterable[int], at: dt.datetime) -> int:
    """Mark stored notifications (by row id) as processed at `at`; return how many changed."""
    wanted = list(ids)
    if not wanted:
        return 0
    n = t.notifications.c
    result = conn.execute(update(t.notifications).where(n.id.in_(wanted), n.processed_at.is_(None))
                          .values(processed_at=at))
    return result.rowcount


def purge_processed(conn: Connection, older_than: dt.datetime) -> int:
    """Delete the notifications processed before `older_than`; return how many went.

    Pending notifications are never deleted, whatever their age. A resend of a purged notification
    (Salesforce retries for at most 24 hours, so only with a retention under a day) is stored again
    and costs one more read of its record, nothing else.
    """
    n = t.notifications.c
    result = conn.execute(delete(t.notifications).where(n.processed_at.is_not(None), n.processed_at < older_than))
    return result.rowcount




def fault(reason: str, *, client: bool = True) -> bytes:
    """A SOAP 1.1 Fault envelope; Salesforce shows the faultstring in its delivery status queue."""
    code = "Client" if client else "Server"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body><soapenv:Fault>'
        f"<faultcode>soapenv:{code}</faultcode><faultstring>{escape(reason)}</faultstring>"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    ).encode()


class OutboundReceiver:
    """WSGI application receiving Outbound Messages for the configured org(s) and objects.

    `on_notified(object, record_ids)` runs after the commit and before the answer, once per object
    of the message: it should only wake the daemon (set an event, queue the ids), since Salesforce
    gives up on a delivery not answered within 60 seconds and sends it again later (Salesforce
    Help, "Outbound Message Considerations").
    """

    def __init__(self, store: Engine, clock: Clock, *, org_ids: Sequence[str],
                 objects: Sequence[str] = DEFAULT_OBJECTS, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 max_notifications: int = DEFAULT_MAX_NOTIFICATIONS,
                 allowed_sources: Sequence[Network] = (), client_cert_cn: str | None = None,
                 on_notified: OnNotified | None = None, on_answer: Callable[[str], None] | None = None):
        if not org_ids:
            raise ValueError("at least one org id is needed to receive Outbound Messages")
        self.store = store
        self.clock = clock
        self.org_keys = frozenset(org_key(org) for org in org_ids)
        self.objects = frozenset(objects)
        self.max_body_bytes = max_body_bytes
        self.max_notifications = max_notifications
        self.allowed_sources = tuple(allowed_sources)
        self.client_cert_cn = client_cert_cn
        self.on_notified = on_notified
        #: told the status of every answer (the server counts them in /metrics)
        self.on_answer = on_answer

    def __call__(self, environ, start_response):
        if self.on_answer is None:
            return self._answer(environ, start_response)
        on_answer = self.on_answer

        def counted(status, headers, *args):
            on_answer(status)
            return start_response(status, headers, *args)
        return self._answer(environ, counted)

    def _answer(self, environ, start_response):
        try:
            self._check_request(environ)
            body = self._read_body(environ)
            message = self._check_message(parse_message(body, self.max_notifications))
            new = self._store(message)
        except MessageRefused as refused:
            log.warning("outbound message refused from %s: %s",
                        environ.get("REMOTE_ADDR", "?"), refused.reason)
            # cheroot reads what is left of a body with a length before answering (the client then
            # reads the answer reliably); a chunked one it does not, so that connection is closed.
            chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
            return self._refuse(refused, start_response, close=chunked)
        self._notify(new)
        start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8"),
                                  ("Content-Length", str(len(ACK)))])
        return [ACK]

    def _check_request(self, environ) -> None:
        # Who sends comes first: a refused source or certificate learns nothing else.
        if self.allowed_sources and not source_allowed(environ.get("REMOTE_ADDR", ""), self.allowed_sources):
            raise MessageRefused(f"source address {environ.get('REMOTE_ADDR') or '?'} is not in "
                                 "[server] allowed_sources", status="403 Forbidden", soap=False)
        if self.client_cert_cn is not None:
            # Set by the TLS layer (cheroot's builtin adapter) from the verified client certificate.
            cn = environ.get("SSL_CLIENT_S_DN_CN")
            if cn != self.client_cert_cn:
                raise MessageRefused(f"client certificate CN {cn or '(none)'!r} is not the one in "
                                     "[server] client_cert_cn", status="403 Forbidden", soap=False)
        if environ.get("REQUEST_METHOD") != "POST":
            raise MessageRefused("only POST is accepted", status="405 Method Not Allowed", soap=False)
        # SOAP 1.1 over HTTP is sent as text/xml (SOAP 1.1 section 6.1.1); charset may follow.
        media = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
        if media != "text/xml":
            raise MessageRefused(f"content type {media or 'none'!r} is not text/xml",
                                 status="415 Unsupported Media Type", soap=False)

    def _read_body(self, environ) -> bytes:
        # here, not at the top: this module is also the store's side of notifications, which
        # `revsync status` reads; only the server, with cheroot loaded already, reads bodies
        from cheroot.errors import MaxSizeExceeded

        stream = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH") or ""
        too_large = MessageRefused(f"body larger than {self.max_body_bytes} bytes",
                                   status="413 Content Too Large", soap=False)
        if length:
            try:
                size = int(length)
            except ValueError:
                size = -1
            if size < 0:
                raise MessageRefused("malformed Content-Length", status="400 Bad Request", soap=False)
            if size > self.max_body_bytes:
                raise too_large
            return stream.read(size)
        if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            raise MessageRefused("Content-Length is required", status="411 Length Required", soap=False)
        try:
            body = stream.read(self.max_body_bytes + 1)
        except TimeoutError:
            raise  # the read deadline: the server answers 408 and closes the connection
        except MaxSizeExceeded:
            # cheroot's chunked reader counts the chunk-size lines too and stops at its own limit
            raise too_large from None
        except OSError as exc:
            if "Too Large" in str(exc):  # cheroot: a chunk that would cross the limit
                raise too_large from None
            raise
        except ValueError:
            raise MessageRefused("malformed chunked body", status="400 Bad Request", soap=False) from None
        if len(body) > self.max_body_bytes:
            _drain(stream)
            raise too_large
        return body

    def _check_message(self, message: OutboundMessage) -> OutboundMessage:
        try:
            org = org_key(message.organization_id)
        except ValueError:
            raise MessageRefused("malformed OrganizationId", status="500 Internal Server Error",
                                 soap=True) from None
        if org not in self.org_keys:
            raise MessageRefused(f"OrganizationId {message.organization_id} is not a configured org",
                                 status="500 Internal Server Error", soap=True)
        # An outbound message for an object we do not sync is a setup mistake in the org: refusing
        # it leaves it visible in Setup → Outbound Messages instead of silently dropping it.
        others = sorted({n.object for n in message.notifications} - self.objects)
        if others:
            raise MessageRefused(f"object(s) {', '.join(others)} are not received here "
                                 f"(configured: {', '.join(sorted(self.objects))})",
                                 status="500 Internal Server Error", soap=True)
        return message

    def _store(self, message: OutboundMessage) -> list[Notified]:
        at = self.clock.now()
        for attempt in (1, 2):
            try:
                with self.store.begin() as conn:
                    new = store_new_notifications(conn, message.notifications, at)
            except IntegrityError as exc:
                # Another delivery of the same notification committed between our read and our
                # insert; the second attempt sees its row and inserts nothing.
                failure: SQLAlchemyError = exc
                if attempt == 1:
                    continue
            except SQLAlchemyError as exc:
                failure = exc
            else:
                log.info("outbound message from action %s: %d notification(s), %d new",
                         message.action_id, len(message.notifications), len(new))
                return new
            break
        log.error("outbound message not stored (Salesforce will resend it): %s", failure)
        raise MessageRefused("the connector could not store the message; it will be retried",
                             status="500 Internal Server Error", soap=True, client=False) from failure

    def _notify(self, new: Sequence[Notified]) -> None:
        """Wake the daemon for the notifications stored just now; a resend wakes nothing.

        A notification stored by an earlier delivery is either processed or still pending, and a
        pending one is read by the daemon's next cycle (the first one after a restart, too).
        """
        if self.on_notified is None or not new:
            return
        by_object: dict[str, list[str]] = {}
        for n in new:
            ids = by_object.setdefault(n.object, [])
            if n.record_id not in ids:
                ids.append(n.record_id)
        for sobject, record_ids in by_object.items():
            try:
                self.on_notified(sobject, record_ids)
            except Exception:
                # The notifications are committed: the daemon's poll of pending notifications
                # picks them up, so a failed trigger only delays the sync and must not cost the ack.
                log.exception("immediate sync trigger failed for %s; the daemon's poll will catch up", sobject)

    @staticmethod
    def _refuse(refused: MessageRefused, start_response, *, close: bool = False):
        if refused.soap:
            body = fault(refused.reason, client=refused.client)
            content_type = "text/xml; charset=utf-8"
        else:
            body = (refused.reason + "\n").encode()
            content_type = "text/plain; charset=utf-8"
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        if refused.status.startswith("405"):
            headers.append(("Allow", "POST"))
        if close:
            headers.append(("Connection", "close"))
        start_response(refused.status, headers)
        return [body]


def source_allowed(address: str, networks: Sequence[Network]) -> bool:
    """Whether a peer address (as the socket gives it) is inside one of `networks`."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
    return any(ip in network for network in networks)


def _drain(stream) -> None:
    """Read what is left of a refused chunked body, up to the server's own limit and deadline.

    Closing a connection with unread data makes the kernel send a reset, which can destroy the
    answer before the client reads it; a body far over the limit is cut off by the server anyway.
    """
    try:
        while stream.read(64 * 1024):
            pass
    except Exception:  # the server's size limit or read deadline: stop here, the answer still goes
        pass
