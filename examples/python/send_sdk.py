"""Send one email through Postroom with the official Mailtrap Python SDK.

    pip install mailtrap
    POSTROOM_HOST=mail.example.com:443 POSTROOM_TOKEN=pr_... \
        EXAMPLE_FROM=app@your-domain.example EXAMPLE_TO=you@example.org python send_sdk.py

POSTROOM_HOST is the host[:port] of your Postroom's HTTPS API (the SDK speaks HTTPS only;
a private CA is trusted with REQUESTS_CA_BUNDLE=/path/ca.pem). Prints the message ids.
"""

import os

import mailtrap as mt
import mailtrap.client

host = os.environ["POSTROOM_HOST"]
# The management APIs (templates, logs, stats...) use GENERAL_HOST; sending uses api_host.
mailtrap.client.GENERAL_HOST = host

client = mt.MailtrapClient(token=os.environ["POSTROOM_TOKEN"], api_host=host)
response = client.send(
    mt.Mail(
        sender=mt.Address(email=os.environ["EXAMPLE_FROM"], name="Postroom example"),
        to=[mt.Address(email=os.environ["EXAMPLE_TO"])],
        subject="Hello from the Mailtrap SDK and Postroom",
        text="It works: sent with the official Python SDK.",
        category="examples",
    )
)
print(" ".join(response["message_ids"]))
