"""The one SOAP API call revsync needs: `deleteByExample()`, the only way to delete big-object rows
from outside Apex.

"Use deleteByExample() to delete big object data from your org using an sObject as a template
for what to delete. [...] Define an sObject using all the fields that make up the index of the
big object. [...] Repeating a successful deleteByExample() operation results in success, even if
the data has already been deleted." (SOAP API Developer Guide, deleteByExample(),
https://developer.salesforce.com/docs/platform/api/guide/sforce-api-calls-deletebyexample.html;
Big Objects Implementation Guide, "Delete Data in a Custom Big Object":
https://developer.salesforce.com/docs/atlas.en-us.bigobjects.meta/bigobjects/big_object_delete.htm).

The call goes to the partner endpoint `/services/Soap/u/{version}` with the session id of the
REST session in a `SessionHeader`; each sObject template is an `sObjects` element with its
`type` and its index fields (the partner WSDL's shape, as in the partner `upsert()` sample).
The answer holds one `DeleteByExampleResult` per template, in order: `entity`, `errors`,
`rowCount` (rows deleted), `success`
(https://developer.salesforce.com/docs/platform/api/guide/sforce-api-calls-deletebyexample-result.html).
Faults come back as HTTP 500 with a `soapenv:Fault` whose `faultcode` is `sf:<exceptionCode>`;
they are translated to the same errors as REST answers with that code. Answers are parsed with
defusedxml. At most 200 templates go in one call, the SOAP API's per-call record limit for
writes (Salesforce App Limits, "SOAP API Call Limits").
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from xml.etree.ElementTree import Element, SubElement, tostring

from defusedxml import ElementTree

from connector.errors import RevsyncError
from connector.salesforce.errors import UnexpectedResponse, from_response
from connector.salesforce.records import RecordError
from connector.salesforce.soql import identifier

if TYPE_CHECKING:
    from connector.salesforce.client import SalesforceClient

SOAPENV = "http://schemas.xmlsoap.org/soap/envelope/"
PARTNER = "urn:partner.soap.sforce.com"
SOBJECT = "urn:sobject.partner.soap.sforce.com"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
#: templates per call
MAX_PER_CALL = 200
#: the HTTP status a REST answer carries for these fault codes (so one table sorts both)
_FAULT_STATUS = {"INVALID_SESSION_ID": 401, "REQUEST_LIMIT_EXCEEDED": 403, "SERVER_UNAVAILABLE": 503,
                 "API_DISABLED_FOR_ORG": 403, "INSUFFICIENT_ACCESS": 403}


@dataclass(frozen=True)
class DeleteResult:
    """One DeleteByExampleResult: whether the template's rows are gone, and how many were deleted."""

    success: bool
    row_count: int = 0
    errors: tuple[RecordError, ...] = ()


def xsd_value(value: Any) -> str:
    """A field value as SOAP text: date-times in UTC with milliseconds and `Z`, exact decimals."""
    if isinstance(value, dt.datetime):
        utc = value.astimezone(dt.timezone.utc) if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        raise TypeError("a float cannot go to Salesforce exactly; use Decimal")
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def delete_by_example_envelope(session_id: str, sobject: str, templates: Iterable[Mapping[str, Any]]) -> bytes:
    """The SOAP request deleting every row that matches each template (all its index fields)."""
    env = Element(f"{{{SOAPENV}}}Envelope")
    header = SubElement(SubElement(env, f"{{{SOAPENV}}}Header"), f"{{{PARTNER}}}SessionHeader")
    SubElement(header, f"{{{PARTNER}}}sessionId").text = session_id
    call = SubElement(SubElement(env, f"{{{SOAPENV}}}Body"), f"{{{PARTNER}}}deleteByExample")
    for template in templates:
        obj = SubElement(call, f"{{{PARTNER}}}sObjects")
        SubElement(obj, f"{{{SOBJECT}}}type").text = sobject
        for name, value in template.items():
            if name == "attributes":
                continue
            field = SubElement(obj, identifier(name))
            if value is None:
                field.set(f"{{{XSI}}}nil", "true")
            else:
                field.text = xsd_value(value)
    return b'<?xml version="1.0" encoding="UTF-8"?>' + tostring(env, encoding="unicode").encode("utf-8")


def parse_delete_by_example(content: bytes) -> list[DeleteResult]:
    """The DeleteByExampleResult list of a successful answer, in template order."""
    try:
        root = ElementTree.fromstring(content)
    except ElementTree.ParseError as exc:
        raise UnexpectedResponse(f"Salesforce deleteByExample answered with XML that could not be parsed: {exc}") \
            from exc
    body = root.find(f"{{{SOAPENV}}}Body")
    response = body.find(f"{{{PARTNER}}}deleteByExampleResponse") if body is not None else None
    if response is None:
        raise UnexpectedResponse("Salesforce deleteByExample answered without a deleteByExampleResponse")
    out = []
    for result in response.findall(f"{{{PARTNER}}}result"):
        errors = tuple(RecordError(error_code=_text(e, "statusCode"), message=_text(e, "message"),
                                   fields=tuple(f.text or "" for f in e.findall(f"{{{PARTNER}}}fields")))
                       for e in result.findall(f"{{{PARTNER}}}errors"))
        out.append(DeleteResult(success=_text(result, "success") == "true",
                                row_count=int(_text(result, "rowCount") or 0), errors=errors))
    return out


def fault_error(status: int, content: bytes, *, what: str, now: dt.datetime) -> RevsyncError:
    """Our error for a SOAP fault (or any non-XML error answer), sorted like the REST error codes."""
    try:
        root = ElementTree.fromstring(content)
    except ElementTree.ParseError:
        return from_response(status, content, what=what, now=now)  # a proxy's 503 page, say
    fault = root.find(f"{{{SOAPENV}}}Body/{{{SOAPENV}}}Fault")
    if fault is None:
        return from_response(status, content, what=what, now=now)
    code = (fault.findtext("faultcode") or "").rpartition(":")[2] or None
    message = fault.findtext("faultstring") or ""
    body = json.dumps([{"message": message, "errorCode": code}])
    return from_response(_FAULT_STATUS.get(code or "", status if status != 500 else 400), body, what=what, now=now)


def delete_by_example(client: SalesforceClient, sobject: str,
                      templates: list[Mapping[str, Any]]) -> list[DeleteResult]:
    """Delete the big-object rows matching each template, 200 templates a call; one result each."""
    results: list[DeleteResult] = []
    for start in range(0, len(templates), MAX_PER_CALL):
        chunk = templates[start:start + MAX_PER_CALL]
        got = client._call("deleteByExample", lambda sf: _post(client, sobject, chunk))
        if len(got) != len(chunk):
            raise UnexpectedResponse(f"Salesforce deleteByExample of {len(chunk)} {sobject} templates answered "
                                     f"with {len(got)} results")
        results += got
    return results


def _post(client: SalesforceClient, sobject: str, templates: list[Mapping[str, Any]]) -> list[DeleteResult]:
    token = client._token
    assert token is not None
    body = delete_by_example_envelope(token.access_token.get_secret_value(), sobject, templates)
    url = f"{token.instance_url}/services/Soap/u/{client.settings.api_version}"
    response = client._session.post(url, data=body, timeout=client.settings.timeout_seconds,
                                    headers={"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": '""'},
                                    hooks={"response": [client._on_response]})
    if response.status_code != 200:
        raise fault_error(response.status_code, response.content, what="deleteByExample", now=client._clock.now())
    return parse_delete_by_example(response.content)


def _text(element: Any, name: str) -> str:
    return element.findtext(f"{{{PARTNER}}}{name}") or ""
