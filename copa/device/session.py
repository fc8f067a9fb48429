"""A long-lived, thread-safe session with one board: the bridge's core.

One reader thread owns the port: it decodes frames, hands responses to the waiting request (by id)
and queues events for a dispatcher thread that calls subscribers, so a slow subscriber never stalls
the link and queued events survive a reconnect. Requests are pipelined (up to 254 in flight), each
with a deadline; idempotent ones are retried on timeout. After HELLO the session authenticates with
the paired key (mutual challenge-response, docs/protocol.md); state-changing commands carry a
counter and a MAC. The host counter is persisted in blocks, so a new session never reuses one.

When the link drops (unplug, emulator killed, EIO on the pty) the session tells its listeners,
fails the requests in flight at once, and reconnects in the background with backoff: it reopens the
port (asking ``resolve`` for a new path if one is given), checks the board's id, re-authenticates and
re-subscribes. A request made meanwhile waits for the reconnection no longer than its timeout.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from copa.device.commands import BoardCommands
from copa.device.protocol import (
    AUTH_TRAILER,
    AUTHENTICATED,
    Board,
    Cmd,
    DeviceError,
    Frame,
    FrameDecoder,
    Hello,
    Session,
    Status,
    encode_frame,
    parse_event,
    subscribe_body,
)
from copa.device.transport import open_port
from copa.errors import CopaError

log = logging.getLogger("copa.device")

#: commands safe to send twice (a retry after a lost answer must not do something twice)
IDEMPOTENT = frozenset({
    Cmd.PING, Cmd.HELLO, Cmd.GPIO_MODE, Cmd.GPIO_READ, Cmd.GPIO_WRITE, Cmd.ADC_READ, Cmd.PWM_WRITE,
    Cmd.I2C_SCAN, Cmd.SUBSCRIBE, Cmd.RULE_LIST, Cmd.RULE_CLEAR, Cmd.STATS,
})
COUNTER_BLOCK = 256  # host counters are reserved (persisted) this many at a time
QUARANTINE_MIN = 0.15  # seconds a timed-out request's id stays unused (a late answer must not match)
REMOTE_HANGUP_GRACE = 3.0  # seconds a network serial server that hangs up before HELLO is asked again
AUTH_OVERHEAD = AUTH_TRAILER  # a signed body grows by counter + MAC; COBS adds ~1 byte per 254
#: request bytes allowed in flight per board (its UART receive ring: 128 B on the Uno, 256 B on the
#: STM32 port); more overruns the ring and loses frames. Unknown boards get the smallest.
WINDOW = {Board.HOST: 4096, Board.UNO: 96, Board.STM32F103: 192}
DEFAULT_WINDOW = 96
#: commands that write the board's storage (the Uno's EEPROM takes 3.4 ms a byte): sent alone, and
#: nothing else is sent until they are answered (docs/protocol.md, "Pipelining")
STORAGE_WRITES = frozenset({Cmd.PAIR, Cmd.RULE_ADD, Cmd.RULE_DEL, Cmd.RULE_CLEAR})


class NoAnswer(CopaError):
    """The board did not answer (in time, or at all)."""


class DeviceUnavailable(NoAnswer):
    """The board is not connected (unplugged, or still reconnecting)."""


class RequestTimeout(NoAnswer):
    """A request got no answer in time (after its retries)."""


@dataclass
class ReceivedEvent:
    """An event from the board with the host time it arrived."""

    at: datetime
    event: Any  # SampleEvent | RuleEvent | Frame


CounterStore = tuple[Callable[[], int], Callable[[int], None]]  # (load, save)


class DeviceSession(BoardCommands):
    def __init__(self, port: str, *, key: bytes | None = None, device_id: bytes | None = None,
                 name: str = "", resolve: Callable[[], str | None] | None = None,
                 counters: CounterStore | None = None, timeout: float = 2.0, retries: int = 2,
                 reconnect: bool = True, hello_attempts: int = 15, hello_interval: float = 0.2,
                 opener: Callable[[str], Any] | None = None):
        self.port_path = port
        self.key = key
        self.device_id = device_id  # expected id; learned at the first HELLO when None
        self.name = name or port
        self.resolve = resolve
        self.counters = counters
        self.timeout = timeout
        self.retries = retries
        self.auto_reconnect = reconnect
        self.hello_attempts = hello_attempts
        self.hello_interval = hello_interval
        self._opener = opener or open_port
        self.hello_info: Hello | None = None
        self.auth: Session | None = None
        self.stats = {"sent": 0, "answered": 0, "timeouts": 0, "retries": 0, "stray": 0,
                      "reconnects": 0, "events": 0, "reauth": 0, "malformed": 0}
        self._port: Any = None
        self._gen = 0  # bumped on every (re)connect; a reader of an old generation exits
        self._lock = threading.RLock()  # id allocation, signing and writing happen in one order
        self._pending: dict[int, tuple[int, Future[Frame], int]] = {}
        self._window_cv = threading.Condition(self._lock)
        self._inflight = 0  # request bytes sent and not yet answered (flow control)
        self._quarantine: dict[int, float] = {}  # id -> until when it is not reused (timed out)
        self.window = DEFAULT_WINDOW
        self._next_id = 0
        self._connected = threading.Event()
        self._closed = False
        self._listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self._subscribers: list[Callable[[ReceivedEvent], None]] = []
        self._events: deque[ReceivedEvent] = deque(maxlen=10_000)
        self._events_cv = threading.Condition()
        self._subscription: tuple[int, list[tuple[int, int]]] | None = None
        self._counter_limit = 0
        self._last_rx = time.monotonic()
        self._reconnecting = threading.Lock()
        self._dispatcher = threading.Thread(target=self._dispatch_loop, daemon=True,
                                            name=f"copa-device-events-{self.name}")
        self._dispatcher.start()

    # ------------------------------------------------------------------ public: life cycle
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def connect(self) -> Hello:
        """Open the port, HELLO (with retries) and authenticate; raises on failure.

        A network serial server that hangs up before HELLO is asked again for up to
        ``REMOTE_HANGUP_GRACE`` seconds: ser2net serves one client per port and frees the port a
        moment after the previous client closed (pairing, then using a board at once, met that)."""
        deadline = time.monotonic() + (REMOTE_HANGUP_GRACE if "://" in self.port_path else 0.0)
        while True:
            self._hung_up = False
            self._open_and_start(self.port_path)
            try:
                h = self._handshake()
                break
            except NoAnswer:
                self._drop_port()
                if not self._hung_up or time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)
            except BaseException:
                self._drop_port()
                raise
        self._notify("connected", {"port": self.port_path, "device_id": h.device_id.hex()})
        return h

    def close(self) -> None:
        self._closed = True
        self._connected.clear()
        self._drop_port()
        self._fail_pending(DeviceUnavailable(f"{self.name}: session closed"))
        with self._events_cv:
            self._events_cv.notify_all()
        self._save_counter()

    def __enter__(self) -> DeviceSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def add_listener(self, fn: Callable[[str, dict[str, Any]], None]) -> None:
        """``fn(kind, info)`` on "connected", "lost", "reconnected" and "reconnect_failed"."""
        self._listeners.append(fn)

    def subscribe_events(self, fn: Callable[[ReceivedEvent], None]) -> None:
        """``fn(event)`` for every event, in order, on the dispatcher thread."""
        self._subscribers.append(fn)

    # ------------------------------------------------------------------ public: requests
    def submit(self, cmd: int, body: bytes = b"", *, wait: float | None = None,
               sign: bool | None = None) -> Future[Frame]:
        """Send one request and return a future for its answer (pipelining). Waits (at most ``wait``
        seconds, default the timeout) while the board's receive window is full."""
        fut: Future[Frame] = Future()
        deadline = time.monotonic() + (self.timeout if wait is None else wait)
        with self._lock:
            size = len(body) + 2 * AUTH_OVERHEAD  # upper bound of the encoded frame
            if cmd in STORAGE_WRITES:
                size = self.window  # alone on the wire, and holding the window until answered
            while True:  # wait for room in the board's window and for a free request id
                now = time.monotonic()
                rid = None
                if not (self._inflight and self._inflight + size > self.window):
                    rid = self._alloc_id()
                    if rid is not None:
                        break
                left = deadline - now
                if left <= 0:
                    raise RequestTimeout(f"{self.name}: the board is not taking requests",
                                         hint="is the board still running copa firmware?")
                soonest = min(self._quarantine.values(), default=now + left) - now
                self._window_cv.wait(min(left, max(0.002, soonest)))
            port = self._port
            if port is None:
                raise DeviceUnavailable(f"{self.name} is not connected",
                                        hint="check the cable; copa reconnects by itself when it is back")
            payload = body
            if (cmd in AUTHENTICATED if sign is None else sign) and self.auth is not None and self.auth.established:
                self._reserve_counter()
                payload = self.auth.sign(cmd, rid, body)
            wire = encode_frame(cmd, rid, payload)
            held = self.window if cmd in STORAGE_WRITES else len(wire)
            self._pending[rid] = (cmd, fut, held)
            self._inflight += held
            try:
                port.write(wire)
            except Exception as e:  # the port died under us
                self._release(rid)
                self._on_lost(f"write failed: {e}")
                raise DeviceUnavailable(f"{self.name}: the link dropped while sending") from None
            self.stats["sent"] += 1
        fut.rid = rid  # type: ignore[attr-defined]
        return fut

    def result(self, fut: Future[Frame], timeout: float | None = None) -> Frame:
        """Wait for a submitted request; on timeout the id is released and RequestTimeout raised."""
        try:
            return fut.result(self.timeout if timeout is None else timeout)
        except FutureTimeout:
            with self._lock:
                rid = getattr(fut, "rid", None)
                if rid is not None and self._pending.get(rid, (0, None, 0))[1] is fut:
                    self._release(rid)
                    # its answer may still come: keep the id out of use so it cannot answer another
                    waited = self.timeout if timeout is None else timeout
                    self._quarantine[rid] = time.monotonic() + max(QUARANTINE_MIN, 2 * waited)
            self.stats["timeouts"] += 1
            raise RequestTimeout(f"{self.name}: no answer in time",
                                 hint="is the board still running copa firmware?") from None

    def request(self, cmd: int, body: bytes = b"", *, timeout: float | None = None,
                retries: int | None = None, check: bool = True, expect: Callable[[Frame], bool] | None = None,
                sign: bool | None = None, _internal: bool = False) -> Frame:
        """Send and wait, retrying idempotent commands on timeout and re-authenticating once if
        the board lost our session; ``check`` raises DeviceError on a non-OK status. An OK answer
        that fails ``expect`` (wrong length, wrong echo: damage the CRC missed) counts as lost."""
        timeout = self.timeout if timeout is None else timeout
        tries = 1 + ((self.retries if retries is None else retries) if cmd in IDEMPOTENT else 0)
        reauthed = False
        last: Exception | None = None
        attempt = 0
        while attempt < tries:
            attempt += 1
            try:
                if not _internal:
                    self._wait_connected(timeout)
                f = self.result(self.submit(cmd, body, sign=sign), timeout)
            except RequestTimeout as e:
                last = e
                if attempt < tries:
                    self.stats["retries"] += 1
                continue
            except DeviceUnavailable as e:
                last = e
                if attempt < tries:
                    self.stats["retries"] += 1
                    continue
                raise
            if ((cmd in AUTHENTICATED if sign is None else sign) and f.status in (Status.AUTH_REQUIRED, Status.BAD_MAC)
                    and self.key is not None and not reauthed):
                # the board rebooted or another host took the session: prove ourselves again
                reauthed = True
                self.stats["reauth"] += 1
                self._authenticate()
                attempt -= 1
                continue
            if expect is not None and f.status == Status.OK and not expect(f):
                self.stats["malformed"] += 1
                last = RequestTimeout(f"{self.name}: a damaged answer to command 0x{cmd:02x}")
                if attempt < tries:
                    self.stats["retries"] += 1
                continue
            if check and f.status != Status.OK:
                raise DeviceError(cmd, f.status)
            return f
        assert last is not None
        if (isinstance(last, RequestTimeout) and self.auto_reconnect and not _internal
                and time.monotonic() - self._last_rx > 3 * timeout and self._connected.is_set()):
            # the port is open but the board has said nothing for a while: it hung or lost power
            # behind a powered USB adapter; reopen (which also resets an Uno) and start over
            self._on_lost(f"no answer for {time.monotonic() - self._last_rx:.1f} s")
        if isinstance(last, RequestTimeout) and tries > 1:
            raise RequestTimeout(f"{self.name}: no answer after {tries} tries",
                                 hint="check the cable and that the board runs copa firmware")
        raise last

    # ------------------------------------------------------------------ public: events
    def set_subscription(self, period_ms: int, items: list[tuple[int, int]]) -> None:
        """Sample these (kind, index) items every ``period_ms``; remembered across reconnects."""
        self.request(Cmd.SUBSCRIBE, subscribe_body(period_ms, items))
        self._subscription = (period_ms, list(items)) if items and period_ms else None

    def next_event(self, timeout: float | None = None) -> ReceivedEvent | None:
        """Pop the oldest queued event (for pull-style readers such as ``copa device watch``)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        with self._events_cv:
            while not self._pull:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return None
                self._events_cv.wait(left)
            return self._pull.popleft()

    def enable_pull(self) -> None:
        """Keep events for :meth:`next_event` (bounded; the oldest are dropped past 10,000)."""
        self._pull: deque[ReceivedEvent] = deque(maxlen=10_000)

    _pull: deque[ReceivedEvent] = deque(maxlen=0)

    # ------------------------------------------------------------------ internals: connection
    def _open_and_start(self, path: str) -> None:
        port = self._opener(path)
        with self._lock:
            if self._closed:  # closed while we were opening: let go of the port at once
                port.close()
                raise DeviceUnavailable(f"{self.name}: session closed")
            self._gen += 1
            gen = self._gen
            self._port = port
            self.port_path = path
            self.auth = None
        threading.Thread(target=self._read_loop, args=(port, gen), daemon=True,
                         name=f"copa-device-reader-{self.name}").start()

    def _handshake(self, attempts: int | None = None) -> Hello:
        h = self._hello(attempts or self.hello_attempts)
        if self.device_id is not None and h.device_id != self.device_id:
            raise CopaError(f"the board on {self.port_path} is not {self.name} "
                            f"(id {h.device_id.hex()}, expected {self.device_id.hex()})",
                            hint="plug the right board in, or pair this one under its own name")
        self.device_id = h.device_id
        if self.key is not None:
            self._authenticate()
        if self._subscription:
            period, items = self._subscription
            self.request(Cmd.SUBSCRIBE, subscribe_body(period, items), _internal=True)
        self._connected.set()  # callers may go ahead only now: authenticated and subscribed
        return h

    def _hello(self, attempts: int) -> Hello:
        last: Exception | None = None
        for _ in range(attempts):
            if self._closed:
                raise DeviceUnavailable(f"{self.name}: session closed")
            try:
                f = self.result(self.submit(Cmd.HELLO, bytes([1])), self.hello_interval)
            except RequestTimeout as e:
                last = e
                continue
            except DeviceUnavailable:  # the port closed under us: a remote server hung up, mid-frame or not
                self._hung_up = True
                why = f" ({self._lost_reason})" if self._lost_reason else ""
                raise NoAnswer(f"{self.name}: {self.port_path} closed the link before the board answered HELLO{why}",
                               hint="is a copa board behind it (and, for ser2net, no other client on that port)?"
                               ) from None
            if f.status == Status.OK:
                self.hello_info = Hello.parse(f.payload)
                self.window = WINDOW.get(self.hello_info.board, DEFAULT_WINDOW)  # type: ignore[call-overload]
                return self.hello_info
        raise NoAnswer(f"{self.name}: no HELLO answer on {self.port_path}",
                       hint="is it a copa board? flash it with 'copa device flash --board uno|bluepill'"
                       ) from last

    def _authenticate(self, attempts: int = 3) -> None:
        """Mutual challenge-response; a lost frame restarts it from AUTH_BEGIN (fresh nonces)."""
        assert self.key is not None
        for attempt in range(attempts):
            s = Session(self.key)
            try:
                f = self.request(Cmd.AUTH_BEGIN, s.begin(), retries=0, _internal=True)
                answer = s.answer(f.payload[:8], f.payload[8:16])  # raises if the board cannot prove the key
                self.request(Cmd.AUTH_FINISH, answer, retries=0, _internal=True)
                break
            except (RequestTimeout, DeviceError) as e:
                if attempt + 1 == attempts or (isinstance(e, DeviceError) and e.status != Status.BAD_STATE):
                    raise
        s.confirm()
        with self._lock:
            base = self.counters[0]() if self.counters else 0
            s.counter = max(base, self._counter_limit)
            self._counter_limit = s.counter
            self.auth = s

    def _reserve_counter(self) -> None:
        """Persist a new block before the counter passes the last persisted limit."""
        assert self.auth is not None
        if self.auth.counter + 1 > self._counter_limit:
            self._counter_limit = self.auth.counter + COUNTER_BLOCK
            if self.counters:
                self.counters[1](self._counter_limit)

    def _save_counter(self) -> None:
        if self.counters and self._counter_limit:
            try:
                self.counters[1](self._counter_limit)
            except Exception:  # closing must not fail on a closed database
                log.debug("could not persist the device counter", exc_info=True)

    def _alloc_id(self) -> int | None:
        now = time.monotonic()
        for _ in range(255):
            self._next_id = self._next_id % 255 + 1  # 1..255; 0 is for events
            rid = self._next_id
            if rid in self._pending:
                continue
            if self._quarantine.get(rid, 0) > now:
                continue
            self._quarantine.pop(rid, None)
            return rid
        return None  # all 255 ids in flight or quarantined: the caller waits

    def _wait_connected(self, timeout: float) -> None:
        if self._closed:
            raise DeviceUnavailable(f"{self.name}: session closed")
        if not self._connected.wait(timeout):
            raise DeviceUnavailable(f"{self.name} is not connected",
                                    hint="check the cable; copa reconnects by itself when it is back")

    def _drop_port(self) -> None:
        with self._lock:
            port, self._port = self._port, None
            self._gen += 1
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()

    def _release(self, rid: int) -> None:
        """Forget a request (answered, timed out or failed) and free its window bytes; lock held."""
        entry = self._pending.pop(rid, None)
        if entry is not None:
            self._inflight = max(0, self._inflight - entry[2])
            self._window_cv.notify_all()

    def _fail_pending(self, exc: Exception) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            self._inflight = 0
            self._window_cv.notify_all()
        for _, fut, _n in pending.values():
            if not fut.done():
                fut.set_exception(exc)

    _lost_reason = ""
    _hung_up = False  # the last HELLO ended because the port closed under us (a remote server hung up)

    def _on_lost(self, reason: str) -> None:
        self._lost_reason = reason
        was = self._connected.is_set()
        self._connected.clear()
        self._drop_port()
        self._fail_pending(DeviceUnavailable(f"{self.name}: link lost ({reason})"))
        if self._closed:
            return
        if was:
            log.info("device %s lost: %s", self.name, reason)
            self._notify("lost", {"reason": reason})
        if self.auto_reconnect and self._reconnecting.acquire(blocking=False):
            threading.Thread(target=self._reconnect_loop, daemon=True,
                             name=f"copa-device-reconnect-{self.name}").start()

    def _reconnect_loop(self) -> None:
        delay = 0.05
        started = time.monotonic()
        try:
            while not self._closed:
                path = self.port_path
                if self.resolve is not None:
                    try:
                        path = self.resolve() or path
                    except Exception:
                        log.debug("resolve failed", exc_info=True)
                try:
                    self._open_and_start(path)
                    # 1.6 s covers an Uno's bootloader after the reset-on-open, and bounds how long
                    # a port that turns out to be another board is held
                    h = self._handshake(min(self.hello_attempts, 8))
                except Exception as e:
                    self._connected.clear()
                    self._drop_port()
                    log.debug("reconnect to %s failed: %s", self.name, e)
                    time.sleep(delay)
                    delay = min(delay * 1.5, 1.0)
                    continue
                self.stats["reconnects"] += 1
                self._notify("reconnected", {"port": path, "after_s": time.monotonic() - started,
                                             "device_id": h.device_id.hex()})
                return
        finally:
            self._reconnecting.release()

    def _notify(self, kind: str, info: dict[str, Any]) -> None:
        for fn in list(self._listeners):
            try:
                fn(kind, info)
            except Exception:
                log.exception("device listener failed")

    # ------------------------------------------------------------------ internals: threads
    def _read_loop(self, port: Any, gen: int) -> None:
        decoder = FrameDecoder()
        while gen == self._gen and not self._closed:
            try:
                data = port.read(port.in_waiting or 1)
            except Exception as e:  # SerialException/OSError: unplugged, pty closed, EIO
                if gen == self._gen:
                    self._on_lost(str(e) or type(e).__name__)
                return
            if not data:
                continue
            self._last_rx = time.monotonic()
            for f in decoder.feed(data):
                self._route(f)

    def _route(self, f: Frame) -> None:
        if f.is_event:
            self.stats["events"] += 1
            ev = ReceivedEvent(datetime.now(UTC), parse_event(f))
            with self._events_cv:
                self._events.append(ev)
                self._pull.append(ev)
                self._events_cv.notify_all()
            return
        if not f.is_response:
            return
        with self._lock:
            entry = self._pending.get(f.id)
            if entry is None or entry[0] != f.cmd:
                self.stats["stray"] += 1  # a late answer to a request that timed out
                if entry is None:
                    self._quarantine.pop(f.id, None)
                return
            self._release(f.id)
        self.stats["answered"] += 1
        if not entry[1].done():
            entry[1].set_result(f)

    def _dispatch_loop(self) -> None:
        while True:
            with self._events_cv:
                while not self._events and not self._closed:
                    self._events_cv.wait(0.5)
                if self._closed and not self._events:
                    return
                ev = self._events.popleft()
            for fn in list(self._subscribers):
                try:
                    fn(ev)
                except Exception:
                    log.exception("device event subscriber failed")
