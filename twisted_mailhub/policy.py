"""
What an admin tunes: limits and security policy shared by IMAP and POP3.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServerPolicy:
    """
    Limits against hostile or broken clients, and the plaintext policy.

    ``allow_plaintext_auth`` is C{"loopback"} (the default: passwords may be
    sent without TLS only on a loopback connection), C{True} (anywhere; the
    admin's explicit choice) or C{False} (never).
    """

    max_line_length: int = 65536
    max_literal_size: int = 64 * 2**20
    max_literal_size_unauthenticated: int = 8192
    allow_plaintext_auth: bool | str = "loopback"
    # The autologout timers (RFC 9051 section 5.4): seconds a connection may
    # stay silent before logging in, and once logged in (at least 30
    # minutes there).
    login_timeout: float = 60.0
    idle_timeout: float = 30 * 60.0
    # RFC 2177: how long a client may stay in IMAP IDLE without a word
    # before it is logged out; the server must allow at least 29 minutes
    # (None: no limit).
    idle_command_timeout: float | None = 30 * 60.0
    # SO_KEEPALIVE on accepted TCP connections, so that the connections of
    # clients that vanished (a laptop closed while idling) are found dead.
    tcp_keepalive: bool = True
    max_bad_commands: int = 20
    max_connections_per_address: int = 50
    max_connections_per_user: int = 50
    # Base delay after a failed authentication, doubled per further failure
    # from the same address, up to the maximum.
    auth_failure_delay: float = 1.0
    auth_failure_delay_max: float = 30.0
    # IMAP UNAUTHENTICATE (RFC 8437), which lets one connection log in as
    # several users in turn; section 8 asks for a way to turn it off.
    unauthenticate: bool = True
    server_name: str = "twisted_mailhub"
    # RFC 7888: LITERAL+ (non-synchronizing literals of any size within
    # the literal limits) or, when true, LITERAL- instead -- never both
    # (section 5): such literals only up to 4096 bytes, larger ones
    # refused with BAD [TOOBIG].
    literal_minus: bool = False
    # RFC 9738: the most messages one SEARCH, FETCH, STORE, COPY, MOVE,
    # APPEND or UID EXPUNGE processes, advertised as MESSAGELIMIT=<n>;
    # None (the default) for no limit.  Section 4.2: a limit abandons
    # clients that do not know the extension on large mailboxes, so it is
    # the admin's choice; the RFC says it SHOULD NOT be lower than 1000.
    message_limit: int | None = None
    # RFC 6855: offer UTF8=ACCEPT.  Its section 4 then obliges the server
    # to refuse an APPEND with 8-bit header octets from a client that did
    # not enable it, which old mail copied by such clients (mbsync,
    # offlineimap, mutt saving a message) often has; false takes such
    # messages as they come, and offers no UTF8=ACCEPT.
    utf8_accept: bool = True
    # RFC 9585: seconds between the ``* OK [INPROGRESS ...]`` responses of
    # a FETCH, STORE, SEARCH, COPY, MOVE, SORT or THREAD still running (the
    # first one after that long too), so clients with a response timeout
    # wait and can show progress; None sends none (--progress-interval).
    progress_interval: float | None = 10.0
    # URLAUTH (RFC 4467 section 3): the users that are message submission
    # servers, who may use URLs of a "submit+<user>" access identifier.
    urlauth_submitters: frozenset[str] = frozenset()
