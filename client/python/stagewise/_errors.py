"""The one exception type: a gRPC status code and a message."""

import grpc


class Error(Exception):
    """A failed call, or rows that cannot be sent.

    `code` is a grpc.StatusCode (`code.name` is "NOT_FOUND", ...); `details` is the server's
    own message (or the client's, for rows it refused); str(error) also says which model, at
    which target, and for a chunked call which rows."""

    def __init__(self, code: grpc.StatusCode, details: str, context: str = ""):
        self.code = code
        self.details = details
        self.context = context
        prefix = f"{context}: " if context else ""
        super().__init__(f"{prefix}{code.name}: {details}")


class InputError(Error, ValueError):
    """Rows the client refused before sending anything (a missing column, a cell that does not
    fit its feature, a file that cannot be read); code is INVALID_ARGUMENT."""

    def __init__(self, details: str):
        super().__init__(grpc.StatusCode.INVALID_ARGUMENT, details)
