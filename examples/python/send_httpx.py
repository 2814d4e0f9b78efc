"""Send one email through Postroom's HTTP API with plain httpx (no SDK).

    pip install httpx
    POSTROOM_URL=https://mail.example.com POSTROOM_TOKEN=pr_... \
        EXAMPLE_FROM=app@your-domain.example EXAMPLE_TO=you@example.org python send_httpx.py

A private CA is trusted with SSL_CERT_FILE=/path/ca.pem. Prints the message ids.
"""

import os
import ssl

import httpx

cafile = os.environ.get("SSL_CERT_FILE")
verify = ssl.create_default_context(cafile=cafile) if cafile else True

response = httpx.post(
    f"{os.environ['POSTROOM_URL'].rstrip('/')}/api/send",
    headers={"Authorization": f"Bearer {os.environ['POSTROOM_TOKEN']}"},
    json={
        "from": {"email": os.environ["EXAMPLE_FROM"], "name": "Postroom example"},
        "to": [{"email": os.environ["EXAMPLE_TO"]}],
        "subject": "Hello from httpx and Postroom",
        "text": "It works: sent with plain httpx.",
        "html": "<p>It works: sent with <b>plain httpx</b>.</p>",
        "category": "examples",
    },
    verify=verify,
    timeout=30,
)
response.raise_for_status()
print(" ".join(response.json()["message_ids"]))
