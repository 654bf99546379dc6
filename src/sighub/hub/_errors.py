"""The hub's error base.  Each error carries the gRPC status it is answered with."""

from __future__ import annotations

import grpc

__all__ = ["HubError"]


class HubError(Exception):
    """A request the hub refuses: ``code`` is the gRPC status, the message names the
    object, the rule, what was received and what was expected."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @classmethod
    def invalid(cls, message: str) -> HubError:
        return cls(grpc.StatusCode.INVALID_ARGUMENT, message)

    @classmethod
    def denied(cls, message: str) -> HubError:
        return cls(grpc.StatusCode.PERMISSION_DENIED, message)

    @classmethod
    def unauthenticated(cls, message: str) -> HubError:
        return cls(grpc.StatusCode.UNAUTHENTICATED, message)

    @classmethod
    def not_found(cls, message: str) -> HubError:
        return cls(grpc.StatusCode.NOT_FOUND, message)

    @classmethod
    def exists(cls, message: str) -> HubError:
        return cls(grpc.StatusCode.ALREADY_EXISTS, message)

    @classmethod
    def precondition(cls, message: str) -> HubError:
        return cls(grpc.StatusCode.FAILED_PRECONDITION, message)

    @classmethod
    def exhausted(cls, message: str) -> HubError:
        return cls(grpc.StatusCode.RESOURCE_EXHAUSTED, message)

    @classmethod
    def unavailable(cls, message: str) -> HubError:
        return cls(grpc.StatusCode.UNAVAILABLE, message)
