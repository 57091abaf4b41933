"""
The seams of twisted_mailhub.

Every method documented as *asynchronous* returns an awaitable: a
L{Deferred} or a coroutine (implementations are usually ``async def``).
Callers ``await`` it from a coroutine driven by ``Deferred.fromCoroutine``.
Anything that may block (SQL, disk) must happen off the reactor thread
inside these methods; the protocol layers never call a blocking method.

Types crossing these interfaces are the plain values of
L{twisted_mailhub.model}: names and flags are ``str``, content is ``bytes``.

Optional capabilities (a fast SEARCH pushed down to SQL, a COPY that does not
duplicate bytes) are separate interfaces found by adaptation, e.g.
``ISearchableMailbox(mailbox, None)``; the generic implementation is used
when a mailbox does not provide one.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IMessage(Interface):
    """
    One message of a mailbox, as read by FETCH.

    Obtained from L{IMailbox.open_message}; valid while the message exists.
    """

    meta = Attribute("The L{MessageMeta} of this message when it was opened.")

    def structure():
        """
        Asynchronous.  The parsed MIME structure of the message
        (L{twisted_mailhub.mime.structure.MessageStructure}).

        Backends that parse at APPEND time store it and return it without
        reading the content.
        """

    def read(offset=0, length=None):
        """
        Asynchronous.  Return up to C{length} bytes of the raw RFC 5322
        message starting at C{offset} (everything from C{offset} when
        C{length} is C{None}).  Large bodies are served in ranges with this.
        """


class IMailboxListener(Interface):
    """Something (usually an IMAP session) that wants a mailbox's changes."""

    def mailbox_event(event):
        """
        Called on the reactor thread with one of the event values of
        L{twisted_mailhub.model} (L{MessagesAdded}, L{FlagsChanged},
        L{MessagesExpunged}, L{MailboxRemoved}, L{AccessKeyReset}); a
        listener on a user's L{TreeKey} gets that tree's
        L{MailboxCreated}, L{MailboxDeleted}, L{MailboxRenamed} and
        L{SubscriptionChanged} instead.  Must not raise or block.
        """


class INotifier(Interface):
    """
    Delivers mailbox events to listeners, possibly across processes.

    Keys are the opaque L{IMailbox.key} values, and the
    L{twisted_mailhub.model.TreeKey} of each user, under which an
    L{IMailStore} publishes the changes of its tree of mailboxes and
    subscriptions (told to the listeners of this process only).
    """

    def subscribe(key, listener):
        """Start delivering events for C{key} to the L{IMailboxListener}."""

    def unsubscribe(key, listener):
        """Stop delivering; unknown listeners are ignored."""

    def publish(key, event):
        """Deliver C{event} to every listener of C{key}, on the reactor thread."""


