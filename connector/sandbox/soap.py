"""The sandbox org's SOAP endpoint (partner API, ``/services/Soap/u/{version}``): ``deleteByExample()``
for big-object rows, the one SOAP call the connector makes.

Shapes follow the SOAP API Developer Guide: ``deleteByExample()`` takes sObject templates giving
every field of the big object's index ("You must specify all fields in the index. You can't
include a partially specified index or non-indexed field, and wildcards aren't supported."),
answers one ``DeleteByExampleResult`` (``entity``, ``errors``, ``rowCount``, ``success``) per
template, and succeeds again when the rows are already gone
(https://developer.salesforce.com/docs/platform/api/guide/sforce-api-calls-deletebyexample.html).
A template that breaks the index rule fails alone with ``INVALID_FIELD`` (the exact code the org
uses is not documented). Whole-call failures are SOAP faults, HTTP 500, ``faultcode``
``sf:<exceptionCode>``: ``INVALID_SESSION_ID`` for a bad session, ``INVALID_TYPE`` for an object
that is not a big object, ``EXCEEDED_ID_LIMIT`` above 200 templates.
"""
from __future__ import annotations

from xml.etree.ElementTree import Element, SubElement, tostring

from defusedxml import ElementTree

from .errors import ApiError
from .org import Org

SOAPENV = "http://schemas.xmlsoap.org/soap/envelope/"
PARTNER = "urn:partner.soap.sforce.com"
SOBJECT = "urn:sobject.partner.soap.sforce.com"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XML = "text/xml; charset=utf-8"
MAX_TEMPLATES = 200


def session_id(body: bytes) -> str | None:
    """The ``SessionHeader/sessionId`` of a SOAP request, or None."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return None
    return root.findtext(f"{{{SOAPENV}}}Header/{{{PARTNER}}}SessionHeader/{{{PARTNER}}}sessionId")


def handle(org: Org, body: bytes) -> tuple[int, bytes]:
    """Serve one SOAP request (already authenticated): status and XML answer."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        return fault("INVALID_XML", f"Unable to parse the request: {exc}")
    call = root.find(f"{{{SOAPENV}}}Body/{{{PARTNER}}}deleteByExample")
    if call is None:
        return fault("UNKNOWN_EXCEPTION", "This sandbox org serves only deleteByExample over SOAP")
    templates = call.findall(f"{{{PARTNER}}}sObjects")
    if len(templates) > MAX_TEMPLATES:
        return fault("EXCEEDED_ID_LIMIT", f"cannot submit more than {MAX_TEMPLATES} sObjects in one call")
    results = []
    for template in templates:
        sobject = template.findtext(f"{{{SOBJECT}}}type") or ""
        values = {_local(e.tag): (None if e.get(f"{{{XSI}}}nil") == "true" else (e.text or ""))
                  for e in template if e.tag != f"{{{SOBJECT}}}type"}
        obj = org.schema.get(sobject)
        if obj is None or not obj.is_big:
            return fault("INVALID_TYPE", f"sObject type '{sobject}' is not supported: deleteByExample() deletes "
                                         "big object rows")
        try:
            results.append((sobject, values, org.delete_big_by_example(obj.name, values), None))
        except ApiError as err:
            results.append((sobject, values, 0, err))
    return 200, _envelope(results)


def fault(code: str, message: str) -> tuple[int, bytes]:
    """A SOAP fault answer (HTTP 500)."""
    env = Element(f"{{{SOAPENV}}}Envelope")
    f = SubElement(SubElement(env, f"{{{SOAPENV}}}Body"), f"{{{SOAPENV}}}Fault")
    SubElement(f, "faultcode").text = f"sf:{code}"
    SubElement(f, "faultstring").text = f"{code}: {message}"
    return 500, _xml(env)


def _envelope(results: list[tuple[str, dict, int, ApiError | None]]) -> bytes:
    env = Element(f"{{{SOAPENV}}}Envelope")
    response = SubElement(SubElement(env, f"{{{SOAPENV}}}Body"), f"{{{PARTNER}}}deleteByExampleResponse")
    for sobject, values, count, err in results:
        result = SubElement(response, f"{{{PARTNER}}}result")
        entity = SubElement(result, f"{{{PARTNER}}}entity")
        entity.set(f"{{{XSI}}}type", "sf:sObject")
        SubElement(entity, f"{{{SOBJECT}}}type").text = sobject
        for name, value in values.items():
            SubElement(entity, f"{{{SOBJECT}}}{name}").text = value
        if err is not None:
            e = SubElement(result, f"{{{PARTNER}}}errors")
            for name in err.fields:
                SubElement(e, f"{{{PARTNER}}}fields").text = name
            SubElement(e, f"{{{PARTNER}}}message").text = err.message
            SubElement(e, f"{{{PARTNER}}}statusCode").text = err.error_code
        SubElement(result, f"{{{PARTNER}}}rowCount").text = str(count)
        SubElement(result, f"{{{PARTNER}}}success").text = "false" if err is not None else "true"
    return _xml(env)


def _xml(element: Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>' + tostring(element, encoding="unicode").encode("utf-8")


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]
