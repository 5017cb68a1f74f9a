"""Shared builders of the client tests: credentials, a client on a mocked base URL, campaigns."""

from __future__ import annotations

import base64
from typing import Any

import hyber_async as hy

CLIENT_ID = "1234"
LOGIN = "user"
PASSWORD = "Pa55-w0rd-QZX"
"""Distinctive, so that a leak of it anywhere is easy to find."""
BASIC = "Basic " + base64.b64encode(f"{LOGIN}:{PASSWORD}".encode()).decode()
"""The Authorization header the API expects for these credentials."""
BASE_URL = "https://hyber.test"
ENDPOINT = f"{BASE_URL}/{CLIENT_ID}"
"""Where the five endpoints live for this client (respx ``base_url``)."""
NO_WAIT = hy.RetryPolicy(wait=False)
"""Retries without back-off, so that tests are fast."""

JOB = {"job_id": "5f6c0b4c-8b0d-4b9b-9d8e-7e2c1b0e4a11"}
SYNC = {
    "messages": [
        {
            "processed": True,
            "phone_number": "380961111111",
            "message_id": "9f60ac8f-e721-5027-b838-e6fcb95fcd7a",
            "extra_id": "AD-1",
            "accepted": True,
        },
        {
            "processed": True,
            "phone_number": "380962222222",
            "message_id": "e5ea7286-6849-52d7-9e1b-8719b736283e",
            "extra_id": "AD-2",
            "accepted": True,
        },
    ]
}
"""A sync answer to ``MESSAGES`` or ``RECIPIENTS``: one result per item, in request order."""


def make_client(**kwargs: Any) -> hy.HyberClient:
    """A client of ``BASE_URL`` with the test credentials and no retry delays."""
    settings: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "login": LOGIN,
        "password": PASSWORD,
        "base_url": BASE_URL,
        "retry": NO_WAIT,
    }
    settings.update(kwargs)
    return hy.HyberClient(**settings)


def batch_campaign(**kwargs: Any) -> hy.Campaign:
    """A valid Viber-then-SMS campaign for batches; ``kwargs`` override envelope fields."""
    options = hy.ChannelOptions(
        viber=hy.ViberOptions(ttl=60), sms=hy.SmsOptions(alpha_name="GMSU", ttl=300)
    )
    settings: dict[str, Any] = {
        "channels": (hy.Channel.VIBER, hy.Channel.SMS),
        "channel_options": options,
    }
    settings.update(kwargs)
    return hy.Campaign(**settings)


def broadcast_campaign() -> hy.Campaign:
    """A valid Viber broadcast whose text uses ``%name%``."""
    options = hy.ChannelOptions(viber=hy.ViberOptions(ttl=60, text="Dear %name%!"))
    return hy.Campaign(channels=(hy.Channel.VIBER,), channel_options=options)


MESSAGES = (
    hy.Message(380961111111, "Hello one", "AD-1"),
    hy.Message(380962222222, "Hello two", "AD-2"),
)
RECIPIENTS = (
    hy.Recipient(380961111111, "AD-1", {"name": "Ann"}),
    hy.Recipient(380962222222, "AD-2", {"name": "Bob"}),
)
