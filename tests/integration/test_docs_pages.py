"""The API's documentation pages work offline: every asset they load is served locally.

/docs (Swagger UI) and /redoc used to load their scripts and styles from a public CDN,
so on a machine without internet access they stayed blank.
"""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

# Attributes that load something (src, href, ReDoc's spec-url) and Swagger's `url: '…'`.
_REFERENCE = re.compile(
    r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url\s*:\s*["']([^"']+)["']"""
)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    html = response.text
    references = {a or b for a, b in _REFERENCE.findall(html)}
    assert references, html
    for reference in references:
        assert "//" not in reference, f"{page} loads {reference} from elsewhere"
        assert reference.startswith("/"), reference
        fetched = client.get(reference)
        assert fetched.status_code == 200, reference
        assert fetched.content, reference
    assert "/openapi.json" in references
    assert "http://" not in html and "https://" not in html


def test_swagger_ui_assets_are_what_they_claim(client: TestClient) -> None:
    html = client.get("/docs").text
    script = re.search(r'src="([^"]+swagger-ui-bundle\.js)"', html)
    assert script is not None
    body = client.get(script.group(1))
    assert body.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert b"SwaggerUIBundle" in body.content
