"""Chat, as pure rules: conversations, messages, read markers, buddies and blocks.

- ``commands`` / ``events``: the messages in and out (``COMMAND_TYPES``, ``EVENT_TYPES``).
- ``errors``: why a command was refused (``ChatError`` and its coded subclasses).
- ``conversations``: the per-conversation decider (``decide``, ``evolve``).
- ``social``: the per-user buddies-and-blocks decider.
- ``views``: read-side folds for the conversation list and presence.
"""
