"""The sandbox org's Outbound Messages: what an org's outbound message action posts to its endpoint.

The envelope follows the recorded message in tests/sources/outbound-message-notification.xml (the
Outbound Messaging WSDL's `notifications` element): the org id in its 18-character form, an action
id, the SOAP URLs, and one `Notification` (its id, and the record's type and Id).
"""
from __future__ import annotations

import urllib.request

from connector.salesforce.ids import id_suffix

ENVELOPE = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>{org}</OrganizationId>
   <ActionId>04k57000000TOUIAA4</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/60.0/{org15}</EnterpriseUrl>
   <PartnerUrl>https://example.my.salesforce.com/services/Soap/u/60.0/{org15}</PartnerUrl>
   <Notification>
    <Id>{notification}</Id>
    <sObject xsi:type="sf:{sobject}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>{record}</sf:Id>
    </sObject>
   </Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>
"""


def message(org_id: str, sobject: str, record_id: str, notification_id: str) -> bytes:
    """The SOAP body of one notification; `org_id` in its 15- or 18-character form."""
    org15 = org_id[:15]
    return ENVELOPE.format(org=org15 + id_suffix(org15), org15=org15, sobject=sobject, record=record_id,
                           notification=notification_id).encode()


def send(url: str, org_id: str, sobject: str, record_id: str, notification_id: str, *,
         timeout: float = 30) -> int:
    """Post one notification to an Outbound Message endpoint as Salesforce does; the HTTP status."""
    request = urllib.request.Request(url, data=message(org_id, sobject, record_id, notification_id),
                                     headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return answer.status
