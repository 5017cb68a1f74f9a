"""An aiohttp service that sends campaigns and receives their delivery reports.

``POST /campaigns`` streams a broadcast to the phone numbers in its JSON body (plus ``synthetic``
generated ones) and answers with the job ids and the outcome counts; Hyber then posts the
delivery reports to ``$PUBLIC_URL/dr/$DR_SECRET``, where ``DeliveryReportReceiver`` hands each
new one to ``ReportStore``; ``GET /reports`` shows what arrived.

Try it against the local emulator (three shells, from the repository root)::

    hyber-async emulator --port 8080 --time-scale 100

    export HYBER_CLIENT_ID=1234 HYBER_LOGIN=user HYBER_PASSWORD=secret \\
        HYBER_BASE_URL=http://127.0.0.1:8080 PUBLIC_URL=http://127.0.0.1:8000 \\
        DR_SECRET=$(python -c 'import secrets; print(secrets.token_urlsafe())')
    python examples/aiohttp_service.py --port 8000

    curl -s localhost:8000/campaigns -d '{"phone_numbers": [380961111111], "synthetic": 999}'
    curl -s localhost:8000/reports | head -c 300

Against Hyber itself, set ``HYBER_BASE_URL`` to your site (e.g. https://proxy-eu.hyber.im) and
``PUBLIC_URL`` to the address where Hyber can reach this service. The secret is in the callback
path, so the access log is off: its lines would show it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator

import attrs
from aiohttp import web

import hyber_async as hy

CLIENT = web.AppKey("client", hy.HyberClient)
CALLBACK_URL = web.AppKey("callback_url", str)
SYNTHETIC_MAX = 1_000_000


class ReportStore:
    """The handler of the delivery reports: keeps them in memory (use your database)."""

    def __init__(self) -> None:
        self.reports: list[hy.DeliveryReport] = []

    async def __call__(self, report: hy.DeliveryReport) -> None:
        self.reports.append(report)


STORE = web.AppKey("store", ReportStore)


def campaign(text: str, callback_url: str) -> hy.Campaign:
    """Viber first, then SMS for whoever Viber did not reach."""
    return hy.Campaign(
        channels=(hy.Channel.VIBER, hy.Channel.SMS),
        channel_options=hy.ChannelOptions(
            viber=hy.ViberOptions(ttl=60, text=text),
            sms=hy.SmsOptions(alpha_name="SHOP", ttl=300, text=text),
        ),
        callback_url=callback_url,
        tag="aiohttp-example",
    )


async def send_campaign(request: web.Request) -> web.Response:
    """``POST /campaigns`` ``{"phone_numbers": [...], "synthetic": n, "text": "..."}``."""
    try:
        body = await request.json()
        numbers = [int(n) for n in body.get("phone_numbers", [])]
        synthetic = int(body.get("synthetic", 0))
        text = str(body.get("text", "Your order has shipped"))
    except (ValueError, TypeError, AttributeError) as exc:
        raise web.HTTPUnprocessableEntity(text=f"bad request body: {exc}") from None
    if not 0 <= synthetic <= SYNTHETIC_MAX:
        raise web.HTTPUnprocessableEntity(text=f"synthetic must be in [0, {SYNTHETIC_MAX}]")
    numbers += range(380500000000, 380500000000 + synthetic)
    try:  # big campaigns take a while: run those in a background task
        report = await request.app[CLIENT].stream_broadcast(
            campaign(text, request.app[CALLBACK_URL]), ({"phone_number": n} for n in numbers)
        )
    except hy.ValidationError as exc:  # the campaign itself is invalid (e.g. text too long)
        raise web.HTTPUnprocessableEntity(text=str(exc)) from None
    return web.json_response(
        {
            "run_id": report.run_id,
            "job_ids": report.job_ids,
            "accepted": report.accepted,
            "rejected": report.rejected,
            "not_sent": report.not_sent,
            "unknown": report.unknown,
        }
    )


async def reports(request: web.Request) -> web.Response:
    """``GET /reports``: every delivery report received so far."""
    stored = request.app[STORE].reports
    return web.json_response({"count": len(stored), "reports": [attrs.asdict(r) for r in stored]})


async def hyber_client(app: web.Application) -> AsyncIterator[None]:
    """One client for the app's lifetime ($HYBER_CLIENT_ID, ..., $HYBER_BASE_URL)."""
    async with hy.HyberClient() as client:
        app[CLIENT] = client
        yield


def create_app() -> web.Application:
    """The service, configured from the environment (see the module docstring)."""
    secret = os.environ["DR_SECRET"]
    app = web.Application()
    app[STORE] = store = ReportStore()
    app[CALLBACK_URL] = f"{os.environ['PUBLIC_URL'].rstrip('/')}/dr/{secret}"
    app.cleanup_ctx.append(hyber_client)
    receiver = hy.DeliveryReportReceiver(store, secret=secret)
    app.router.add_route("*", "/dr/{secret}", receiver.aiohttp_handler)
    app.router.add_post("/campaigns", send_campaign)
    app.router.add_get("/reports", reports)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    web.run_app(create_app(), host=args.host, port=args.port, access_log=None)