class IMailbox(Interface):
    """
    One mailbox: an ordered set of messages with strictly ascending UIDs.

    Guarantees every implementation must give (checked by
    L{twisted_mailhub.testing}):

      - UIDs are assigned in strictly ascending order and never reused
        within one UIDVALIDITY.
      - UIDVALIDITY is stable across restarts; it changes only when a
        mailbox of that name is deleted and created again (or renamed away
        and another created in its place).
      - Every change of a message's flags, and every expunge, gets a new
        MODSEQ greater than any before it in this mailbox; HIGHESTMODSEQ is
        the largest MODSEQ assigned.  Expunged UIDs are remembered with the
        MODSEQ of their expunge (for QRESYNC).
      - Each write publishes an event on the store's L{INotifier}.
      - Every L{MessageMeta} carries the message's C{identity} and C{saved}
        date, and every L{MailboxStatus} the mailbox's C{identity}
        (L{twisted_mailhub.model}): an identity is given once and kept for
        good -- across restarts, renames (a mailbox's) and copies and
        moves (a message's: L{ICopyableMailbox}, L{IMoveableMailbox} and
        an L{AppendRequest} with C{identity} keep it) -- and never given
        to another mailbox or another message.  C{saved} is set by each
        write that puts a message into the mailbox (append, copy, move)
        and stays while the message does.
    """

    name = Attribute("The full mailbox name (str).")
    key = Attribute("An opaque hashable identity, stable across renames.")
    uidvalidity = Attribute("The UIDVALIDITY value (int, 1 to 2**32-1).")
    read_only = Attribute("True if this session may not change the mailbox.")

    def status():
        """Asynchronous.  A L{MailboxStatus}; must not read every message."""

    def uids():
        """Asynchronous.  All UIDs in ascending order (a list of int)."""

    def metadata(uids):
        """
        Asynchronous.  L{MessageMeta} for each of C{uids} that still
        exists, in ascending UID order.
        """

    def open_message(uid):
        """
        Asynchronous.  The L{IMessage} with this UID.  Raises
        L{MessageExpunged} if it no longer exists.
        """

    def append(requests, origin=None):
        """
        Asynchronous.  Append the L{AppendRequest}s atomically (all or none)
        and return their new L{MessageMeta}s.  When this fires the messages
        are durable.
        """

    def store_flags(uids, mode, flags, unchangedsince=None, origin=None):
        """
        Asynchronous.  Change flags of the existing messages among C{uids}.
        C{mode} is C{"set"}, C{"add"} or C{"remove"}; C{flags} a set of
        str.  Returns a L{FlagUpdate}: metas of messages whose flags actually
        changed (each with its new MODSEQ), and, when C{unchangedsince} is
        given, the UIDs whose MODSEQ was greater (left unchanged).
        """

    def expunge(uids=None, origin=None):
        """
        Asynchronous.  Remove the messages flagged \\Deleted (only those
        among C{uids} when given) and return their UIDs, ascending.
        """

    def claim_recent(claim=True):
        """
        Asynchronous.  Return the UIDs that are \\Recent for the caller
        (RFC 3501 section 2.3.2): those no session has been told of yet.
        With C{claim} true they stop being recent for every other session.
        """

    def changes_since(modseq):
        """
        Asynchronous.  C{(metas, expunged_uids)}: metas of messages whose
        MODSEQ is greater than C{modseq}, and UIDs expunged after it.

        An expunge takes a MODSEQ of its own (the mailbox's HIGHESTMODSEQ
        after it, as L{MessagesExpunged} says); C{expunged_uids} are the
        UIDs whose expunge's MODSEQ is greater than C{modseq}, ascending.
        A store remembers every expunge for as long as the UIDVALIDITY
        stays (QRESYNC, RFC 7162 section 3.2, answers from this), so the
        list is complete.  A store that forgets old expunges provides
        L{IExpungeHistory}: C{expunged_uids} is then complete only for a
        C{modseq} at or above what it reports, and a subset (the expunges
        still remembered) below that.
        """

    def subscribe(listener):
        """Deliver this mailbox's events to the L{IMailboxListener}."""

    def unsubscribe(listener):
        """Stop delivering events to C{listener}."""


class IExpungeHistory(IMailbox):
    """
    Optional: a mailbox that forgets old expunges (RFC 7162 section 5.3
    lets a server keep a bounded queue of them).  The Maildir store forgets
    those made before its state file was lost; a mailbox without this
    interface remembers them all.
    """

    def expunges_remembered_after():
        """
        Asynchronous.  The lowest MODSEQ C{m} such that every expunge with
        a MODSEQ greater than C{m} is still remembered: for any C{modseq}
        at or above C{m}, the C{expunged_uids} of L{IMailbox.changes_since}
        are complete.  Asked about an older C{modseq}, the server reports
        every UID of the client's set that does not exist now instead (RFC
        7162 section 3.2.6, the note on C{minmodseq}).
        """


class ISearchableMailbox(IMailbox):
    """Optional: a mailbox that can evaluate (part of) SEARCH itself."""

    def search(key, context):
        """
        Asynchronous.  Return the ascending list of UIDs matching the search
        key (L{twisted_mailhub.criteria}), or C{None} to let the
        generic evaluator handle it.  C{context} is a
        L{twisted_mailhub.imap.search.SearchContext} (sequence map, recent
        UIDs).
        """


class ITextIndexedMailbox(IMailbox):
    """
    Optional: a mailbox with a full-text index, which answers SEARCH BODY
    and TEXT for the generic evaluator (the rest of the key is evaluated
    there, on metadata and headers, as usual).
    """

    def text_matches(terms):
        """
        Asynchronous.  C{terms} is a list of C{(field, needle)}, C{field}
        being C{"body"} or C{"text"}; return, for each term in order, the
        set of UIDs of the mailbox's messages whose decoded body (or header
        or body) contains C{needle} without regard to case, exactly as the
        generic evaluator decides it (RFC 3501 section 6.4.4), or C{None}
        to let the evaluator read the messages.
        """


