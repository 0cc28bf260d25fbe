"""A library's streaming body (an httpx response, a botocore StreamingBody) as a raw binary
stream: the one place that closes the body with the stream. Subclasses read."""

import io
from typing import Any


class BodyStream(io.RawIOBase):
    def __init__(self, body: Any) -> None:
        super().__init__()
        self._body = body

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            try:
                self._body.close()
            finally:
                super().close()
