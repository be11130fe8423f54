"""The Salesforce error a sandbox handler raises; the app renders it in Salesforce's error shapes."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ApiError(Exception):
    """One REST API error: HTTP status, ``errorCode``, message and the fields concerned."""

    status: int
    error_code: str
    message: str
    fields: list[str] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.error_code}: {self.message}"

    def rest_body(self) -> list[dict]:
        """The top-level REST error array: ``[{"message", "errorCode"(, "fields")}]``.

        Key order follows the recorded responses (samples/error-*.json): ``message`` first.
        """
        item: dict = {"message": self.message, "errorCode": self.error_code}
        if self.fields is not None:
            item["fields"] = list(self.fields)
        return [item]

    def save_error(self) -> dict:
        """The per-record error inside a SaveResult (sObject Collections): ``statusCode``/``message``/``fields``."""
        return {"statusCode": self.error_code, "message": self.message, "fields": list(self.fields or [])}


def not_found() -> ApiError:
    """The 404 Salesforce returns for a missing record or resource."""
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")