class ICopyableMailbox(IMailbox):
    """Optional: a mailbox that can copy into another of the same store fast."""

    def copy_to(uids, destination, origin=None):
        """
        Asynchronous.  Copy the existing messages among C{uids} into
        C{destination} atomically, keeping flags, INTERNALDATE and identity
        (the copies get their own save date); return
        C{[(source_uid, new_uid), ...]}, or C{None} if C{destination} is not
        one this mailbox can copy into directly.
        """


class IMoveableMailbox(IMailbox):
    """
    Optional: a mailbox that can move messages into another of the same
    store as one change (RFC 6851 section 3.3: the intermediate states of
    copy, flag and expunge never occur).
    """

    def move_to(uids, destination, origin=None):
        """
        Asynchronous.  Move the existing messages among C{uids} into
        C{destination} atomically: they leave this mailbox and arrive in
        C{destination} together, with new UIDs and MODSEQs there, keeping
        their flags (a \\Deleted they had stays; none is added), keywords,
        INTERNALDATE and identity (with a new save date).  This mailbox remembers the removed UIDs as
        expunged (QRESYNC) and publishes only L{MessagesExpunged};
        C{destination} publishes L{MessagesAdded}.  C{destination} may be
        this very mailbox.

        Returns C{[(source_uid, new_uid), ...]} in ascending source order,
        or C{None} if C{destination} is not one this mailbox can move into
        directly (the caller then copies and uses L{IRemovableMailbox}).
        """


class IRemovableMailbox(IMailbox):
    """
    Optional: a mailbox that can remove messages whatever their flags, as
    the second half of a MOVE that could not be done by L{IMoveableMailbox}.
    """

    def remove(uids, origin=None):
        """
        Asynchronous.  Remove the existing messages among C{uids} as
        L{IMailbox.expunge} would if they were flagged \\Deleted, without
        changing or announcing their flags first: the only event published
        is L{MessagesExpunged}.  Returns the removed UIDs, ascending.
        """


class IRestorableMailbox(IMailbox):
    """
    Optional: a mailbox that can take the UIDVALIDITY and UIDs another
    store gave its messages, so that a migrated mailbox looks unchanged to
    clients that cached it (RFC 3501 section 2.3.1.1).

    Its L{IMailbox.append} honours L{AppendRequest.uid}: a request carrying
    one gets that UID, which must be at least UIDNEXT when the request's
    turn comes (above every UID used so far, earlier requests of the same
    call included), else the whole call fails with L{IdentityConflict}.
    Requests without one get the next UID as usual.
    """

    def restore_identity(uidvalidity, uidnext=1):
        """
        Asynchronous.  Give this mailbox the UIDVALIDITY C{uidvalidity}
        and a UIDNEXT of at least C{uidnext}.

        A different UIDVALIDITY is taken only while the mailbox holds no
        message and never did (UIDNEXT then becomes C{uidnext}; sessions
        that selected it are told it was removed), else
        L{IdentityConflict}.  With the UIDVALIDITY it already has, UIDNEXT
        is raised to C{uidnext} if lower, never lowered: the UIDs skipped
        are never given.  Returns the new L{MailboxStatus}.
        """


class IBulkMessageAccess(IMailbox):
    """Optional: a mailbox that opens many messages in one round trip."""

    def open_messages(uids):
        """
        Asynchronous.  An L{IMessage} for each of C{uids} that still exists,
        in ascending UID order, ready to serve FETCH (a backend may read the
        structures, and the content of small messages, up front).
        """


class IContentAccess(IMailbox):
    """
    Optional: a mailbox that reads the whole content of messages without
    opening them, for readers that want the raw bytes and nothing else
    (FETCH BODY[] of one message, the most common download).
    """

    def contents(uids, limit):
        """
        Asynchronous.  C{{uid: bytes}}: the whole raw content of each message
        among C{uids} that exists and has at most C{limit} octets, read in
        one round trip.  A message left out is larger, or gone: the caller
        opens it (L{IMailbox.open_message}) to find out.
        """


