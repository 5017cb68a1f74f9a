"""Shared builders of the tests: credentials, a client on a mocked base URL, campaigns, rows."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator, Iterator
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
CASCADE = hy.Campaign(
    channels=(hy.Channel.VIBER, hy.Channel.SMS),
    channel_options=hy.ChannelOptions(
        viber=hy.ViberOptions(ttl=60, text="Dear %name%"),
        sms=hy.SmsOptions(alpha_name="GMSU", ttl=300, text="Dear %name%"),
    ),
)
"""A valid Viber-then-SMS broadcast whose texts use ``%name%`` (``rows`` fill it)."""
SMS_BROADCAST = hy.Campaign(
    channels=(hy.Channel.SMS,),
    channel_options=hy.ChannelOptions(
        sms=hy.SmsOptions(alpha_name="GMSU", ttl=300, text="Hi %name%")
    ),
)
"""A valid SMS broadcast whose text uses ``%name%`` (``rows`` fill it)."""


def rows(n: int, start: int = 0, prefix: str = "r") -> Iterator[dict[str, Any]]:
    """``n`` broadcast rows from index ``start``: distinct phone numbers, the extra_ids
    ``{prefix}-{index}`` and the name Ann."""
    for i in range(start, start + n):
        yield {"phone_number": 380_500_000_000 + i, "extra_id": f"{prefix}-{i}", "name": "Ann"}


async def read_body(receive: Any) -> bytes:
    """The whole request body of an ASGI request, however many messages it came in."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


@contextlib.asynccontextmanager
async def aiohttp_serving(route: str, handler: Any, method: str = "POST") -> AsyncIterator[str]:
    """An aiohttp app routing ``method`` ``route`` to ``handler`` on a free loopback port, for
    the block; yields its base URL (asyncio only, as aiohttp)."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    app = web.Application()
    app.router.add_route(method, route, handler)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()
