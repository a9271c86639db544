"""API errors and the gRPC status code each one maps to.

Servicers raise these; :func:`sensor.api.servicers.handle` turns them into
the status code and the message, which says what was wrong in words an
operator can act on ("no device 10.1.2.3", "action A1 is already cleared").
"""

from __future__ import annotations

import grpc


class ApiError(Exception):
    """An error the caller should see, with its gRPC status code."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL


class NotFound(ApiError):
    """The device, alert, incident or action named does not exist."""

    code = grpc.StatusCode.NOT_FOUND


class InvalidArgument(ApiError):
    """A request field is wrong: a bad duration, a missing reason."""

    code = grpc.StatusCode.INVALID_ARGUMENT


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


class Unavailable(ApiError):
    """The part of the sensor that would answer is not running."""

    code = grpc.StatusCode.UNAVAILABLE
