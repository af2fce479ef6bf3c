"""Error statuses with TF Serving's codes, and their HTTP and gRPC forms."""

import grpc

HTTP_CODES = {
    "OK": 200, "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400, "DEADLINE_EXCEEDED": 504, "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409, "PERMISSION_DENIED": 403, "RESOURCE_EXHAUSTED": 429, "FAILED_PRECONDITION": 400,
    "ABORTED": 409, "OUT_OF_RANGE": 400, "UNIMPLEMENTED": 501, "INTERNAL": 500, "UNAVAILABLE": 503, "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}


class ServingError(Exception):
    """A request error with an absl status code name (INVALID_ARGUMENT, NOT_FOUND, ...)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self):
        return HTTP_CODES[self.code]

    @property
    def grpc_code(self):
        return getattr(grpc.StatusCode, self.code)


def invalid(message):
    return ServingError("INVALID_ARGUMENT", message)


def not_found(message):
    return ServingError("NOT_FOUND", message)


def internal(error):
    """An unexpected exception as the error a client sees (the server logs the details)."""
    return ServingError("INTERNAL", f"internal error ({type(error).__name__}); the server log has the details")
