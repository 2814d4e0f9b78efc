"""The ASGI application factory: one app per listener, sharing one Services.

``create_app(services, stream)`` builds the FastAPI app for a listener; the transactional
and bulk listeners differ only in their default stream.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from postroom import __version__
from postroom.api import accountdocs, docpages, docs, errors, schemas
from postroom.api.audittrail import AuditTrail
from postroom.api.guards import RefuseNulQuery
from postroom.api.routes import accounts, sending
from postroom.domain.streams import Stream
from postroom.services import Services
from postroom.services.auth import Authenticator

# FastAPI's native OpenTelemetry: Postroom configures no provider, yet FastAPI asks
# OpenTelemetry on every request whether one is (reading the environment each time),
# ~4% of the event loop under load. Off; /metrics is Postroom's own.
NO_TELEMETRY: Any = {"tracing": False, "metrics": False, "logs": False}


def create_app(
    services: Services,
    stream: Stream = Stream.TRANSACTIONAL,
    authenticator: Authenticator | None = None,
) -> FastAPI:
    """Build the API for one listener."""
    app = FastAPI(
        telemetry=NO_TELEMETRY,
        title="Postroom",
        version=__version__,
        description="Self-hosted Email API, wire-compatible with the Mailtrap Email API.",
        # Served by api/docs.py with local assets instead of FastAPI's CDN-loaded pages.
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = services
    app.state.stream = stream
    app.state.authenticator = authenticator or Authenticator(services)
    errors.install(app)
    docpages.install(app)
    app.add_middleware(RefuseNulQuery)
    app.add_middleware(AuditTrail)
    for module in _routers():
        app.include_router(module.router)
    # The hot sending routes without FastAPI's per-request machinery (routes/sending.py).
    app.router.routes[0:0] = sending.plain_routes()
    if stream is Stream.TRANSACTIONAL:
        # Prometheus metrics: unauthenticated, so on the transactional listener only.
        from postroom.api.routes import metrics

        app.include_router(metrics.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _routers() -> list[Any]:
    from postroom.api.routes import (
        accesses,
        api_tokens,
        audit,
        campaigns,
        contacts,
        domains,
        email_logs,
        inbound,
        inbound_rules,
        inbound_threads,
        insights,
        sandbox,
        stats,
        suppressions,
        templates,
        tracking_opt_outs,
        webhooks,
    )

    return [
        sending,
        accounts,
        sandbox,
        domains,
        templates,
        suppressions,
        email_logs,
        stats,
        insights,
        tracking_opt_outs,
        contacts,
        campaigns,
        inbound,
        inbound_threads,
        inbound_rules,
        webhooks,
        api_tokens,
        accesses,
        audit,
    ]


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the hand-parsed request bodies' schemas."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(
        title=app.title, version=app.version, routes=app.routes, description=app.description
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (*schemas.DOC_MODELS, *docs.DOC_MODELS, *accountdocs.DOC_MODELS):
        components.update(_model_schemas(model))
    app.openapi_schema = schema
    return schema


def _model_schemas(model: type[BaseModel]) -> dict[str, Any]:
    doc = model.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
    defs = doc.pop("$defs", {})
    return {**defs, model.__name__: doc}
