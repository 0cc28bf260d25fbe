"""Whether a process of this machine is there: the one signal-0 check every caller uses (the
worker liveness probe, the local stack's launchers)."""

import os


def signal_answers(pid: int, *, group: bool = False) -> bool:
    """True when process ``pid`` (or, with ``group``, any process of group ``pid``) exists,
    including one we may not signal; a zombie counts (callers that care look at /proc)."""
    try:
        if group:
            os.killpg(pid, 0)
        else:
            os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
