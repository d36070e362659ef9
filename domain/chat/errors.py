"""Why a chat command was refused: domain values, mapped once to the HTTP contract.

Every error has a stable snake_case ``code`` (the contract's ``error.code``), a human
``message`` and, as dataclass fields, its details. Nothing is journaled for a refused
command; the adapter answers the caller with the error.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass, fields
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class ChatError(Exception):
    code: ClassVar[str] = "chat_error"

    @property
    def message(self) -> str:
        """What a person is told: a sentence, never the error's repr."""
        text = self.code.replace("_", " ")
        return text[:1].upper() + text[1:] + "."

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # BaseException pickles (and copies) itself from ``args``, which keyword-built
        # dataclasses leave empty; rebuild from the fields instead.
        return (type(self), tuple(getattr(self, f.name) for f in fields(self)))


@dataclass(frozen=True, slots=True)
class ConversationNotFoundError(ChatError):
    code: ClassVar[str] = "conversation_not_found"
    conversation_id: str

    @property
    def message(self) -> str:
        return f"There is no conversation {self.conversation_id}."


@dataclass(frozen=True, slots=True)
class ConversationExistsError(ChatError):
    code: ClassVar[str] = "conversation_exists"
    conversation_id: str

    @property
    def message(self) -> str:
        return f"Conversation {self.conversation_id} exists already."


@dataclass(frozen=True, slots=True)
class InvalidConversationIdError(ChatError):
    """A direct conversation must live at ``direct_conversation_id`` of its pair."""

    code: ClassVar[str] = "invalid_conversation_id"
    conversation_id: str
    expected: str

    @property
    def message(self) -> str:
        return f"The direct conversation of this pair is {self.expected}."


@dataclass(frozen=True, slots=True)
class InvalidKindError(ChatError):
    code: ClassVar[str] = "invalid_kind"
    kind: str

    @property
    def message(self) -> str:
        return f"A conversation's kind is direct or group, not {self.kind}."


@dataclass(frozen=True, slots=True)
class InvalidMembersError(ChatError):
    code: ClassVar[str] = "invalid_members"
    reason: str

    @property
    def message(self) -> str:
        return self.reason[:1].upper() + self.reason[1:].rstrip(".") + "."


@dataclass(frozen=True, slots=True)
class TooManyMembersError(ChatError):
    code: ClassVar[str] = "too_many_members"
    limit: int

    @property
    def message(self) -> str:
        return f"A group has at most {self.limit} members."


@dataclass(frozen=True, slots=True)
class TitleTooLongError(ChatError):
    code: ClassVar[str] = "title_too_long"
    limit: int

    @property
    def message(self) -> str:
        return f"A title has at most {self.limit} characters."


@dataclass(frozen=True, slots=True)
class NotAMemberError(ChatError):
    code: ClassVar[str] = "not_a_member"
    conversation_id: str
    user: str

    @property
    def message(self) -> str:
        return f"{self.user} is not a member of this conversation."


@dataclass(frozen=True, slots=True)
class AlreadyMemberError(ChatError):
    code: ClassVar[str] = "already_member"
    conversation_id: str
    user: str

    @property
    def message(self) -> str:
        return f"{self.user} is already a member of this conversation."


@dataclass(frozen=True, slots=True)
class NotAGroupError(ChatError):
    code: ClassVar[str] = "not_a_group"
    conversation_id: str

    @property
    def message(self) -> str:
        return "Members can be added or removed only in a group conversation."


@dataclass(frozen=True, slots=True)
class BlockedError(ChatError):
    code: ClassVar[str] = "blocked"
    conversation_id: str

    @property
    def message(self) -> str:
        return "You cannot message this user."


@dataclass(frozen=True, slots=True)
class EmptyTextError(ChatError):
    code: ClassVar[str] = "empty_text"

    @property
    def message(self) -> str:
        return "A message needs at least one character."


@dataclass(frozen=True, slots=True)
class TextTooLongError(ChatError):
    code: ClassVar[str] = "text_too_long"
    length: int
    limit: int

    @property
    def message(self) -> str:
        return f"A message has at most {self.limit} characters; this one has {self.length}."


@dataclass(frozen=True, slots=True)
class InvalidClientMsgIdError(ChatError):
    code: ClassVar[str] = "invalid_client_msg_id"
    limit: int

    @property
    def message(self) -> str:
        return f"A client_msg_id has 1 to {self.limit} characters."


@dataclass(frozen=True, slots=True)
class InvalidSeqError(ChatError):
    code: ClassVar[str] = "invalid_seq"
    seq: int
    last_seq: int

    @property
    def message(self) -> str:
        return f"The seq must be between 0 and {self.last_seq}, not {self.seq}."


@dataclass(frozen=True, slots=True)
class InvalidUserError(ChatError):
    code: ClassVar[str] = "invalid_user"

    @property
    def message(self) -> str:
        return "A user name cannot be empty."


@dataclass(frozen=True, slots=True)
class CannotBuddySelfError(ChatError):
    code: ClassVar[str] = "cannot_buddy_self"

    @property
    def message(self) -> str:
        return "You cannot add yourself as a buddy."


@dataclass(frozen=True, slots=True)
class CannotBlockSelfError(ChatError):
    code: ClassVar[str] = "cannot_block_self"

    @property
    def message(self) -> str:
        return "You cannot block yourself."


ERROR_TYPES: tuple[type[ChatError], ...] = (
    ChatError,
    ConversationNotFoundError,
    ConversationExistsError,
    InvalidConversationIdError,
    InvalidKindError,
    InvalidMembersError,
    TooManyMembersError,
    TitleTooLongError,
    NotAMemberError,
    AlreadyMemberError,
    NotAGroupError,
    BlockedError,
    EmptyTextError,
    TextTooLongError,
    InvalidClientMsgIdError,
    InvalidSeqError,
    InvalidUserError,
    CannotBuddySelfError,
    CannotBlockSelfError,
)

# The interpreter and the standard library write these on exceptions in flight
# (contextlib sets __traceback__, add_note sets __notes__, hypothesis and pytest add
# notes). The setattr that frozen slotted dataclasses generate refuses them and, on
# 3.11, even fails with a TypeError, so an error raised inside a ``with`` block would
# turn into a crash. Fields stay frozen; only these pass through.
_IN_FLIGHT_ATTRIBUTES = frozenset(
    {"__traceback__", "__cause__", "__context__", "__suppress_context__", "__notes__"}
)


def _setattr(self: ChatError, name: str, value: object) -> None:
    if name not in _IN_FLIGHT_ATTRIBUTES:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")
    Exception.__setattr__(self, name, value)


def _delattr(self: ChatError, name: str) -> None:
    if name not in _IN_FLIGHT_ATTRIBUTES:
        raise FrozenInstanceError(f"cannot delete field {name!r}")
    Exception.__delattr__(self, name)


for _error_type in ERROR_TYPES:
    type.__setattr__(_error_type, "__setattr__", _setattr)
    type.__setattr__(_error_type, "__delattr__", _delattr)
