"""What the API's routes share: the journal producer, reply waiter, event hub and DB pool."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fastapi import Request, WebSocket
from psycopg_pool import AsyncConnectionPool

from api.commands import CommandBus
from api.hub import EventHub
from boxoffice.settings import Settings
from producers.journal import JournalProducer
from producers.replies import ReplyWaiter
from producers.topics import CHAT_EVENTS, SHOW_EVENTS, SOCIAL_EVENTS, SYSTEM_EVENTS
from snapshots.database import async_pool


@dataclass
class Services:
    settings: Settings
    producer: JournalProducer
    replies: ReplyWaiter
    hub: EventHub
    pool: AsyncConnectionPool
    bus: CommandBus

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        producer = JournalProducer(settings)
        replies = ReplyWaiter(settings)
        hub = EventHub(settings, (SHOW_EVENTS, CHAT_EVENTS, SOCIAL_EVENTS, SYSTEM_EVENTS))
        pool = async_pool(settings, "api")
        await pool.open(wait=True, timeout=30)
        await replies.start()
        await hub.start()
        return cls(settings, producer, replies, hub, pool, CommandBus(settings, producer, replies))

    async def stop(self) -> None:
        await self.hub.stop()
        await self.replies.stop()
        await self.pool.close()
        await asyncio.to_thread(self.producer.close)


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def ws_services(websocket: WebSocket) -> Services:
    found: Services = websocket.app.state.services
    return found
