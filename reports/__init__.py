"""reports — single-file HTML reports of harness runs (offline: no CDN, no external resources)."""

from .conformance import render_conformance, write_conformance

__all__ = ["render_conformance", "write_conformance"]
