"""Liveness, readiness and metrics of one Postroom process, whatever its roles.

- ``GET /healthz``: the process's event loop answers (liveness: restart it if not).
- ``GET /readyz``: the process can do its work: its database answers within
  ``READY_TIMEOUT`` seconds (send no traffic to it if not). The body says the roles,
  the instance and, for a scheduler, whether it leads or stands by (both are ready).
- ``GET /metrics``: the Prometheus metrics of services/metrics.py, with the process's
  ``role`` and ``instance`` labels.

The API role answers them on its transactional port (:func:`install`); the roles
without an HTTP listener (smtp, worker, scheduler) on a small listener of their own,
``--health-port`` (:func:`create_health_app`). All are unauthenticated, like /metrics:
keep those ports off the public internet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from sqlalchemy import text
from starlette.responses import JSONResponse

from postroom.errors import StoreUnavailable
from postroom.services import Services
from postroom.services.metrics import ConnectionsProvider, Identity

READY_TIMEOUT = 2.0

router = APIRouter(tags=["health"])


@dataclass
class ProcessHealth:
    """What /healthz, /readyz and /metrics report about this process."""

    services: Services
    role: str
    instance: str
    connections: ConnectionsProvider | None = None
    # Extra facts for /readyz's body (e.g. {"scheduler": "leading"}), read at each probe.
    details: dict[str, Callable[[], Any]] = field(default_factory=dict)

    async def ready(self) -> tuple[bool, str]:
        """Whether the database answers now, and why not."""
        try:
            await asyncio.wait_for(
                self.services.db.read(lambda conn: conn.execute(text("SELECT 1")).scalar()),
                timeout=READY_TIMEOUT,
            )
        except TimeoutError:
            return False, "the database did not answer in time"
        except StoreUnavailable:
            return False, "the database is unavailable"
        except Exception as exc:  # readiness must answer, whatever failed
            return False, f"the database check failed: {type(exc).__name__}"
        return True, ""

    def body(self) -> dict[str, Any]:
        facts = {name: read() for name, read in self.details.items()}
        return {"role": self.role, "instance": self.instance, **facts}


def _health(request: Request) -> ProcessHealth:
    health: ProcessHealth = request.app.state.health
    return health


@router.get("/healthz", include_in_schema=False)
async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", **_health(request).body()})


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    health = _health(request)
    ok, reason = await health.ready()
    request.app.state.identity = Identity(health.role, health.instance, ok)
    if ok:
        return JSONResponse({"status": "ready", **health.body()})
    return JSONResponse({"status": "unavailable", "reason": reason, **health.body()}, 503)


def install(app: FastAPI, health: ProcessHealth) -> None:
    """Answer /healthz and /readyz on ``app`` and label its /metrics with the process."""
    app.state.health = health
    app.state.identity = Identity(health.role, health.instance)
    if health.connections is not None:
        app.state.smtp_connections = health.connections
    app.include_router(router)


def create_health_app(health: ProcessHealth) -> FastAPI:
    """The small app of ``--health-port``: /healthz, /readyz and /metrics only."""
    from postroom.api.app import NO_TELEMETRY
    from postroom.api.routes import metrics

    app = FastAPI(telemetry=NO_TELEMETRY, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.services = health.services
    install(app, health)
    app.include_router(metrics.router)
    return app
