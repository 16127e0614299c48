"""UPS-RS state changes on the scheduled steps (``ups.state``); routes in ``api.ups_rs``."""

from fhirmwl.ups.state import install

__all__ = ["install"]
