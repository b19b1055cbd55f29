"""The emulator's account: its senders, pools, operations and every accepted message.

All mutation goes through this class, from one event loop, so it needs no locks.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Any

from campaign.emulator.delivery import Clock, DeliveryProfile, Routes, plan_batch, status_of
from campaign.emulator.errors import ApiError
from campaign.emulator.ids import make_id, sequence_of
from campaign.emulator.model import (
    Message,
    MessageOperation,
    MessageStatus,
    PoolOperation,
    Sender,
    SenderPool,
    iso,
)
from campaign.emulator.sample_data import AccountData
from campaign.emulator.validation import SendRequest

__all__ = ["Store"]


class Store:
    """Everything the emulated account holds, plus the counters `/_emulator/stats` reports."""

    def __init__(self, data: AccountData, *, clock: Clock, profile: DeliveryProfile) -> None:
        self.clock = clock
        self.profile = profile
        self._data = data
        self.reset()

    def reset(self) -> None:
        """Back to the starting data: no messages, no operations, the initial senders and pools."""
        self.senders: dict[str, Sender] = {s.id: s for s in self._data.fresh_senders()}
        self.pools: dict[str, SenderPool] = {p.id: p for p in self._data.fresh_pools()}
        self.pool_operations: dict[str, PoolOperation] = {}
        self.operations: list[MessageOperation] = []
        self.operations_by_id: dict[str, MessageOperation] = {}
        self._first_seqs: list[int] = []  # first_seq of each operation, for bisecting
        self.message_count = 0
        self.recipients_accepted = 0
        self.duplicates = 0
        self._accepted_by_campaign: dict[str, set[str]] = {}
        self._pool_routes: dict[str, Routes] = {}
        self._sequence = 0

    def __repr__(self) -> str:
        return (
            f"<Store senders={len(self.senders)} pools={len(self.pools)} "
            f"operations={len(self.operations)} messages={self.message_count}>"
        )

    def _next_id(self, kind: str) -> str:
        self._sequence += 1
        return make_id(kind, int(self.clock.wall_s() * 1000), self._sequence)

    # Senders

    def sender(self, sender_id: str) -> Sender:
        found = self.senders.get(sender_id)
        if found is None:
            raise ApiError.not_found(f"Sender {sender_id}")
        return found

    # Pools

    def pool(self, pool_id: str) -> SenderPool:
        found = self.pools.get(pool_id)
        if found is None:
            raise ApiError.not_found(f"SenderPool {pool_id}")
        return found

    def create_pool(self, name: str, tags: dict[str, str], sender_ids: list[str]) -> PoolOperation:
        now = self.clock.wall_s()
        pool = SenderPool(self._next_id("senderpool"), name, tags, now, now)
        self.pools[pool.id] = pool
        return self._add_to_pool(pool, sender_ids)

    def update_pool(
        self, pool_id: str, name: str | None, tags: dict[str, str] | None
    ) -> SenderPool:
        pool = self.pool(pool_id)
        if name is not None:
            pool.name = name
        if tags is not None:
            pool.tags = tags
        pool.updated_at = self.clock.wall_s()
        return pool

    def delete_pool(self, pool_id: str) -> None:
        self.pool(pool_id)
        del self.pools[pool_id]
        self._pool_routes.pop(pool_id, None)

    def add_senders(self, pool_id: str, sender_ids: list[str]) -> PoolOperation:
        return self._add_to_pool(self.pool(pool_id), sender_ids)

    def remove_sender(self, pool_id: str, sender_id: str) -> None:
        pool = self.pool(pool_id)
        if sender_id not in pool.sender_ids:
            raise ApiError.not_found(f"Sender {sender_id} in SenderPool {pool_id}")
        pool.sender_ids.remove(sender_id)
        pool.updated_at = self.clock.wall_s()
        self._pool_routes.pop(pool_id, None)

    def _add_to_pool(self, pool: SenderPool, sender_ids: list[str]) -> PoolOperation:
        """Add what can be added; unknown or deactivated senders count as failed, as the API does."""
        created = 0
        for sender_id in sender_ids:
            sender = self.senders.get(sender_id)
            if sender is None or sender.status != "ACTIVATED":
                continue
            if sender_id not in pool.sender_ids:
                pool.sender_ids.append(sender_id)
            created += 1
        now = self.clock.wall_s()
        op = PoolOperation(
            self._next_id("operation"),
            pool.id,
            len(sender_ids),
            created,
            len(sender_ids) - created,
            now,
        )
        pool.updated_at = now
        pool.operation_ids.append(op.id)
        self.pool_operations[op.id] = op
        self._pool_routes.pop(pool.id, None)
        return op

    def pool_operation(self, operation_id: str) -> PoolOperation:
        found = self.pool_operations.get(operation_id)
        if found is None:
            raise ApiError.not_found(f"SenderPool Operation {operation_id}")
        return found

    def _routes(self, pool: SenderPool) -> Routes:
        routes = self._pool_routes.get(pool.id)
        if routes is None:
            members = (self.senders[sid] for sid in pool.sender_ids if sid in self.senders)
            routes = self._pool_routes[pool.id] = Routes.of(members, pool.id)
        return routes

    # Messages

    def resolve_routes(self, request: SendRequest) -> Routes:
        """The senders a request may use; 404 or 400 when it has none."""
        if request.from_pool_id is not None:
            pool = self.pool(request.from_pool_id)
            routes = self._routes(pool)
            if not routes.senders:
                raise ApiError.invalid(
                    f"SenderPool {pool.id} has no ACTIVATED SMS, RCS or WhatsApp sender"
                )
            return routes
        if request.from_sender_id is not None:
            sender = self.sender(request.from_sender_id)
        else:
            assert request.from_address is not None  # noqa: S101 - validation guarantees one form
            address, channel = request.from_address
            matches = [
                s for s in self.senders.values() if s.address == address and s.channel == channel
            ]
            if not matches:
                raise ApiError.not_found(f"Sender {channel} {address}")
            sender = matches[0]
        routes = Routes.of([sender], None)
        if not routes.senders:
            raise ApiError.invalid(
                f"Sender {sender.id} is {sender.status} on {sender.channel} and cannot send"
            )
        return routes

    def accept(self, request: SendRequest, routes: Routes) -> MessageOperation:
        """Store one message per recipient and plan its delivery; the request was valid."""
        wall_now = self.clock.wall_s()
        emu_now = self.clock.emu_s()
        ready_s = emu_now
        scheduled_for = None
        if request.send_at is not None:
            scheduled_for = request.send_at.timestamp()
            ready_s = max(emu_now, emu_now + (scheduled_for - wall_now) * self.clock.speed)
        plan = plan_batch(
            request.addresses,
            request.whatsapp,
            request.segments,
            ready_s,
            emu_now,
            routes,
            self.profile,
        )
        op = MessageOperation(
            id=self._next_id("operation"),
            first_seq=self.message_count,
            count=request.count,
            created_at=wall_now,
            accepted_emu_s=emu_now,
            send_at_emu_s=ready_s,
            scheduled_for=scheduled_for,
            from_pool_id=routes.pool_id,
            tag_keys=request.tag_keys,
            addresses=request.addresses,
            whatsapp=request.whatsapp,
            tag_columns=request.tag_columns,
            senders=plan.senders,
            sender_index=plan.sender_index,
            routes=plan.routes,
            send_emu_s=plan.send_emu_s,
        )
        self._count_duplicates(op)
        self.operations.append(op)
        self._first_seqs.append(op.first_seq)
        self.operations_by_id[op.id] = op
        self.message_count += op.count
        self.recipients_accepted += op.count
        return op

    def _count_duplicates(self, op: MessageOperation) -> None:
        """Recipients accepted before with the same address and the same `campaign` tag."""
        campaigns: list[str] | str = ""
        if "campaign" in op.tag_keys:
            campaigns = op.tag_columns[op.tag_keys.index("campaign")]
        seen = self._accepted_by_campaign
        if isinstance(campaigns, str):
            addresses = seen.setdefault(campaigns, set())
            before = len(addresses)
            addresses.update(op.addresses)
            self.duplicates += op.count - (len(addresses) - before)
            return
        for campaign, address in zip(campaigns, op.addresses, strict=True):
            addresses = seen.setdefault(campaign, set())
            if address in addresses:
                self.duplicates += 1
            else:
                addresses.add(address)

    def operation(self, operation_id: str) -> MessageOperation:
        found = self.operations_by_id.get(operation_id)
        if found is None:
            raise ApiError.not_found(f"Operation {operation_id}")
        return found

    def messages_of(self, op: MessageOperation) -> Iterator[Message]:
        return (op.message(index) for index in range(op.count))

    def message_id(self, message: Message) -> str:
        return make_id("message", int(message.operation.created_at * 1000), message.seq)

    def message_at(self, seq: int) -> Message:
        op = self.operations[bisect.bisect_right(self._first_seqs, seq) - 1]
        return op.message(seq - op.first_seq)

    def message(self, message_id: str) -> Message:
        seq = sequence_of(message_id, "message")
        if seq is not None and seq < self.message_count:
            found = self.message_at(seq)
            if self.message_id(found) == message_id:
                return found
        raise ApiError.not_found(f"Message {message_id}")

    def status(self, message: Message) -> tuple[MessageStatus, float]:
        """The message's status now, and the wall-clock second it took that status."""
        status, since_emu = status_of(message, self.clock.emu_s(), self.profile)
        return status, max(message.operation.created_at, self.clock.wall_of(since_emu))

    def iter_messages(
        self,
        start: int,
        *,
        operation: MessageOperation | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> Iterator[tuple[int, Message]]:
        """Messages from sequence number `start` on, narrowed cheaply by operation or time."""
        if operation is not None:
            operations = [operation]
        else:
            operations = self.operations
            first = 0
            if since is not None:
                # Operations are appended in creation order, so a date window is a slice.
                first = bisect.bisect_left(operations, since, key=_created_at)
            first = max(first, bisect.bisect_right(self._first_seqs, start) - 1)
            last = len(operations)
            if until is not None:
                last = bisect.bisect_right(operations, until, key=_created_at)
            operations = operations[first:last] if first < last else []
        for op in operations:
            for index in range(max(0, start - op.first_seq), op.count):
                yield op.first_seq + index, op.message(index)

    def message_json(self, message: Message, base_url: str) -> dict[str, Any]:
        op = message.operation
        status, since = self.status(message)
        sender = message.sender
        return {
            "id": self.message_id(message),
            "from": {
                "address": sender.address if sender else None,
                "channel": sender.channel if sender else None,
                "senderId": sender.id if sender else None,
                "senderPoolId": op.from_pool_id,
            },
            "to": [{"address": message.address, "channel": message.channel}],
            "status": status.value,
            "tags": dict(zip(op.tag_keys, message.tag_values, strict=True)),
            "related": [
                {"name": "OPERATION", "id": op.id, "uri": f"{base_url}/Messages/Operations/{op.id}"}
            ],
            "scheduledFor": _iso_or_none(op.scheduled_for),
            "createdAt": iso(op.created_at),
            "updatedAt": iso(since),
            "deletedAt": None,
        }


def _created_at(op: MessageOperation) -> float:
    return op.created_at


def _iso_or_none(epoch_s: float | None) -> str | None:
    return None if epoch_s is None else iso(epoch_s)
