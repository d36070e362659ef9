"""The command gateway's one table: every refusal any decider can give has its HTTP status."""

from __future__ import annotations

from api.commands import STATUS_BY_CODE, rejection
from domain.chat import errors as chat_errors
from domain.ticketing import errors as ticketing_errors

# Answered by their routes with the live entry or place (200), never as errors.
ANSWERED_BY_ROUTES = {"already_in_line", "already_in_queue"}
# The base classes' codes: never raised as such.
BASES = {"ticketing_error", "chat_error"}


def test_every_domain_refusal_of_every_context_has_a_status() -> None:
    codes = {e.code for e in ticketing_errors.ERROR_TYPES} | {
        e.code for e in chat_errors.ERROR_TYPES
    }
    missing = codes - BASES - ANSWERED_BY_ROUTES - set(STATUS_BY_CODE)
    assert not missing, missing
    assert all(status in (403, 404, 409, 422) for status in STATUS_BY_CODE.values())


def test_a_refusal_becomes_the_contract_error_and_an_unknown_code_a_conflict() -> None:
    held = rejection({"code": "seats_unavailable", "message": "Taken.", "details": {"s": 1}})
    assert (held.status, held.code, held.details) == (409, "seats_unavailable", {"s": 1})
    assert rejection({"code": "queue_pass_required"}).status == 403
    assert rejection({"code": "not_a_member"}).status == 403
    assert rejection({"code": "something_new"}).status == 409
