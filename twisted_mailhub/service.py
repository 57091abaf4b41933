"""
Settings to running services: what ``twistd mailhub`` and embedders call.

L{make_service} opens the store, builds the L{Portal} (one
L{MailhubRealm} and one chain of password checkers), and returns a
L{MailhubService}: a L{MultiService} with one child per listening endpoint,
which closes the store when it stops.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Callable

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service
from twisted.cred.portal import Portal
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_mailhub.backends.registry import open_backend
from twisted_mailhub.config import MailhubOptions, MailhubSettings
from twisted_mailhub.interfaces import IBackend, ISummarizingBackend
from twisted_mailhub.watch import IWatchableBackend

log = Logger()


def _as_deferred(result: Any) -> defer.Deferred:
    """Wrap the value, Deferred or coroutine that an asynchronous method returned."""
    if isinstance(result, defer.Deferred):
        return result
    if inspect.isawaitable(result):
        return defer.ensureDeferred(result)
    return defer.succeed(result)


def describe_address(address: Any) -> str:
    """C{host:port} (C{[host]:port} for IPv6) for IP addresses, the path for UNIX sockets."""
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if host is None or port is None:
        name = getattr(address, "name", None)
        return name.decode(errors="replace") if isinstance(name, bytes) else str(name or address)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@implementer(IStreamServerEndpoint)
class ReportingEndpoint:
    """
    An endpoint that logs the address it listens on and remembers the port,
    so that C{tcp:0} listeners can be found (by tests and embedders).
    """

    def __init__(self, endpoint: IStreamServerEndpoint, label: str,
                 ports: list[tuple[str, IListeningPort]]) -> None:
        self.endpoint = endpoint
        self.label = label
        self._ports = ports

    def listen(self, factory: Any) -> defer.Deferred:
        """Listen with the wrapped endpoint; log and record the port on success."""
        d = self.endpoint.listen(factory)
        d.addCallback(self._listening)
        return d

    def _listening(self, port: IListeningPort) -> IListeningPort:
        address = describe_address(port.getHost())
        log.info("{label} listening on {address}", label=self.label, address=address)
        self._ports.append((self.label, port))
        return port


class MailhubService(MultiService):
    """
    The server: one child service per listener, sharing one backend.

    C{ports} lists C{(label, port)} for every listener once it is listening
    (labels are C{"IMAP"} or C{"IMAPS"}).  Stopping the service stops the
    listeners, then closes the backend.
    """

    def __init__(self, backend: IBackend, portal: Portal, *, store: str = "",
                 exit_if_unusable: bool = False) -> None:
        super().__init__()
        self.backend = backend
        self.portal = portal
        self.ports: list[tuple[str, IListeningPort]] = []
        # Protocol factories whose clients get a BYE when the server stops.
        self.factories: list[Any] = []
        self.store = store
        self.exit_if_unusable = exit_if_unusable
        #: Fires once the store proved usable and the listeners started; fails
        #: with L{StoreUnusable} otherwise.  Set by L{startService}.
        self.started: defer.Deferred | None = None
        self._listening = False

    def startService(self) -> None:
        """
        Check the store (a backend's C{ready()}, when it has one: the database
        is reachable and its schema one this code understands), then start
        the listeners, so an unusable store shows at start-up rather than at
        the first login.  A store whose answer is already known is checked
        synchronously, and L{StoreUnusable} (or a listener's error) raised.
        """
        Service.startService(self)
        check = getattr(self.backend, "ready", None)
        outcome: list[Any] = []
        ready = _as_deferred(check()) if check is not None else defer.succeed(None)
        ready.addBoth(outcome.append)
        if outcome:
            if isinstance(outcome[0], Failure):
                self._unusable(outcome[0])
            self._start_listeners()
            self.started = defer.succeed(None)
            return
        ready.addCallback(lambda _: self._checked_later(outcome[-1]))
        self.started = ready.addErrback(self._failed_later)

    def privilegedStartService(self) -> None:
        """
        twistd binds the ports here, before dropping privileges (ports below
        1024); the store is checked in L{startService}, which follows.
        """
        super().privilegedStartService()
        self._listening = True

    def _checked_later(self, result: Any) -> None:
        if isinstance(result, Failure):
            self._unusable(result)
        self._start_listeners()

    def _failed_later(self, failure: Failure) -> Failure:
        if self.exit_if_unusable:
            message = str(failure.value)
            if not failure.check(StoreUnusable):
                message = f"mailhub: cannot start: {message}"
                log.failure("Cannot start", failure)
            _exit_with_error(message)
        return failure

    def _unusable(self, failure: Failure) -> None:
        reason = _first_line(failure.value)
        cause = failure.value.__cause__ or failure.value.__context__
        if cause is not None and _first_line(cause) not in reason:
            # The store's own error says why (connection refused, ...).
            reason += f" ({_first_line(cause)})"
        store = f" {hide_password(self.store)}" if self.store else ""
        message = f"mailhub: the mail store{store} is unusable: {reason}"
        log.critical(message)
        if self.exit_if_unusable and not self._reactor_running():
            raise SystemExit(message)
        raise StoreUnusable(message)

    def _start_listeners(self) -> None:
        self._listening = True
        for child in self:
            child.startService()

    @staticmethod
    def _reactor_running() -> bool:
        from twisted.internet import reactor

        return bool(getattr(reactor, "running", False))

    def listen(self, description: str, factory: Any, label: str, reactor: Any = None) -> None:
        """
        Add a child service listening on the endpoint string C{description}.

        A port that cannot be bound makes L{startService} raise (so that
        ``twistd`` exits with the error instead of running deaf).
        """
        if reactor is None:
            from twisted.internet import reactor
        endpoint = ReportingEndpoint(serverFromString(reactor, description), label, self.ports)
        child = StreamServerEndpointService(endpoint, factory)
        child._raiseSynchronously = True
        child.setServiceParent(self)

    def stopService(self) -> defer.Deferred:
        """Stop every listener, then close the backend."""
        if self._listening:
            d = defer.maybeDeferred(super().stopService)
        else:
            d = defer.maybeDeferred(Service.stopService, self)
        for factory in self.factories:
            factory.disconnect_all("Server shutting down")

        def close(passthrough: Any) -> defer.Deferred:
            del self.ports[:]
            closed = defer.maybeDeferred(lambda: _as_deferred(self.backend.close()))
            closed.addErrback(lambda f: log.failure("Closing the store failed", f))
            closed.addCallback(lambda _: passthrough)
            return closed

        d.addBoth(close)
        return d


class StoreUnusable(Exception):
    """The mail store cannot be used (unreachable, or a schema too new)."""


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _exit_with_error(message: str) -> None:
    """
    For twistd, once the reactor runs: print C{message} as the one line on
    standard error, stop, and make the process exit with status 1.
    """
    import atexit
    import os
    import sys

    from twisted.internet import reactor

    print(message, file=sys.__stderr__, flush=True)

    def exit_status() -> None:
        # twistd has removed its pid file and closed its log by now, and
        # has no exit status of its own to give.
        for stream in (sys.__stdout__, sys.__stderr__):
            if stream is not None:
                stream.flush()
        os._exit(1)

    atexit.register(exit_status)
    if reactor.running:
        reactor.stop()


def hide_password(url: str) -> str:
    """C{url} with the password of any C{user:password@} part replaced by C{***}."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def open_configured_backend(settings: MailhubSettings) -> IBackend:
    """
    Open the backend C{settings} name, as the server uses it: the store of
    C{settings.store} with what the settings add around it.  The server, the
    LMTP listener and the ``mailhub`` subcommands all open their store here,
    so that each applies the same rules to it: the quotas of
    C{settings.quota} and of the store's own per-user limits
    (L{twisted_mailhub.quota.proxy.QuotaBackend}) among them.
    """
    from twisted_mailhub.quota import quota_backend

    backend = open_backend(settings.store)
    give_summarizer(backend)
    if IWatchableBackend.providedBy(backend):
        # Other processes may share the store: their changes are announced
        # here, and (PostgreSQL) ours to them, commands' included.
        backend.watch_changes()
    return quota_backend(backend, settings.quota)


def give_summarizer(backend: IBackend) -> None:
    """
    Have C{backend} keep the summaries FETCH, SORT and THREAD use
    (L{twisted_mailhub.imap.summaries}) from the moment it stores each
    message, whoever stores it (IMAP, LMTP, ``mailhub deliver``, an
    import), when it can (L{ISummarizingBackend}); otherwise they are kept
    after the first command that needed them, as before.
    """
    from twisted_mailhub.imap.summaries import FetchSummarizer

    summarizing = ISummarizingBackend(backend, None)
    if summarizing is not None:
        summarizing.use_summarizer(FetchSummarizer())


def make_portal(backend: IBackend, settings: MailhubSettings) -> Portal:
    """
    The L{Portal} for C{settings}: L{MailhubRealm} over C{backend} and one
    L{ChainedChecker} trying, in order, the trial users (``--user``), the
    password file (``--passwd``) and the store's own users table when it has
    one (the SQL store's C{lookup_password}).
    """
    from twisted_mailhub.auth.checkers import (
        ChainedChecker,
        HashedPasswordChecker,
        InMemoryChecker,
    )
    from twisted_mailhub.auth.passwd import PasswdFileChecker
    from twisted_mailhub.auth.realm import MailhubRealm

    checkers = []
    if settings.users:
        checkers.append(InMemoryChecker(dict(settings.users)))
    if settings.passwd:
        checkers.append(PasswdFileChecker(settings.passwd))
    lookup: Callable[[str], Any] | None = getattr(backend, "lookup_password", None)
    if lookup is not None:
        checkers.append(HashedPasswordChecker(lookup))
    if not checkers:
        log.warn(
            "No user can log in: give --user NAME:PASSWORD, --passwd FILE, "
            "or use an SQL store with users added by 'mailhub adduser'."
        )
    return Portal(MailhubRealm(backend), [ChainedChecker(checkers)])


def make_service(options: MailhubOptions | MailhubSettings, *, reactor: Any = None,
                 backend: IBackend | None = None) -> MailhubService:
    """
    Build the server from parsed L{MailhubOptions} or from L{MailhubSettings}.

    The store named by the settings is opened now (pass C{backend} to use an
    already open one instead); nothing listens until the returned service
    is started.  C{reactor} defaults to the global reactor.
    """
    from twisted_mailhub.imap.protocol import IMAPServerFactory

    settings = options.settings if isinstance(options, MailhubOptions) else options
    if backend is None:
        backend = open_configured_backend(settings)
    else:
        give_summarizer(backend)
        if IWatchableBackend.providedBy(backend):
            # Other processes may share the store: announce their changes too.
            backend.watch_changes()
    portal = make_portal(backend, settings)
    # As a twistd plugin (given MailhubOptions), an unusable store ends the
    # process with a one-line message; embedders get StoreUnusable.
    server = MailhubService(backend, portal, store=settings.store,
                            exit_if_unusable=isinstance(options, MailhubOptions))

    tls_options = None
    if settings.tls_enabled:
        from twisted_mailhub.auth.tls import make_tls_options

        tls_options = make_tls_options(settings.tls_cert, settings.tls_key)

    from twisted.protocols.tls import TLSMemoryBIOFactory

    from twisted_mailhub.auth.throttle import FailureThrottle
    from twisted_mailhub.pop3 import POP3ServerFactory

    if reactor is None:
        from twisted.internet import reactor as clock
    else:
        clock = reactor
    policy = settings.policy()
    # One failure record for both protocols: guessing over POP3 slows IMAP too.
    throttle = FailureThrottle(clock, policy.auth_failure_delay, policy.auth_failure_delay_max)
    factory = IMAPServerFactory(
        portal, policy=policy, tls_options=tls_options, throttle=throttle, clock=clock
    )
    server.factories.append(factory)
    for description in settings.imap:
        server.listen(description, factory, "IMAP", reactor)
    for description in settings.imaps:
        server.listen(description, TLSMemoryBIOFactory(tls_options, False, factory), "IMAPS",
                      reactor)
    if settings.pop3 or settings.pop3s:
        pop3 = POP3ServerFactory(
            portal, policy=policy, tls_options=tls_options,
            mark_seen_on_retr=settings.pop3_retr_seen, throttle=throttle, clock=clock,
        )
        server.factories.append(pop3)
        for description in settings.pop3:
            server.listen(description, pop3, "POP3", reactor)
        for description in settings.pop3s:
            server.listen(description, TLSMemoryBIOFactory(tls_options, False, pop3), "POP3S",
                          reactor)
    if settings.lmtp:
        from twisted_mailhub.auth.directory import directory_for
        from twisted_mailhub.delivery import LocalDelivery
        from twisted_mailhub.lmtp import LMTPServerFactory

        # The backend the IMAP sessions use: their IDLE hears of the delivery at once.
        delivery = LocalDelivery(backend, directory_for(settings, backend),
                                 detail_separators=settings.lmtp_detail_separator)
        lmtp = LMTPServerFactory(delivery, policy=policy, clock=clock)
        server.factories.append(lmtp)
        for description in settings.lmtp:
            server.listen(description, lmtp, "LMTP", reactor)

    if settings.metrics:
        from twisted_mailhub.metrics import add_metrics

        add_metrics(server, settings.metrics, settings, reactor)

    log.info("Mail store: {store}", store=hide_password(settings.store))
    if settings.users:
        log.info(
            "Trial users (kept in memory): {names}", names=", ".join(sorted(settings.users))
        )
    if settings.allow_plaintext:
        log.warn("Passwords are accepted without TLS from any address (--allow-plaintext)")
    return server
