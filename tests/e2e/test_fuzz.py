"""Schemathesis over the API's own OpenAPI document, against the real stack: every operation,
valid and invalid inputs, as an organizer (so requests get past 401 into validation and the
handlers), with ids that exist as well as ids that do not. No answer may be a 5xx, every 4xx
must have the contract's error shape, and nothing may log a traceback."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err

from boxoffice.settings import Settings
from stack.services import Stack
from tests.e2e.fuzzing import LogWatch, create_show, sign_in, sign_up, wait_for
from tests.e2e.ticketing import add_organizer, auth

pytestmark = pytest.mark.e2e

# Per operation and kind of case (valid, invalid, valid but for one hostile value): about
# 30 operations x 3 x this, some 2,500 requests, about a minute on an idle 2-core machine.
EXAMPLES = 30
# On a busy machine the cases are spread over this many seconds instead, down to a few per
# operation and kind, so every operation is still fuzzed and the test stays under two minutes.
BUDGET_S = 60
MIN_EXAMPLES = 4

# Values that storage, the journal or a parser may choke on even where the schema allows them.
HOSTILE_TEXT = [
    "\x00",
    "a\x00b",
    "",
    " ",
    "x" * 100_001,
    "\u202e\U0001f600\ufeff",
    "../../etc/passwd",
    "%00",
    "'; drop table users; --",
]
HOSTILE_JSON = [
    *HOSTILE_TEXT,
    "\ud800",  # a lone surrogate: JSON can carry it escaped, UTF-8 cannot
    "a\udfffb",
    2**64,
    2**63,
    -(2**63) - 1,
    -1,
    0,
    10**400,
    1e308,
    -1e-308,
    True,
    None,
    [],
    {},
    [[[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]],
    {"type": "send", "nested": {"a": [1, {"b": None}]}},
]
HOSTILE_URL = [value for value in HOSTILE_TEXT if value != "x" * 100_001] + [
    "x" * 2_000,
    str(2**64),
    "-1",
    "é",
]
HOSTILE_QUERY = [*HOSTILE_URL, 2**64, -(2**63) - 1, 0, 10**400, 1e308, True]
HOSTILE_HEADER = ["x" * 1_000, "a b", "\xe9\xff", "-1", "0"]


@dataclass(frozen=True)
class World:
    """Things that exist, so that some fuzzed requests reach past 404 into the handlers."""

    token: str
    path_ids: dict[str, str]


@pytest.fixture
def http(settings: Settings, stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=settings.api_url, timeout=60) as client:
        yield client


@pytest.fixture
def world(settings: Settings, http: httpx.Client) -> World:
    organizer = add_organizer(settings)
    token = sign_in(http, organizer)
    fan, fan_token = sign_up(http)
    show_id = create_show(http, token)
    # The organizer's own order, so the order routes find it under the fuzzer's token.
    held = http.post(f"/v1/shows/{show_id}/holds", headers=auth(token), json={"seats": ["A-1-1"]})
    assert held.status_code == 201, held.text
    conversation = http.post(
        "/v1/conversations", headers=auth(token), json={"members": [fan], "title": None}
    )
    assert conversation.status_code in (200, 201), conversation.text
    conversation_id = conversation.json()["conversation_id"]
    sent = http.post(
        f"/v1/conversations/{conversation_id}/messages",
        headers=auth(fan_token),
        json={"text": "hello", "client_msg_id": uuid.uuid4().hex},
    )
    assert sent.status_code == 201, sent.text
    return World(
        token,
        {
            "show_id": show_id,
            "order_id": held.json()["order_id"],
            "conversation_id": conversation_id,
            "username": fan,
        },
    )


def error_shape(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """The contract: every error, validation errors included, is {"error": {code, message,
    details}} with a snake_case code and a human message."""
    if not 400 <= response.status_code < 500:
        return None
    try:
        body = response.json()
    except ValueError:
        body = response.content[:300]
    shape = f"{response.status_code} is not in the error shape: {body!r}"
    assert isinstance(body, dict) and set(body) == {"error"}, shape
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"].replace("_", "").isalnum(), error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["details"], dict), error
    return None


def strategy(operation: Any, mode: GenerationMode, world: World) -> Any:
    """Half the cases with generated ids (mostly unknown), half with ids that exist."""
    known = {name: v for name, v in world.path_ids.items() if f"{{{name}}}" in operation.path}
    generated = operation.as_strategy(generation_mode=mode)
    if not known:
        return generated
    return st.one_of(generated, operation.as_strategy(generation_mode=mode, path_parameters=known))


def leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path to every node of a JSON value, the root excepted."""
    children: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    for key, child in children:
        yield (*path, key)
        yield from leaves(child, (*path, key))


def replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replace(value[head], rest, new)}
    copied = list(value)
    copied[head] = replace(copied[head], rest, new)
    return copied


