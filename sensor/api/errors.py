"""API errors and the gRPC status code each one maps to.

Servicers raise these; :func:`sensor.api.servicers.handle` turns them into
the status code and the message, which says what was wrong in words an
operator can act on ("no device 10.1.2.3", "action A1 is already cleared").
"""

from __future__ import annotations

import grpc

#: Characters of a caller's input that an error message quotes.
QUOTE_LIMIT = 80
#: Characters of an error message sent to the caller: gRPC carries it in
#: the trailers, whose size the client bounds (8 KiB by default) and
#: refuses whole when exceeded, losing the message.
MESSAGE_LIMIT = 1024


def quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` quoted for an error message, cut to its first ``limit``
    characters (then "...", and how long it was)."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def cut(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """``message`` cut to ``limit`` characters for the caller, marked so."""
    if len(message) <= limit:
        return message
    return message[: limit - 24] + f"... ({len(message)} characters)"


class ApiError(Exception):
    """An error the caller should see, with its gRPC status code."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL


class NotFound(ApiError):
    """The device, alert, incident or action named does not exist."""

    code = grpc.StatusCode.NOT_FOUND


class InvalidArgument(ApiError):
    """A request field is wrong: a bad duration, a missing reason."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class AlreadyExists(ApiError):
    """What the request would make is already there, such as a block in
    force that a create would not extend."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(ApiError):
    """The request is valid but the object's state forbids it, such as
    approving an action that is already cleared."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(ApiError):
    """The caller is known but may not do this."""

    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(ApiError):
    """The caller gave no credentials, or wrong ones."""

    code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhausted(ApiError):
    """A bounded resource of the server is all in use (follow streams)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(ApiError):
    """The part of the sensor that would answer is not running."""

    code = grpc.StatusCode.UNAVAILABLE
