"""``GET /metrics``: Prometheus metrics, on the transactional listener only.

Unauthenticated, as Prometheus scrapers expect: it reveals queue sizes and event counts
(no addresses, no content), but operators should still keep the transactional port off
the public internet, or filter ``/metrics`` at their reverse proxy. It is left out of the
OpenAPI document, which describes the Email API.

The delivery engine may plug in its outbound connection counts by setting
``app.state.smtp_connections`` to a callable returning ``{site: open connections}``
(see :mod:`postroom.services.metrics`); without it that metric has no samples.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from postroom.services import Services, metrics

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def scrape(request: Request) -> Response:
    services: Services = request.app.state.services
    provider = getattr(request.app.state, "smtp_connections", None)
    # Set by api/health.py when the app runs in a `postroom` process (role and instance).
    identity = getattr(request.app.state, "identity", None)
    snapshot = await metrics.read_snapshot(services, provider, identity)
    return Response(metrics.render(snapshot), media_type=metrics.CONTENT_TYPE)