@st.composite
def hostile(draw: st.DrawFn, operation: Any, world: World) -> Case[Any]:
    """A valid case with one value, anywhere in it, swapped for a hostile one."""
    case: Case[Any] = draw(strategy(operation, GenerationMode.POSITIVE, world))
    targets: list[tuple[str, tuple[Any, ...]]] = [("body", p) for p in leaves(case.body)]
    targets += [("query", (p.name,)) for p in operation.query]
    targets += [("path_parameters", (p.name,)) for p in operation.path_parameters]
    targets += [("headers", (p.name,)) for p in operation.headers]
    if isinstance(case.body, (dict, list)):
        targets.append(("body", ()))
    if not targets:
        return case
    where, path = draw(st.sampled_from(targets))
    if where == "body":
        # Serialized here, as a client may: escaped lone surrogates are valid JSON text.
        mutated = replace(case.body, path, draw(st.sampled_from(HOSTILE_JSON)))
        case.body = json.dumps(mutated).encode()
    elif where == "headers":
        case.headers[path[0]] = draw(st.sampled_from(HOSTILE_HEADER))
    else:
        value = draw(st.sampled_from(HOSTILE_URL if where == "path_parameters" else HOSTILE_QUERY))
        setattr(case, where, {**getattr(case, where), path[0]: value})
    return case


def fuzz(
    operation: Any, mode: GenerationMode | None, world: World, base_url: str, examples: int
) -> int:
    """Runs one operation in one mode (None: hostile values); returns the requests made."""
    session = requests.Session()
    sent = 0

    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        # Report the first failing case as found: shrinking would cost many more requests.
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @hypothesis.given(
        case=hostile(operation, world) if mode is None else strategy(operation, mode, world)
    )
    def run(case: Case[Any]) -> None:
        nonlocal sent
        sent += 1
        case.call_and_validate(
            base_url=base_url,
            session=session,
            headers=auth(world.token),
            checks=[not_a_server_error, error_shape],
            timeout=60,
        )

    with session:
        run()
    return sent


def test_every_operation_survives_fuzzing(
    settings: Settings, stack: Stack, http: httpx.Client, world: World
) -> None:
    watch = LogWatch.start(stack)
    schema = schemathesis.openapi.from_url(f"{settings.api_url}/openapi.json", timeout=30)
    failures: list[str] = []
    sent: dict[str, int] = {}
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"the document does not describe an operation: {result.err()}")
        else:
            operations.append(result.ok())
    runs = [
        (operation, mode)
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE, None)
    ]
    started = time.monotonic()
    for done, (operation, mode) in enumerate(runs):
        elapsed = time.monotonic() - started
        per_request = elapsed / max(1, sum(sent.values()))
        share = (BUDGET_S - elapsed) / (len(runs) - done)
        examples = EXAMPLES if done == 0 else int(share / per_request)
        examples = max(MIN_EXAMPLES, min(EXAMPLES, examples))
        sent.setdefault(operation.label, 0)
        try:
            sent[operation.label] += fuzz(operation, mode, world, settings.api_url, examples)
        except hypothesis.errors.Unsatisfiable:
            # No input can break a schema that accepts anything (GET /healthz, any string id).
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as exc:  # every operation is fuzzed even after one fails
            failures.append(f"{operation.label} ({mode or 'hostile'}): {exc}")
    elapsed = time.monotonic() - started
    print(f"fuzzed {len(sent)} operations with {sum(sent.values())} requests in {elapsed:.0f} s")
    assert len(sent) >= 30 and all(n > 0 for n in sent.values()), sent

    # The views still apply new events after all that: a poison event would have stopped them.
    token, ids = world.token, world.path_ids
    text = f"still here {uuid.uuid4().hex}"
    posted = http.post(
        f"/v1/conversations/{ids['conversation_id']}/messages",
        headers=auth(token),
        json={"text": text, "client_msg_id": uuid.uuid4().hex},
    )
    assert posted.status_code == 201, posted.text
    # A fresh show: the fuzzer may have held every seat of the seeded one.
    show_id = create_show(http, token)
    held = http.post(f"/v1/shows/{show_id}/holds", headers=auth(token), json={"seats": ["A-1-1"]})
    assert held.status_code == 201, held.text

    def message_listed() -> bool:
        page = http.get(f"/v1/conversations/{ids['conversation_id']}/messages", headers=auth(token))
        return page.status_code == 200 and any(m["text"] == text for m in page.json()["messages"])

    def hold_mapped() -> bool:
        seatmap = http.get(f"/v1/shows/{show_id}/seatmap")
        return seatmap.status_code == 200 and seatmap.json()["seats"]["A-1-1"] == "held"

    wait_for("the chat views to list a new message", message_listed)
    wait_for("the ticketing views to map a new hold", hold_mapped)
    problems = failures + watch.tracebacks()
    assert not problems, "\n\n".join(problems)