class ISummaryStore(IMailbox):
    """
    Optional: a mailbox that keeps I{summaries} with its messages: small
    values the server derives once from a message's content (the protocol
    layer's rendered ENVELOPE and BODYSTRUCTURE, say), opaque to the store:
    names are short ``str``, values ``bytes``.  A message's summaries live
    and die with its content, and a COPY shares them.
    """

    def summaries(uids, names):
        """
        Asynchronous.  C{{uid: {name: value}}} of the kept summaries among
        C{names} of the existing messages among C{uids}; a message or a name
        with none kept is simply absent.  The name C{header} asks for the
        raw top-level header, which a store may give when it can without
        opening the message (cut from content it holds) and is never given
        to keep.
        """

    def keep_summaries(values):
        """
        Asynchronous.  Keep C{values}, C{{uid: {name: value}}}; a value
        already kept under that name is left as it is (summaries of one
        content never change), and messages gone meanwhile are ignored.
        """


class ISummarizer(Interface):
    """
    What derives a message's summaries (see L{ISummaryStore}) from its
    content, so that a store can keep them from the moment it stores the
    message rather than from the first FETCH that needed them.  The
    protocol layer provides one; the server gives it to the backend
    (L{ISummarizingBackend}).  Names and values are as opaque to the store
    as those of L{ISummaryStore}.
    """

    names = Attribute("The names L{summarize} gives values for: a tuple of C{str}.")

    def summarize(content, structure):
        """
        Synchronous, and safe to call from any thread (a store calls it in
        its worker threads): C{{name: value}} for the message C{content}
        (C{bytes}) whose parsed structure is C{structure}
        (L{twisted_mailhub.mime.parse.parse_message}).  May raise for a
        message it cannot summarize; the store then keeps nothing for it,
        and the values are derived later, as for messages stored before.
        """


class IStatusQuery(Interface):
    """
    Optional, on an L{IMailStore}: the STATUS of a mailbox by name in one
    step, without opening it (STATUS of every folder is what many clients
    send on each sync).
    """

    def mailbox_status(name):
        """
        Asynchronous.  The L{MailboxStatus} of the mailbox C{name}, as
        C{get_mailbox(name)} then C{status()} would give.  Raises
        L{MailboxNotFound}, or L{NotSelectable} for a hierarchy-only name.
        """


class IBulkStatusQuery(IStatusQuery):
    """
    Optional: the STATUS of several mailboxes in one step, for clients that
    send a STATUS per folder without waiting for the answers.
    """

    def mailbox_statuses(names):
        """
        Asynchronous.  C{{name: outcome}} for each of C{names}: the
        L{MailboxStatus} L{mailbox_status} would give, or the exception it
        would raise (returned, not raised).
        """


class IUsageQuery(Interface):
    """
    Optional, on an L{IMailStore}: the totals of the user's whole tree in
    one step (what quotas are measured on; see L{twisted_mailhub.quota}).
    """

    def usage():
        """
        Asynchronous.  C{(messages, octets)}: the number of messages in all
        the user's mailboxes and the sum of their sizes, as adding up the
        L{MailboxStatus} of every mailbox would give.
        """


class IQuotaLimits(Interface):
    """
    Optional, on an L{IBackend}: per-user limits kept with the accounts
    (the SQL store keeps them in its users table).  Resources are
    C{"storage"} (octets) and C{"messages"} (a count); a limit of C{None}
    means none.
    """

    def quota_limits(username):
        """
        Asynchronous.  C{{resource: limit}} for each resource C{username}
        has a limit of its own for; a resource that follows the server's
        default is absent, and so is everything for an unknown user.
        """

    def set_quota_limits(username, limits, reset=()):
        """
        Asynchronous.  Give C{username} the C{limits} (C{{resource: limit
        or None}}) and make the resources in C{reset} follow the default
        again; others are left as they are.  Raises C{LookupError} for an
        unknown user.
        """


