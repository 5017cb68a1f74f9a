"""A FastAPI service that sends campaigns and receives their delivery reports.

``POST /campaigns`` streams a broadcast to the phone numbers in its JSON body (plus ``synthetic``
generated ones) and answers with the job ids and the outcome counts; Hyber then posts the
delivery reports to ``$PUBLIC_URL/dr/$DR_SECRET``, where a ``DeliveryReportReceiver`` hands each
new one to ``ReportStore``; ``GET /reports`` shows what arrived.

Try it against the local emulator (three shells, from the repository root)::

    hyber-async emulator --port 8080 --time-scale 100

    export HYBER_CLIENT_ID=1234 HYBER_LOGIN=user HYBER_PASSWORD=secret \\
        HYBER_BASE_URL=http://127.0.0.1:8080 PUBLIC_URL=http://127.0.0.1:8000 \\
        DR_SECRET=$(python -c 'import secrets; print(secrets.token_urlsafe())')
    uvicorn --app-dir examples --factory fastapi_service:create_app --port 8000 --no-access-log

    curl -s localhost:8000/campaigns -H 'content-type: application/json' -d '{"synthetic": 1000}'
    curl -s localhost:8000/reports | head -c 300

Against Hyber itself, set ``HYBER_BASE_URL`` to your site (e.g. https://proxy-eu.hyber.im) and
``PUBLIC_URL`` to the address where Hyber can reach this service. The secret is in the callback
path, so keep the access log off (``--no-access-log``): its lines would show it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

import hyber_async as hy


class CampaignRequest(BaseModel):
    """The body of ``POST /campaigns``."""

    phone_numbers: list[int] = Field(default=[], max_length=100_000)
    synthetic: int = Field(default=0, ge=0, le=1_000_000)
    """How many generated numbers (380500000000, 380500000001, ...) to add."""
    text: str = Field(default="Your order has shipped", min_length=1, max_length=1000)


class ReportStore:
    """The handler of the delivery reports: keeps them in memory (use your database)."""

    def __init__(self) -> None:
        self.reports: list[hy.DeliveryReport] = []

    async def __call__(self, report: hy.DeliveryReport) -> None:
        self.reports.append(report)


def campaign(text: str, callback_url: str) -> hy.Campaign:
    """Viber first, then SMS for whoever Viber did not reach."""
    return hy.Campaign(
        channels=(hy.Channel.VIBER, hy.Channel.SMS),
        channel_options=hy.ChannelOptions(
            viber=hy.ViberOptions(ttl=60, text=text),
            sms=hy.SmsOptions(alpha_name="SHOP", ttl=300, text=text),
        ),
        callback_url=callback_url,
        tag="fastapi-example",
    )


def create_app() -> FastAPI:
    """The service, configured from the environment (see the module docstring)."""
    secret = os.environ["DR_SECRET"]
    callback_url = f"{os.environ['PUBLIC_URL'].rstrip('/')}/dr/{secret}"
    store = ReportStore()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with hy.HyberClient() as client:  # $HYBER_CLIENT_ID, ..., $HYBER_BASE_URL
            app.state.client = client
            yield

    app = FastAPI(title="hyber_async example", lifespan=lifespan)
    app.mount("/dr", hy.DeliveryReportReceiver(store, secret=secret))

    @app.exception_handler(hy.ValidationError)
    async def invalid_campaign(request: Request, exc: hy.ValidationError) -> JSONResponse:
        """The campaign itself is invalid (e.g. a text too long): 422, with the problems."""
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.post("/campaigns")
    async def send_campaign(body: CampaignRequest, request: Request) -> dict[str, Any]:
        """Send one broadcast; big ones take a while, run those in a background task."""
        client: hy.HyberClient = request.app.state.client
        numbers = [*body.phone_numbers, *range(380500000000, 380500000000 + body.synthetic)]
        report = await client.stream_broadcast(
            campaign(body.text, callback_url), ({"phone_number": n} for n in numbers)
        )
        return {
            "run_id": report.run_id,
            "job_ids": report.job_ids,
            "accepted": report.accepted,
            "rejected": report.rejected,
            "not_sent": report.not_sent,
            "unknown": report.unknown,
        }

    @app.get("/reports")
    async def reports() -> dict[str, Any]:
        """Every delivery report received so far."""
        return {"count": len(store.reports), "reports": [attrs.asdict(r) for r in store.reports]}

    return app
