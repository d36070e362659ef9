"""What the hold route's body and answer cost in the API, against the whole request.

Measured in process, one core, no I/O: decoding and validating a hold body with the route's
pydantic model (what FastAPI does for `body: HoldIn`) against a bare `orjson.loads`, and
encoding the 201 answer the way FastAPI does for our routes (annotated `dict[str, Any]`: pydantic
validates and dumps it) or for an unannotated one (`jsonable_encoder`, then `json.dumps`)
against `orjson.dumps`. The answer to "Pydantic only where its cost is
measured to be small": these microseconds are set beside the API's CPU per decision from the
on-sale sweep (1.5-2 ms).

Run: `python -m bench.codec`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson
from fastapi.encoders import jsonable_encoder
from pydantic import TypeAdapter

from api.ticketing import HoldIn

BODIES = {
    "seats": orjson.dumps({"seats": ["A-12-101", "A-12-102", "A-12-103", "A-12-104"]}),
    "best_available": orjson.dumps({"best_available": {"quantity": 4, "section": "A"}}),
}
ANSWER: dict[str, Any] = {
    "order_id": "s0123456789abcdef.Qk3v9rTq2c8xJb1mZp0w",
    "show_id": "s0123456789abcdef",
    "status": "held",
    "seats": ["A-12-101", "A-12-102", "A-12-103", "A-12-104"],
    "zone": None,
    "expires_at": datetime.now(UTC).isoformat(),
    "total_cents": 20_000,
}
# Our routes return `dict[str, Any]`: FastAPI validates and dumps the answer with this.
ANSWER_TYPE: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])


def per_call_us(fn: Callable[[], object], seconds: float = 1.0) -> float:
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(1000):
            fn()
        calls += 1000
    return round(elapsed / calls * 1e6, 2)


def _validated(body: bytes) -> HoldIn:
    return HoldIn.model_validate(json.loads(body))


def main() -> None:
    figures: dict[str, float] = {}
    for name, body in BODIES.items():
        figures[f"body {name}: orjson.loads"] = per_call_us(partial(orjson.loads, body))
        figures[f"body {name}: json.loads + HoldIn (FastAPI's way)"] = per_call_us(
            partial(_validated, body)
        )
        figures[f"body {name}: HoldIn.model_validate_json"] = per_call_us(
            partial(HoldIn.model_validate_json, body)
        )
    figures["answer: validate + dump_json as dict[str, Any] (FastAPI, our routes)"] = per_call_us(
        lambda: ANSWER_TYPE.dump_json(ANSWER_TYPE.validate_python(ANSWER))
    )
    figures["answer: jsonable_encoder + json.dumps (FastAPI, unannotated route)"] = per_call_us(
        lambda: json.dumps(jsonable_encoder(ANSWER)).encode()
    )
    figures["answer: orjson.dumps"] = per_call_us(lambda: orjson.dumps(ANSWER))
    for what, us in figures.items():
        print(f"{us:8.2f} us  {what}")


if __name__ == "__main__":
    main()
