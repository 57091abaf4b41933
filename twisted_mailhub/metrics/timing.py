"""
Timing the store: thin proxies around a backend, the stores it opens and
the mailboxes they give, which measure each storage call from the call to
the moment its result is ready.

A proxy provides every interface its target provides (so adaptation such
as C{IBulkMessageAccess(mailbox, None)} finds the same fast paths) and
passes any other attribute through.  Only calls made once per command or
per batch are timed: C{open_message}, which FETCH makes once per message on
stores without bulk opening, and the messages themselves are not wrapped,
so FETCH 1:* costs nothing per message.
"""

from __future__ import annotations

import inspect
import time
from typing import Any, Callable

from twisted.internet.defer import Deferred
from zope.interface import directlyProvides, implementer, providedBy

__all__ = ["TimedBackend", "TimedMailbox", "TimedStore", "unwrap", "BACKEND_OPERATIONS",
           "STORE_OPERATIONS", "MAILBOX_OPERATIONS"]

#: Called with C{(operation, seconds, failed)} after every timed call.
Observe = Callable[[str, float, bool], None]

BACKEND_OPERATIONS = frozenset({"open_store"})
STORE_OPERATIONS = frozenset({
    "list_mailboxes", "get_mailbox", "create_mailbox", "delete_mailbox", "rename_mailbox",
    "subscriptions", "subscribe", "unsubscribe", "mailbox_status",
})
MAILBOX_OPERATIONS = frozenset({
    "status", "uids", "metadata", "append", "store_flags", "expunge", "claim_recent",
    "changes_since", "search", "copy_to", "move_to", "remove", "open_messages", "contents",
})


def unwrap(obj: Any) -> Any:
    """The object a timing proxy stands for (C{obj} itself if it is none)."""
    while isinstance(obj, _Timed):
        obj = obj._target
    return obj


@implementer()
class _Timed:
    """Times the methods named in C{operations}; passes everything else through."""

    operations: frozenset[str] = frozenset()

    def __init__(self, target: Any, observe: Observe) -> None:
        self._target = target
        self._observe = observe
        directlyProvides(self, providedBy(target))

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if name not in self.operations or not callable(value):
            return value
        timed = self._timed(name, value)
        # Found here next time without another lookup.
        self.__dict__[name] = timed
        return timed

    def _timed(self, operation: str, method: Callable[..., Any]) -> Callable[..., Any]:
        observe = self._observe
        wrap = self._wrap_result
        prepare = self._prepare_args

        def call(*args: Any, **kwargs: Any) -> Any:
            args, kwargs = prepare(operation, args, kwargs)
            started = time.perf_counter()
            try:
                result = method(*args, **kwargs)
            except BaseException:
                observe(operation, time.perf_counter() - started, True)
                raise
            if isinstance(result, Deferred):
                return result.addCallbacks(
                    lambda value: _done(observe, operation, started, wrap(operation, value)),
                    lambda failure: _failed(observe, operation, started, failure))
            if inspect.isawaitable(result):
                return _awaited(result, observe, operation, started, wrap)
            observe(operation, time.perf_counter() - started, False)
            return wrap(operation, result)

        call.__name__ = operation
        call.__doc__ = getattr(method, "__doc__", None)
        return call

    def _prepare_args(self, operation: str, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        return args, kwargs

    def _wrap_result(self, operation: str, value: Any) -> Any:
        return value

    def __repr__(self) -> str:
        return f"<timed {self._target!r}>"


def _done(observe: Observe, operation: str, started: float, value: Any) -> Any:
    observe(operation, time.perf_counter() - started, False)
    return value


def _failed(observe: Observe, operation: str, started: float, failure: Any) -> Any:
    observe(operation, time.perf_counter() - started, True)
    return failure


async def _awaited(awaitable: Any, observe: Observe, operation: str, started: float,
                   wrap: Callable[[str, Any], Any]) -> Any:
    try:
        value = await awaitable
    except BaseException:
        observe(operation, time.perf_counter() - started, True)
        raise
    observe(operation, time.perf_counter() - started, False)
    return wrap(operation, value)


class TimedMailbox(_Timed):
    """An L{IMailbox} (and whatever else its target provides), timed."""

    operations = MAILBOX_OPERATIONS

    def _prepare_args(self, operation: str, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if operation in ("copy_to", "move_to"):
            # The store recognises its own mailboxes for its fast path.
            args = tuple(unwrap(a) for a in args)
            if "destination" in kwargs:
                kwargs = dict(kwargs, destination=unwrap(kwargs["destination"]))
        return args, kwargs


class TimedStore(_Timed):
    """An L{IMailStore}, timed; the mailboxes it gives are L{TimedMailbox}es."""

    operations = STORE_OPERATIONS

    def _wrap_result(self, operation: str, value: Any) -> Any:
        if operation == "get_mailbox" and value is not None:
            return TimedMailbox(value, self._observe)
        return value


class TimedBackend(_Timed):
    """An L{IBackend}, timed; the stores it opens are L{TimedStore}s."""

    operations = BACKEND_OPERATIONS

    def _wrap_result(self, operation: str, value: Any) -> Any:
        if operation == "open_store" and value is not None:
            return TimedStore(value, self._observe)
        return value
