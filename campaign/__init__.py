"""Send bulk SMS, RCS and WhatsApp campaigns through Twilio Sender Pools, exactly once."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("campaign")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
