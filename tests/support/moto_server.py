"""moto's S3 served over real HTTP on a loopback port, for tests and benchmarks of the S3 adapter.

moto keeps every object in memory (parts above ~5 MB spill to temporary files): a test double,
never a store. It logs each request through werkzeug even when told to be quiet, so that logger
is raised to ERROR here.
"""

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

#: Credentials moto accepts (it checks none); never real ones.
ACCESS_KEY_ID = "testing-access-key"
SECRET_ACCESS_KEY = "testing-secret-key"
REGION = "us-east-1"


@contextmanager
def moto_s3_server(host: str = "127.0.0.1") -> Iterator[str]:
    """A ThreadedMotoServer on ``host`` and a port the OS picks; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # Port 0: the OS picks a free port when the server binds, so no other program can take it
    # between choosing and binding.
    server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
    server.start()
    try:
        bound_host, port = server.get_host_and_port()
        yield f"http://{bound_host}:{port}"
    finally:
        server.stop()


def unique_bucket(prefix: str = "test") -> str:
    """A bucket name no other test uses (valid for S3: lower case, 3-63 characters)."""
    return f"{prefix}-{uuid.uuid4().hex[:20]}"
