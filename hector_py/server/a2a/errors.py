"""A2A JSON-RPC errors: codes, and the ``google.rpc.ErrorInfo`` detail v1.0 puts in ``data``."""

from __future__ import annotations

from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
TASK_NOT_FOUND = -32001
TASK_NOT_CANCELABLE = -32002
PUSH_NOT_SUPPORTED = -32003
UNSUPPORTED_OPERATION = -32004
CONTENT_TYPE_NOT_SUPPORTED = -32005
VERSION_NOT_SUPPORTED = -32009
GUARDRAIL_BLOCKED = -32010
BUDGET_EXCEEDED = -32011
SUBSCRIBER_TOO_SLOW = -32012
RATE_LIMITED = -32013

ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"
A2A_DOMAIN = "a2a-protocol.org"
HECTOR_DOMAIN = "hector"

REASONS = {
    PARSE_ERROR: "PARSE_ERROR",
    INVALID_REQUEST: "INVALID_REQUEST",
    METHOD_NOT_FOUND: "METHOD_NOT_FOUND",
    INVALID_PARAMS: "INVALID_PARAMS",
    TASK_NOT_FOUND: "TASK_NOT_FOUND",
    TASK_NOT_CANCELABLE: "TASK_NOT_CANCELABLE",
    PUSH_NOT_SUPPORTED: "PUSH_NOTIFICATION_NOT_SUPPORTED",
    UNSUPPORTED_OPERATION: "UNSUPPORTED_OPERATION",
    CONTENT_TYPE_NOT_SUPPORTED: "CONTENT_TYPE_NOT_SUPPORTED",
    VERSION_NOT_SUPPORTED: "VERSION_NOT_SUPPORTED",
}
OWN_REASONS = {  # ours, outside the spec's codes
    GUARDRAIL_BLOCKED: "GUARDRAIL_BLOCKED",
    BUDGET_EXCEEDED: "BUDGET_EXCEEDED",
    SUBSCRIBER_TOO_SLOW: "SUBSCRIBER_TOO_SLOW",
    RATE_LIMITED: "RATE_LIMITED",
}


class RpcError(Exception):
    """A JSON-RPC error to send back to the caller."""

    def __init__(self, code: int, message: str, metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.metadata = code, message, metadata or {}

    def body(self, *, details: bool) -> dict[str, Any]:
        """The ``error`` member; with ``details`` (v1.0), ``data`` is a list holding one
        ``google.rpc.ErrorInfo`` (reason such as ``TASK_NOT_FOUND``, domain
        ``a2a-protocol.org``)."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if details:
            if self.code in REASONS:
                reason, domain = REASONS[self.code], A2A_DOMAIN
            else:
                reason, domain = OWN_REASONS.get(self.code, "INTERNAL_ERROR"), HECTOR_DOMAIN
            info = {
                "@type": ERROR_INFO_TYPE,
                "reason": reason,
                "domain": domain,
                "metadata": self.metadata,
            }
            error["data"] = [info]
        return error


HTTP_STATUS = {  # the HTTP+JSON binding's status and google.rpc code (spec section 5.4)
    TASK_NOT_FOUND: (404, "NOT_FOUND"),
    METHOD_NOT_FOUND: (404, "NOT_FOUND"),
    TASK_NOT_CANCELABLE: (409, "FAILED_PRECONDITION"),
    PUSH_NOT_SUPPORTED: (400, "UNIMPLEMENTED"),
    UNSUPPORTED_OPERATION: (400, "UNIMPLEMENTED"),
    CONTENT_TYPE_NOT_SUPPORTED: (415, "INVALID_ARGUMENT"),
    VERSION_NOT_SUPPORTED: (400, "FAILED_PRECONDITION"),
    BUDGET_EXCEEDED: (429, "RESOURCE_EXHAUSTED"),
    RATE_LIMITED: (429, "RESOURCE_EXHAUSTED"),
    GUARDRAIL_BLOCKED: (400, "FAILED_PRECONDITION"),
    SUBSCRIBER_TOO_SLOW: (429, "RESOURCE_EXHAUSTED"),
}


def rest_error(error: RpcError) -> tuple[int, dict[str, Any]]:
    """The HTTP status and body of ``error`` in the HTTP+JSON binding: a
    ``google.rpc.Status`` (``code``, ``status``, ``message``, ``details`` with the
    ``ErrorInfo``)."""
    status, name = HTTP_STATUS.get(error.code, (400, "INVALID_ARGUMENT"))
    details = error.body(details=True)["data"]
    return status, {
        "error": {"code": status, "status": name, "message": error.message, "details": details}
    }


def not_found(task_id: str) -> RpcError:
    """-32001 for ``task_id``: unknown, another agent's or another tenant's alike."""
    return RpcError(TASK_NOT_FOUND, f"task '{task_id}' not found")
