"""Every JSON block of the published documentation: requests round-trip through our models, pass
our validation and are accepted by the emulator on their endpoint over a socket; answers, status
reports, delivery reports (callbacks and lookups) and user replies decode and re-encode without
losing a field."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from gms_docs import DOCS, Block, extract, load
from gms_docs import of_kind as blocks_of_kind

import hyber_async as hy
from hyber_async import converter
from hyber_async._errors import raise_for_answer
from hyber_async._models import Kind
from hyber_async._validation import check_message, check_request
from hyber_async.emulator import DEMO_ACCOUNT, Emulator, EmulatorConfig, create_app
from hyber_async.testing import serving_emulator

BLOCKS = load()
NOT_JSON = "part4:20"
"""The one published block that is not JSON: ``"extra_id": AD-6640-7006"`` lacks its opening
quote. It stays a fixture as published; a test pins that it is the only one."""

MODELS: dict[str, Any] = {
    "message-request": hy.MessageRequest,
    "message-accepted": hy.MessageAccepted,
    "batch-request": hy.BatchRequest,
    "broadcast-request": hy.BroadcastRequest,
    "job-accepted": hy.JobAccepted,
    "sync-result": hy.SyncResult,
    "job-status": hy.JobStatus,
    "dr-simple": hy.SimpleDeliveryReport,
    "dr-advanced": hy.AdvancedDeliveryReport,
    "user-reply": hy.UserReply,
}
"""The model each kind of block decodes into (``dr-callback`` and ``error-answer`` below)."""

ENDPOINTS = {
    "message-request": ("",),
    "batch-request": ("/batch", "/batch/sync"),
    "broadcast-request": ("/broadcast", "/broadcast/sync"),
}
"""The emulator paths (under ``/{client_id}``) each kind of request is posted to."""

AUTH = httpx.BasicAuth(DEMO_ACCOUNT.login, DEMO_ACCOUNT.password)


def of_kind(*kinds: str) -> list[Block]:
    """The JSON blocks of ``kinds`` (all but the one that is not JSON)."""
    return [b for b in blocks_of_kind(*kinds) if b.name != NOT_JSON]


def ids(block: Block) -> str:
    """Name a parametrised case after the file and line of its block."""
    return block.name


def model_of(block: Block) -> Any:
    """The type a block decodes into."""
    if block.kind == "dr-callback":
        return list[hy.DeliveryReport] if block.text.lstrip().startswith("[") else hy.DeliveryReport
    return MODELS[block.kind]


@pytest.mark.skipif(not DOCS.is_dir(), reason="the documentation is not beside this checkout")
def test_the_fixtures_are_every_block_of_the_documentation() -> None:
    """The copy in tests/fixtures/gms-docs is exactly what the documentation holds now."""
    assert extract() == BLOCKS


def test_every_kind_of_block_is_present() -> None:
    """49 blocks: every request, answer, report and reply the documentation shows."""
    counts = {kind: sum(b.kind == kind for b in BLOCKS) for kind in {b.kind for b in BLOCKS}}
    assert counts == {
        "message-request": 12,
        "message-accepted": 1,
        "error-answer": 1,
        "batch-request": 9,
        "broadcast-request": 11,
        "job-accepted": 1,
        "sync-result": 1,
        "job-status": 1,
        "dr-callback": 4,
        "dr-simple": 2,
        "dr-advanced": 2,
        "user-reply": 4,
    }


def test_only_one_block_is_not_json() -> None:
    """part4.rst line 20 is the one block that does not parse; every other block does."""
    broken = [b.name for b in BLOCKS if not _parses(b)]
    assert broken == [NOT_JSON]


def test_the_broken_block_decodes_once_its_quote_is_restored() -> None:
    """With the missing quote put back, the single callback example is an ordinary report."""
    block = next(b for b in BLOCKS if b.name == NOT_JSON)
    fixed = block.text.replace('": AD-6640-7006"', '": "AD-6640-7006"')
    report = converter.loads(fixed, hy.DeliveryReport)
    assert report.extra_id == "AD-6640-7006"
    assert orjson.loads(converter.dumps(report)) == orjson.loads(fixed)


def _parses(block: Block) -> bool:
    try:
        block.json()
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("block", of_kind(*MODELS, "dr-callback"), ids=ids)
def test_every_block_round_trips_through_its_model(block: Block) -> None:
    """Read into its model and written back, each block gives equal JSON: no field is lost."""
    obj = converter.loads(block.text, model_of(block))
    assert orjson.loads(converter.dumps(obj)) == block.json()


@pytest.mark.parametrize("block", of_kind("error-answer"), ids=ids)
def test_the_error_answer_becomes_an_error_with_its_code_and_text(block: Block) -> None:
    """The documented error body is read into the error's ``error_code`` and ``error_text``."""
    request = httpx.Request("POST", "https://api-v2-eu.hyber.im/1234")
    response = httpx.Response(400, content=block.text.encode(), request=request)
    with pytest.raises(hy.BadRequestError) as caught:
        raise_for_answer(response)
    assert (caught.value.error_code, caught.value.error_text) == (
        block.json()["error_code"],
        block.json()["error_text"],
    )


@pytest.mark.parametrize("block", of_kind(*ENDPOINTS), ids=ids)
def test_every_request_passes_our_validation(block: Block) -> None:
    """No documented request is refused by the checks we run before sending."""
    if block.kind == "message-request":
        assert check_message(block.json()) == []
    else:
        assert check_request(block.json(), Kind(block.kind.removesuffix("-request"))) == []


@pytest.fixture(scope="module")
def emulator() -> Iterator[tuple[Emulator, httpx.Client]]:
    """One frozen-clock emulator on 127.0.0.1 for the module, and a plain httpx client of it."""
    app = create_app(EmulatorConfig(time_scale=0))
    with serving_emulator(app) as url, httpx.Client(base_url=url, auth=AUTH) as http:
        yield app, http


def _unique(body: Any) -> Any:
    """``body`` with fresh extra_ids, so that ledger counts are per test."""
    token = uuid.uuid4().hex[:8]
    items = body.get("messages") or body.get("recipients") or [body]
    for item in items:
        if "extra_id" in item:
            item["extra_id"] = f"{item['extra_id']}-{token}"
    return body


@pytest.mark.slow
@pytest.mark.parametrize(
    ("block", "path"),
    [(b, path) for b in of_kind(*ENDPOINTS) for path in ENDPOINTS[b.kind]],
    ids=lambda value: value.name if isinstance(value, Block) else (value or "/"),
)
def test_the_emulator_accepts_every_request_on_its_endpoint(
    emulator: tuple[Emulator, httpx.Client], block: Block, path: str
) -> None:
    """Posted as published, each request is accepted over a socket and lands in the ledger."""
    app, http = emulator
    body = _unique(block.json())
    answer = http.post(f"/{DEMO_ACCOUNT.client_id}{path}", json=body)
    assert answer.status_code == 200, answer.text
    items = body.get("messages") or body.get("recipients") or [body]
    ledger = app.ledger
    for item in items:
        assert ledger.count(item["extra_id"]) == 1
