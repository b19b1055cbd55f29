"""The run: read, batch, pace, send and record every recipient of a campaign, once.

One anyio task group on asyncio::

    reader ──► batches (bounded stream) ──► N workers ── pool pacer ── POST /Messages
      │                                        │
      └── invalid / duplicate / suppressed ────┴──► LedgerWriter (intent before each POST)

The reader walks the recipients file in order (the same verdicts as the preview), skips
rows the ledger already settled, writes a line for each row that will not be sent, and
groups the rest into batches of up to `batch_size` recipients of one pool. The stream
holds a few batches at most, so the reader never runs far ahead of the network.

A worker takes a batch, waits for the pool's turn, writes the batch's intent and makes it
durable, then sends it. With small batches the intents are written ahead instead: a
worker that finds few batches ready takes those the reader has (up to 16x concurrency
batches, at most 256 recipients) whose pool has a slot free now, writes their intents and
has them fsync'd in one group in the background, so that the next worker usually finds
its intent on disk already. An intent written ahead whose request never goes out is
released (`stopped`; `paused` when a 429 paused its pool since, and the batch queues
again). What the answer means for the recipients:

- 202: every recipient `accepted`, with the operation id.
- 429: never processed. The intent is released, the whole pool pauses for Retry-After,
  and the batch queues again.
- 400 (or another 4xx but 401/403/404): the whole request was refused. A batch of more
  than one is split in halves and each half sent again, until the recipients the API
  refuses are alone; only they are `failed`, with the API's code and message.
- 401/403/404: nothing can succeed. The intent is released, nobody is marked, the run
  stops at once (no new batches) and `run()` raises the error after in-flight requests end.
- 5xx, timeout, dropped connection, or an unusable answer: the request may have been
  processed. Its recipients are `in_doubt`: never resent blindly (reconciliation decides).
- No connection at all: not processed; retried with back-off, then the run stops.

Per-recipient outcomes are values (ledger lines), never exceptions.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final, NamedTuple

import anyio
import orjson
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from campaign.client import CommsClient
from campaign.exceptions import (
    AmbiguousError,
    CampaignError,
    FatalError,
    RateLimitedError,
    RequestRejectedError,
    TemplateError,
    UnreachableError,
)
from campaign.inflight import InFlightCap
from campaign.ledger import LedgerError, LedgerWriter, now_text
from campaign.pacing import PoolPacer
from campaign.recipients import KeptKeys, RecipientRow, read_campaign_recipients
from campaign.reconcile import Reconciliation, reconcile
from campaign.retries import Retryable
from campaign.spec import CampaignSpec
from campaign.templating import ROW_TAG_TEMPLATE, ROW_VARIABLE, MessageTemplate

__all__ = ["CampaignRun", "RunLimits", "RunOutcome"]

log = structlog.get_logger("campaign")

_DEFAULT_PAUSE_S: Final = 1.0  # a 429 without Retry-After
_UNREACHABLE_WAITS_S: Final = (0.5, 1.0, 2.0, 4.0, 8.0)  # then the run stops
_YIELD_EVERY: Final = 1024  # rows read between chances for other tasks to run
_AHEAD_ROWS: Final = 256  # recipients whose intents may be written before a worker is free
MAX_PASSES: Final = 3  # passes over the input in one run (reconciled rows are resent)


@dataclass(frozen=True, slots=True)
class RunLimits:
    """How much work one run does before it stops cleanly (cron batches); None: no limit."""

    max_recipients: int | None = None
    max_duration_s: float | None = None


@dataclass(slots=True)
class RunOutcome:
    """What one run did: its ledger lines by state, its requests, and why it stopped."""

    counts: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    stopped: str | None = None  # "max_recipients", "max_duration", "signal"; None: read to the end
    work_left: bool = False  # rows that can still be sent were left for the next run
    duration_s: float = 0.0
    rows_read: int = 0
    reconciled: list[Reconciliation] = field(default_factory=list)


class _Entry(NamedTuple):
    row: int
    address: str
    channel: str
    variables: dict[str, str]


@dataclass(slots=True)
class _Batch:
    pool_id: str
    entries: list[_Entry]


@dataclass(slots=True)
class _Prepared:
    """A batch taken ahead, with its intent already written when `batch_id` is set."""

    batch: _Batch
    batch_id: str | None = None  # None: its pool had no slot free; sent the usual way
    seq: int = 0  # the intent's line number, for `durable(upto=)`
    pauses: int = 0  # the pool's pause count when its slot was taken
    slot_s: float = 0.0  # when its slot was taken (the run's clock)


class CampaignRun:
    """One run of a campaign into an open `LedgerWriter`; `await run()` once.

    `clock` and `sleep` drive pacing and back-offs (tests give them another clock);
    `stop(reason)` asks for a clean stop: no new batches, in-flight requests finish.
    `settle_s` is how long a request may still be in the API's hands after its intent
    (the client's timeout and a margin): reconciliation waits that long before listing.
    `kept_keys` keeps the reader's dedupe keys between runs, so that the rows every
    earlier run settled (up to the ledger's watermark) are not read again.
    """

    def __init__(
        self,
        spec: CampaignSpec,
        client: CommsClient,
        writer: LedgerWriter,
        *,
        run_number: int,
        limits: RunLimits | None = None,
        settle_s: float = 35.0,
        resend_in_doubt: bool = False,
        kept_keys: KeptKeys | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.spec = spec
        self.client = client
        self.writer = writer
        self.limits = limits or RunLimits()
        self.outcome = RunOutcome()
        self.settle_s = settle_s
        self.resend_in_doubt = resend_in_doubt
        self._kept_keys = kept_keys
        self._run_number = run_number
        self._taken = 0  # recipients handed to workers, for --max-recipients
        self._batches = 0
        self._clock = clock
        self._sleep = sleep
        self._template = MessageTemplate(spec.message.text)
        self._used = tuple(sorted(self._template.variables - {ROW_VARIABLE}))
        self._tags = {"campaign": spec.name, "row": ROW_TAG_TEMPLATE}
        self._content = {"text": spec.message.text}
        self._pool_ids = {alias: pool.id for alias, pool in spec.pools.items()}
        self._pacers: dict[str, PoolPacer] = {}
        for pool in spec.pools.values():
            # Two aliases of one pool share its pace: the pool is what delivers.
            pacer = self._pacers.get(pool.id)
            rate = pool.rate_per_s if pacer is None else min(pacer.rate_per_s, pool.rate_per_s)
            self._pacers[pool.id] = PoolPacer(rate, clock=clock, sleep=sleep)
        self._started_s = 0.0
        self._stop_reason: str | None = None
        self._limit_reached: str | None = None
        self._fatal: CampaignError | None = None
        self._reader_scope: anyio.CancelScope | None = None
        self._reconcile_scope: anyio.CancelScope | None = None
        # The account's limit on requests in flight, as its 429s tell it (see inflight.py).
        self._in_flight = InFlightCap(spec.sending.concurrency, clock=clock)
        # Batches taken ahead of the workers, their intents written and being synced in
        # one group while earlier requests are in flight (see `_next_ready`).
        self._ready: deque[_Prepared] = deque()
        self._unasked = 0  # the last intent written ahead whose fsync was not asked for yet
        self._unasked_count = 0  # how many of the batches ready that leaves at the tail
        self._ahead = min(
            16 * spec.sending.concurrency, max(1, _AHEAD_ROWS // spec.sending.batch_size)
        )

    # Control

    def stop(self, reason: str) -> None:
        """Take no new work: the reader stops and workers finish the request in hand."""
        if self._stop_reason is None:
            self._stop_reason = reason
            log.info("campaign.run_stopping", campaign=self.spec.name, reason=reason)
        if self._reader_scope is not None:
            self._reader_scope.cancel()
        if self._reconcile_scope is not None:
            # Reconciliation writes its lines only after its last await: cancelling it
            # loses nothing, and the next run reconciles the same rows.
            self._reconcile_scope.cancel()

    @property
    def stopping(self) -> bool:
        return self._stop_reason is not None

    def _out_of_time(self) -> bool:
        limit = self.limits.max_duration_s
        if limit is not None and self._clock() - self._started_s >= limit:
            self.stop("max_duration")
        return self.stopping

    # The run

    async def run(self) -> RunOutcome:
        """Send everything not yet settled; raises the run-level error that stopped it.

        First the ledger's in-doubt rows are reconciled (those proven absent are sent in
        this run). Then one pass over the input sends every unsettled row; if that pass
        left rows in doubt, they are reconciled and, when some prove absent, another pass
        sends them, up to `MAX_PASSES`.
        """
        self._started_s = self._clock()
        try:
            await self._reconcile()
            for _ in range(MAX_PASSES):
                before = self.outcome.counts["in_doubt"]
                await self._pass()
                if self._fatal is not None or self.stopping or self.outcome.work_left:
                    break
                if self.outcome.counts["in_doubt"] == before:
                    break
                if not (await self._reconcile()).absent:
                    break
            if self.writer.state.unsent:
                self.outcome.work_left = True  # proven absent, not yet sent again
        finally:
            self.outcome.duration_s = self._clock() - self._started_s
            self.outcome.stopped = self._stop_reason or self._limit_reached
        if self._fatal is not None:
            raise self._fatal
        return self.outcome

    async def _reconcile(self) -> Reconciliation:
        """Reconcile the ledger's in-doubt rows, unless the run is stopping (then, or when
        a stop comes during its wait for requests to settle, it is left to the next run)."""
        found = Reconciliation()
        with anyio.CancelScope() as scope:
            self._reconcile_scope = scope
            if self.stopping:
                scope.cancel()
            try:
                found = await reconcile(
                    self.client,
                    self.writer,
                    self.spec.name,
                    settle_s=self.settle_s,
                    resend=self.resend_in_doubt,
                    sleep=self._sleep,
                )
            except LedgerError as err:
                self._give_up(err)
                return found
            finally:
                self._reconcile_scope = None
        if scope.cancelled_caught:
            return found
        self.outcome.reconciled.append(found)
        return found

    async def _pass(self) -> None:
        """Read the input once, sending what is not settled."""
        concurrency = self.spec.sending.concurrency
        # Room for the batches taken ahead too, so that the reader keeps them coming.
        buffer = concurrency + self._ahead
        send, receive = anyio.create_memory_object_stream[_Batch](max_buffer_size=buffer)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._read, send)
                for _ in range(concurrency):
                    group.start_soon(self._work, receive.clone())
                receive.close()
        finally:
            while self._ready:  # cancelled with batches taken ahead: never sent
                self._unsent(self._ready.popleft())

    async def _read(self, send: MemoryObjectSendStream[_Batch]) -> None:
        with anyio.CancelScope() as scope:
            self._reader_scope = scope
            if self.stopping:
                scope.cancel()
            async with send:
                try:
                    await self._read_rows(send)
                except CampaignError as err:  # the input unreadable, or the ledger failing
                    self._give_up(err)
        self._reader_scope = None
        if scope.cancelled_caught:
            self.outcome.work_left = True

    async def _read_rows(self, send: MemoryObjectSendStream[_Batch]) -> None:
        spec = self.spec
        batch_size = spec.sending.batch_size
        limit = self.limits.max_recipients
        state = self.writer.state
        is_settled = state.is_settled
        kept = self._kept_keys
        if kept is not None:
            # Every row up to the watermark is settled, but for those proven absent since.
            through = min(state.watermark, min(state.unsent, default=state.watermark + 1) - 1)
            kept = replace(kept, settled_through=through)
        pending: dict[str, list[_Entry]] = {}
        required = self._template.required_variables
        with read_campaign_recipients(spec, required, kept=kept) as rows:
            self.outcome.rows_read += rows.skipped
            for row in rows:
                self.outcome.rows_read += 1
                if self.outcome.rows_read % _YIELD_EVERY == 0:
                    await anyio.lowlevel.checkpoint()
                    if self._out_of_time():
                        break
                if is_settled(row.row):
                    continue
                entry = self._entry(row)
                if entry is None:
                    continue
                if limit is not None and self._taken >= limit:
                    # Read on only to here: past the limit, the first row that could be
                    # sent proves work is left (rows before it got their lines above).
                    self.outcome.work_left = True
                    self._limit_reached = "max_recipients"
                    break
                self._taken += 1
                pool_id = self._pool_ids[row.pool]
                batch = pending.setdefault(pool_id, [])
                batch.append(entry)
                if len(batch) >= batch_size:
                    del pending[pool_id]
                    await _put(send, _Batch(pool_id, batch))
                    if self._out_of_time():
                        break
            for pool_id, batch in pending.items():
                await _put(send, _Batch(pool_id, batch))

    def _entry(self, row: RecipientRow) -> _Entry | None:
        """The recipient to send for a valid row; for any other, its ledger line now."""
        if row.verdict != "valid":
            line = self._line(row.row, row.address, row.channel, row.pool, row.verdict)
            if row.reason is not None:
                line["reason"] = row.reason
            if row.detail:
                line["error"] = row.detail
            self._settle(line)
            return None
        source = row.variables
        variables = {name: source[name] for name in self._used if name in source}
        if self._template.renders_per_row:
            try:
                # A render that fails for this row's values would make the API refuse the
                # whole batch; it is the row's problem, settled here like the preview does.
                self._template.render(variables)
            except TemplateError as err:
                line = self._line(row.row, row.address, row.channel, row.pool, "invalid")
                line["reason"] = "render_error"
                line["error"] = str(err)
                self._settle(line)
                return None
        variables[ROW_VARIABLE] = str(row.row)
        return _Entry(row.row, row.address, row.channel, variables)

    def _line(self, row: int, address: str, channel: str, pool: str, status: str) -> dict[str, Any]:
        return {
            "type": "recipient",
            "row": row,
            "address": address,
            "channel": channel,
            "pool": self._pool_ids.get(pool, pool),
            "status": status,
            "at": now_text(),
        }

    def _settle(self, line: dict[str, Any]) -> None:
        self.writer.write(line)
        self.outcome.counts[line["status"]] += 1

    # Workers

    async def _work(self, receive: MemoryObjectReceiveStream[_Batch]) -> None:
        async with receive:
            while (item := self._ready_or_none(receive) or await self._next(receive)) is not None:
                if self.stopping or self._out_of_time():
                    self.outcome.work_left = True
                    self._unsent(item)
                    continue  # drain, so the reader is never left blocked on a full stream
                try:
                    await self._deliver(item.batch, item)
                except CampaignError as err:  # the ledger failing: nothing more can be recorded
                    self._give_up(err)

    def _ready_or_none(self, receive: MemoryObjectReceiveStream[_Batch]) -> _Prepared | None:
        """`_next_ready`, or None once the ledger fails (the run gives up: no new work)."""
        try:
            return self._next_ready(receive)
        except CampaignError as err:
            self._give_up(err)
            return None

    def _next_ready(self, receive: MemoryObjectReceiveStream[_Batch]) -> _Prepared | None:
        """The next batch taken ahead, if any (without waiting).

        At one recipient a batch, an fsync before every request would leave the workers
        waiting on the disk in turns; so when few batches are ready, the batches the reader
        already has are taken ahead, their intents written and synced in one group in the
        background, and a worker usually finds its intent on disk when it gets there.
        """
        ready = self._ready
        # Topped up a quarter at a time: the reader, blocked on a full stream, then wakes
        # once to refill many slots rather than once a batch.
        if len(ready) <= self._ahead * 3 // 4 and not self.stopping:
            self._prepare(receive)
        if not ready:
            return None
        item = ready.popleft()
        # It may have been one whose fsync was not asked for yet (durable starts it).
        self._unasked_count = min(self._unasked_count, len(ready))
        return item

    async def _next(self, receive: MemoryObjectReceiveStream[_Batch]) -> _Prepared | None:
        """The reader's next batch, waiting for it; None once the reader is done."""
        batch = await _take(receive)
        return None if batch is None else _Prepared(batch)

    def _prepare(self, receive: MemoryObjectReceiveStream[_Batch]) -> None:
        """Take what the reader has ready (up to `_ahead`) and write the intents of those
        whose pool has a slot free now.

        Their fsync is started once only half the batches ahead are covered by syncs
        already asked for, so that one fsync covers many intents and still ends before a
        worker needs them (if not, `durable` waits for it, or starts it).
        """
        ready = self._ready
        at = now_text()  # one instant for the intents written here
        while len(ready) < self._ahead:
            try:
                batch = receive.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
            pacer = self._pacers[batch.pool_id]
            if not pacer.turn_now(len(batch.entries)):
                ready.append(_Prepared(batch))
                continue
            batch_id = self._batch_id()
            try:
                seq = self.writer.write(self._intent_line(batch_id, batch, at))
            except LedgerError:
                ready.append(_Prepared(batch))  # not sent: the run gives up
                self.writer.salvage(self._release_line(batch_id, "ledger"))
                raise
            ready.append(_Prepared(batch, batch_id, seq, pacer.pauses, self._clock()))
            self._unasked = seq
            self._unasked_count += 1
        if self._unasked and len(ready) - self._unasked_count <= self._ahead // 2:
            self.writer.sync_soon(self._unasked)
            self._unasked = self._unasked_count = 0

    def _unsent(self, item: _Prepared) -> None:
        """A batch taken ahead that will not be sent in this run: free its intent's rows."""
        if item.batch_id is None:
            return
        line = self._release_line(item.batch_id, "stopped")
        try:
            self.writer.write(line)
        except LedgerError:
            self.writer.salvage(line)

    def _give_up(self, err: CampaignError) -> None:
        """A run-level failure: remember the first, and take no new work."""
        self._fatal = self._fatal or err
        self.stop("fatal")

    def _batch_id(self) -> str:
        self._batches += 1
        return f"{self._run_number}.{self._batches}"

    def _release(self, batch_id: str, why: str) -> None:
        self.writer.write(self._release_line(batch_id, why))

    @staticmethod
    def _release_line(batch_id: str, why: str) -> dict[str, Any]:
        return {"type": "released", "batch": batch_id, "why": why, "at": now_text()}

    def _written_ahead(
        self, prepared: _Prepared | None, pacer: PoolPacer
    ) -> tuple[str, int] | None:
        """The batch id and line number of an intent written ahead, if it still holds.

        It does not if its pool was paused since (its slot is void), nor if its slot has
        passed (the workers were busy: sent now, it could crowd the next slots' batches)
        and no other slot is free now: then it is released, and the batch waits for a new
        slot like any other.  (An unpaced pool always has one free.)
        """
        if prepared is None or prepared.batch_id is None:
            return None
        recipients = len(prepared.batch.entries)
        if prepared.pauses != pacer.pauses:
            self._release(prepared.batch_id, "paused")
        elif pacer.on_time(prepared.slot_s, recipients) or pacer.turn_now(recipients):
            return prepared.batch_id, prepared.seq
        else:
            self._release(prepared.batch_id, "late")
        return None

    async def _intent(self, batch: _Batch, pacer: PoolPacer) -> tuple[str, int] | None:
        """The batch id and line number of a new intent, at the pool's pace; None if the
        run stops meanwhile."""
        await pacer.wait_turn(len(batch.entries))
        if self.stopping:
            return None
        batch_id = self._batch_id()
        return batch_id, self.writer.write(self._intent_line(batch_id, batch))

    def _intent_line(self, batch_id: str, batch: _Batch, at: str | None = None) -> dict[str, Any]:
        return {
            "type": "intent",
            "batch": batch_id,
            "pool": batch.pool_id,
            "rows": [entry.row for entry in batch.entries],
            "at": at or now_text(),
        }

    async def _durable(self, batch: _Batch, batch_id: str, seq: int) -> None:
        """Wait until this intent is on disk; if it never will be, its request never goes."""
        try:
            await self.writer.durable(seq)
        except LedgerError:
            # The intent may be on disk, but its request will never go out: say so if
            # the disk still takes a line, so the next run need not doubt these rows.
            self.writer.salvage(self._release_line(batch_id, "ledger"))
            raise
        except anyio.get_cancelled_exc_class():
            self._unsent(_Prepared(batch, batch_id))  # cancelled before its request
            raise

    async def _deliver(self, batch: _Batch, prepared: _Prepared | None = None) -> None:
        """Send one batch until its recipients are settled (or the run stops).

        `prepared`: its intent was written ahead (see `_next_ready`); it is used unless the pool
        was paused since, in which case it is released and the batch queues again.
        """
        pacer = self._pacers[batch.pool_id]
        entries = batch.entries
        attempts = 0
        unreachable = 0
        while True:
            intent = self._written_ahead(prepared, pacer) or await self._intent(batch, pacer)
            prepared = None
            if intent is None:  # the run is stopping
                self.outcome.work_left = True
                return
            batch_id, seq = intent
            attempts += 1
            if not self.writer.is_durable(seq):
                await self._durable(batch, batch_id, seq)
            self.outcome.requests += 1
            gate = self._in_flight
            if not gate.take():  # a slot at once: the usual case, without a coroutine
                await gate.enter()
            try:
                try:
                    operation_id = await self.client.send_json(
                        self._body(batch), retryable=Retryable.NEVER
                    )
                finally:
                    gate.leave()  # before any handling below waits (or sends halves)
            except RateLimitedError as err:
                self._rate_limited(batch, batch_id, pacer, err)
                continue
            except RequestRejectedError as err:
                self._release(batch_id, str(err.status or 400))
                await self._isolate(batch, err, attempts)
                return
            except FatalError as err:
                self._release(batch_id, str(err.status))
                self._give_up(err)
                return
            except UnreachableError as err:
                self._release(batch_id, "unreachable")
                if unreachable >= len(_UNREACHABLE_WAITS_S) or self.stopping:
                    self._give_up(err)
                    return
                log.warning("campaign.api_unreachable", error=str(err), batch=batch_id)
                await self._sleep(_UNREACHABLE_WAITS_S[unreachable])
                unreachable += 1
                continue
            except AmbiguousError as err:
                log.warning(
                    "campaign.batch_in_doubt",
                    batch=batch_id,
                    recipients=len(entries),
                    error=str(err),
                )
                self._settle_all(batch, "in_doubt", attempts, batch_id, err)
                return
            except anyio.get_cancelled_exc_class():
                # Cancelled mid-request (second signal): the request may have gone out.
                self._settle_all(batch, "in_doubt", attempts, batch_id, None)
                raise
            gate.answered()
            self._settle_all(batch, "accepted", attempts, batch_id, None, operation_id)
            return

    def _rate_limited(
        self, batch: _Batch, batch_id: str, pacer: PoolPacer, err: RateLimitedError
    ) -> None:
        """A 429: never processed. Fewer requests in flight, the pool paused, then again."""
        self._in_flight.refused()
        self._release(batch_id, "429")
        wait_s = err.retry_after_s if err.retry_after_s is not None else _DEFAULT_PAUSE_S
        pacer.pause(wait_s)
        log.warning("campaign.pool_paused", pool=batch.pool_id, seconds=wait_s, batch=batch_id)

    async def _isolate(self, batch: _Batch, err: RequestRejectedError, attempts: int) -> None:
        """A refused batch: halves resent until the refused recipients are alone."""
        entries = batch.entries
        if len(entries) == 1:
            self._settle_all(batch, "failed", attempts, None, err)
            log.info("campaign.recipient_failed", row=entries[0].row, code=err.code)
            return
        middle = len(entries) // 2
        log.info("campaign.batch_split", pool=batch.pool_id, recipients=len(entries), code=err.code)
        for half in (entries[:middle], entries[middle:]):
            await self._deliver(_Batch(batch.pool_id, half))

    def _body(self, batch: _Batch) -> bytes:
        """The request's JSON, as `MessageBatch(...).to_json()` would give it, in one step.

        Every recipient has variables: at least the row number for its `row` tag.
        """
        return orjson.dumps(
            {
                "from": {"senderPoolId": batch.pool_id},
                "to": [
                    {"address": e.address, "channel": e.channel, "variables": e.variables}
                    for e in batch.entries
                ],
                "content": self._content,
                "tags": self._tags,
            }
        )

    def _settle_all(
        self,
        batch: _Batch,
        status: str,
        attempts: int,
        batch_id: str | None,
        err: Exception | None,
        operation_id: str | None = None,
    ) -> None:
        at = now_text()
        extra: dict[str, Any] = {"attempts": attempts}
        if batch_id is not None:
            extra["batch"] = batch_id
        if operation_id is not None:
            extra["operation"] = operation_id
        if err is not None:
            status_code = getattr(err, "status", None)
            if status_code is not None:
                extra["http"] = status_code
            code = getattr(err, "code", None)
            if code is not None:
                extra["code"] = code
            extra["error"] = getattr(err, "api_message", None) or str(err)
        elif status == "in_doubt":
            extra["error"] = "the run was cancelled while the request was in flight"
        write = self.writer.write
        for entry in batch.entries:
            write(
                {
                    "type": "recipient",
                    "row": entry.row,
                    "address": entry.address,
                    "channel": entry.channel,
                    "pool": batch.pool_id,
                    "status": status,
                    **extra,
                    "at": at,
                }
            )
        self.outcome.counts[status] += len(batch.entries)


async def _put(send: MemoryObjectSendStream[_Batch], batch: _Batch) -> None:
    """`send.send`, without its scheduling round trip while the stream has room.

    At one recipient a batch, the stream's own checkpoints cost a tenth of a run's CPU;
    the reader still yields every `_YIELD_EVERY` rows and whenever the stream is full.
    """
    try:
        send.send_nowait(batch)
    except anyio.WouldBlock:
        await send.send(batch)


async def _take(receive: MemoryObjectReceiveStream[_Batch]) -> _Batch | None:
    """The next batch (waiting only when none is ready), or None once the reader is done."""
    try:
        return receive.receive_nowait()
    except anyio.WouldBlock:
        try:
            return await receive.receive()
        except anyio.EndOfStream:
            return None
    except anyio.EndOfStream:
        return None