class IMailStore(Interface):
    """
    One user's tree of mailboxes (the avatar that authentication yields).

    Names are full ``str`` names with L{delimiter} separating levels.
    ``INBOX`` (any case) always exists, is always spelled ``INBOX`` here, and
    cannot be deleted.
    """

    username = Attribute("The user owning this tree.")
    delimiter = Attribute("The hierarchy delimiter, one character.")

    def list_mailboxes():
        """Asynchronous.  Every L{MailboxInfo} in the tree, in name order."""

    def get_mailbox(name, read_only=False):
        """
        Asynchronous.  The L{IMailbox} called C{name}.  Raises
        L{MailboxNotFound}, or L{NotSelectable} for a hierarchy-only name.
        """

    def create_mailbox(name, special_use=frozenset()):
        """
        Asynchronous.  Create C{name} and any missing superior names
        (RFC 3501 section 6.3.3).  Raises L{MailboxExists}.
        """

    def delete_mailbox(name):
        """
        Asynchronous.  RFC 3501 section 6.3.4: a mailbox with inferiors
        loses its messages and becomes non-selectable; a non-selectable
        mailbox with inferiors cannot be deleted (L{MailboxHasChildren}).
        """

    def rename_mailbox(old, new):
        """
        Asynchronous.  Rename C{old} and all its inferiors, creating
        missing superiors of C{new}.  Renaming INBOX moves its messages into
        a new mailbox C{new} and leaves INBOX empty (section 6.3.5).
        """

    def subscriptions():
        """Asynchronous.  The set of subscribed names (which need not exist)."""

    def subscribe(name):
        """Asynchronous.  Add C{name} to the subscriptions."""

    def unsubscribe(name):
        """Asynchronous.  Remove C{name} from the subscriptions."""


class IBackend(Interface):
    """A mail store for many users; what ``--store`` selects."""

    notifier = Attribute("The L{INotifier} its mailboxes publish on.")

    def open_store(username):
        """
        Asynchronous.  The L{IMailStore} of C{username} (str), created with
        an INBOX on first use.
        """

    def close():
        """Asynchronous.  Release connections and threads."""


class IAccessKeys(IBackend):
    """
    Optional: a backend that keeps a secret key for each mailbox of each
    user, the "mailbox access key" that URLAUTH-authorized URLs are signed
    with (RFC 4467 section 2.2).  A key is random, at least 128 bits, made
    by the backend, never chosen by a client; it belongs to one mailbox of
    one user, goes when the mailbox is deleted and stays across a rename
    and a restart.  The IMAP server offers URLAUTH only on a backend with
    this interface.  Names are full mailbox names as L{IMailStore} spells
    them.
    """

    def access_key(username, mailbox, create=False):
        """
        Asynchronous.  The key (C{bytes}) of the selectable mailbox
        C{mailbox} of C{username}.  With C{create}, a mailbox that has none
        is given one first.  C{None} when there is no such user or mailbox,
        or no key and not C{create}.  Never creates a user.
        """

    def reset_access_key(username, mailbox, origin=None):
        """
        Asynchronous.  Give the mailbox a new key in place of its old one
        (which no longer verifies anything) and return it; raises
        L{twisted_mailhub.errors.MailboxNotFound} if there is no such
        selectable mailbox.  An L{twisted_mailhub.model.AccessKeyReset}
        carrying C{origin} is published under the mailbox's key, so that
        the sessions that have it selected can be told.
        """

    def remove_access_keys(username):
        """Asynchronous.  Remove the keys of every mailbox of C{username}."""


class ISummarizingBackend(IBackend):
    """
    Optional: a backend whose mailboxes keep summaries (L{ISummaryStore})
    and can compute them as messages arrive.
    """

    def use_summarizer(summarizer):
        """
        From now on, compute the summaries of every message this backend
        stores (APPEND, delivery, a COPY that reads and writes the bytes)
        with C{summarizer} (an L{ISummarizer}, or C{None} for none), away
        from the reactor thread where the backend works in threads, and
        keep them with the message: in the same transaction where the
        backend has transactions.  A COPY or MOVE within the backend keeps
        the source's summaries.
        """


class ICheckableBackend(IBackend):
    """
    Optional: a backend that can check its own bookkeeping against the mail
    it holds (counters, UIDNEXT and HIGHESTMODSEQ, indexes, reference
    counts, rows or files nothing refers to) and put right what it finds.
    ``mailhub check`` runs it.
    """

    def check(usernames=None, repair=False):
        """
        Asynchronous.  Check the mailboxes of C{usernames} (a list of str;
        every user, and what belongs to no user, when C{None}) and return a
        L{twisted_mailhub.consistency.CheckReport}.  With C{repair}, each
        problem that can be put right is, and reported as repaired.

        A repair never invents mail: a message whose content is lost is
        removed (and announced as expunged); everything else is made to
        agree with the messages that are there.  Raises C{LookupError} for
        a name in C{usernames} the store has no mail for.
        """
