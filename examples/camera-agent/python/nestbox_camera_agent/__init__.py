"""Nest-box camera agent: the camera's status report."""

import platform
import time

__version__ = "1.3.0"


def status():
    """The status the fleet dashboard polls every minute."""
    return {
        "agent": "nestbox-camera-agent",
        "version": __version__,
        "host": platform.node(),
        "reportedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
