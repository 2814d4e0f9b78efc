"""Django: send through Postroom with django-anymail's Mailtrap backend.

    pip install "django-anymail[mailtrap]"

Add this to settings.py. anymail calls MAILTRAP_API_URL + "send"; point it at your
Postroom's API. For tests, the pytest plugin's ``postroom_server`` gives the URL and a
token (docs/testing.md).
"""

import os

INSTALLED_APPS = [
    # ...
    "anymail",
]

EMAIL_BACKEND = "anymail.backends.mailtrap.EmailBackend"
ANYMAIL = {
    "MAILTRAP_API_TOKEN": os.environ["POSTROOM_TOKEN"],
    # e.g. https://mail.example.com/api/ (the trailing slash matters)
    "MAILTRAP_API_URL": os.environ["POSTROOM_URL"].rstrip("/") + "/api/",
    # To capture in a Postroom sandbox inbox instead of delivering:
    # "MAILTRAP_SANDBOX_ID": 1,
}
DEFAULT_FROM_EMAIL = "app@your-domain.example"
