"""How Flower is started: basic auth from settings, or loopback only without credentials."""

import ipaddress
import os
import sys

from domain.errors import ConfigurationError
from pipeline.settings import Settings


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def flower_command(settings: Settings, address: str, port: int
                   ) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that run Flower for this pipeline's broker.

    Credentials travel in Flower's environment (``FLOWER_BASIC_AUTH``), never on the command
    line where any user of the machine could read them.
    """
    settings.require_broker_url()
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLOWER_")}
    auth = settings.flower.basic_auth
    if auth is not None:
        env["FLOWER_BASIC_AUTH"] = auth.get_secret_value()
    elif not _is_loopback(address):
        raise ConfigurationError(
            f"Flower would serve {address} without a login: set CONVERSA_FLOWER__BASIC_AUTH "
            "(user:password) or keep it on 127.0.0.1")
    argv = [sys.executable, "-m", "celery", "-A", "workers", "flower",
            f"--address={address}", f"--port={port}"]
    return argv, env
