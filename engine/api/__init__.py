"""`runsheet serve`'s HTTP API (FastAPI). Imported only by the serve command: `import engine` stays light."""

from __future__ import annotations

from engine.api.app import create_app

__all__ = ["create_app"]
