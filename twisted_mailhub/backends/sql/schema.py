"""
The tables of the SQL backend (SQLAlchemy Core).

Layout, in short (docs/backends-sql.md has the long version):

  - C{users}: one row per account, with the opaque password hash, the
    counter UIDVALIDITY values are drawn from, and the account's own quota
    limits (L{QUOTA_COLUMNS});
  - C{mailboxes}: one row per name in a user's tree, holding its
    C{object_id} (the identity, schema version 5) and the counters
    (UIDNEXT, HIGHESTMODSEQ, the \\Recent floor, and the message, unseen,
    deleted and \\Recent counts and total size STATUS reports) so they
    change in the same transaction as the messages;
  - C{messages}: one row per message in a mailbox: flags as booleans,
    MODSEQ, INTERNALDATE, size, the C{content_id} it shares with its
    copies, and (schema version 5) its C{object_id}, which its copies
    share too, and C{saved_us}, when it came into this mailbox;
    C{keywords} holds its non-system flags;
  - C{contents}: the parsed structure and the header fields SEARCH uses,
    reference counted by C{messages}; C{chunks} holds the raw bytes in
    slices of L{CHUNK_SIZE};
  - C{content_text}: the decoded text of each content for BODY and TEXT,
    with a substring index (created by L{twisted_mailhub.backends.sql.fts},
    not part of L{metadata}: its form depends on the database);
  - C{expunged}: UIDs removed from a mailbox with the MODSEQ of their
    expunge (QRESYNC);
  - C{schema_version}: one row, the version of this layout.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

#: The layout version this code writes; see L{twisted_mailhub.backends.sql.migrate}.
SCHEMA_VERSION = 6

#: Bytes per row of C{chunks}.  A read of a range touches only its chunks.
CHUNK_SIZE = 256 * 1024

#: The system flags and the C{messages} column holding each.
FLAG_COLUMNS = {
    "\\Seen": "seen",
    "\\Answered": "answered",
    "\\Flagged": "flagged",
    "\\Deleted": "deleted",
    "\\Draft": "draft",
}

#: Header fields copied into C{contents} columns for SEARCH, by column name.
HEADER_COLUMNS = {
    "from": "h_from",
    "to": "h_to",
    "cc": "h_cc",
    "bcc": "h_bcc",
    "subject": "h_subject",
    "message-id": "h_message_id",
}

#: The C{users} columns holding an account's own limit of each quota
#: resource (schema version 4): NULL follows the server's default,
#: L{NO_LIMIT} means unlimited, any other value is the limit.
QUOTA_COLUMNS = {"storage": "quota_storage", "messages": "quota_messages"}
NO_LIMIT = -1

#: The C{mailboxes} columns counting its messages: all of them, those
#: without \\Seen, those with \\Deleted, those with uid >= recent_floor, and
#: the sum of their sizes.
COUNTER_COLUMNS = ("message_count", "unseen_count", "deleted_count", "recent_count", "total_size")

metadata = MetaData()

# Ids are 64-bit on servers; SQLite only makes INTEGER PRIMARY KEY an alias
# of its rowid, hence the variant.
Id = BigInteger().with_variant(Integer(), "sqlite")

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("username", String(255), nullable=False, unique=True),
    Column("password_hash", Text, nullable=True),
    Column("next_uidvalidity", BigInteger, nullable=False),
    *(Column(column, BigInteger, nullable=True) for column in QUOTA_COLUMNS.values()),
)

mailboxes = Table(
    "mailboxes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", ForeignKey("users.id"), nullable=False),
    Column("name", String(1000), nullable=False),
    Column("selectable", Boolean, nullable=False, default=True),
    # Space-separated RFC 6154 attributes, e.g. "\\Sent \\Archive".
    Column("special_use", Text, nullable=False, default=""),
    Column("uidvalidity", BigInteger, nullable=False),
    Column("uidnext", BigInteger, nullable=False, default=1),
    Column("highestmodseq", BigInteger, nullable=False, default=1),
    # Messages with uid >= recent_floor are \Recent and not yet claimed.
    Column("recent_floor", BigInteger, nullable=False, default=1),
    # What STATUS reports, kept by every writer in the transaction that
    # changes the messages (schema version 2).
    *(Column(column, BigInteger, nullable=False, default=0, server_default="0")
      for column in COUNTER_COLUMNS),
    # The mailbox's identity (MailboxStatus.identity), kept across renames
    # (schema version 5).
    Column("object_id", String(64), nullable=False, server_default=""),
    # The URLAUTH mailbox access key (IAccessKeys), made on first use
    # (schema version 6).
    Column("access_key", LargeBinary, nullable=True),
    UniqueConstraint("user_id", "name", name="uq_mailboxes_user_name"),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("user_id", ForeignKey("users.id"), primary_key=True),
    Column("name", String(1000), primary_key=True),
)

contents = Table(
    "contents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("size", BigInteger, nullable=False),
    Column("refcount", Integer, nullable=False),
    Column("structure", Text, nullable=False),
    # Lower-cased decoded values joined by "\n"; NULL when the field is absent.
    *(Column(column, Text, nullable=True) for column in HEADER_COLUMNS.values()),
    # Calendar day (proleptic ordinal) of the Date: field in its own zone.
    Column("sent_day", Integer, nullable=True),
)

chunks = Table(
    "chunks",
    metadata,
    Column("content_id", ForeignKey("contents.id"), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("mailbox_id", ForeignKey("mailboxes.id"), nullable=False),
    Column("uid", BigInteger, nullable=False),
    Column("content_id", ForeignKey("contents.id"), nullable=False),
    *(Column(column, Boolean, nullable=False, default=False) for column in FLAG_COLUMNS.values()),
    Column("modseq", BigInteger, nullable=False),
    # INTERNALDATE: microseconds since the epoch (UTC) and the zone offset
    # in seconds it was given in; internal_day is the calendar day in that
    # zone (proleptic ordinal), what BEFORE/ON/SINCE compare.
    Column("internal_us", BigInteger, nullable=False),
    Column("internal_tz", Integer, nullable=False),
    Column("internal_day", Integer, nullable=False),
    Column("size", BigInteger, nullable=False),
    # The message's identity (MessageMeta.identity), the same in its copies,
    # and when it was saved into this mailbox, microseconds since the epoch
    # (UTC): schema version 5.
    Column("object_id", String(64), nullable=False, server_default=""),
    Column("saved_us", BigInteger, nullable=False, server_default="0"),
    UniqueConstraint("mailbox_id", "uid", name="uq_messages_mailbox_uid"),
)
Index("ix_messages_mailbox_seen", messages.c.mailbox_id, messages.c.seen)
Index("ix_messages_mailbox_deleted", messages.c.mailbox_id, messages.c.deleted)
Index("ix_messages_mailbox_flagged", messages.c.mailbox_id, messages.c.flagged)
Index("ix_messages_mailbox_modseq", messages.c.mailbox_id, messages.c.modseq)
Index("ix_messages_mailbox_day", messages.c.mailbox_id, messages.c.internal_day)
Index("ix_messages_content", messages.c.content_id)
Index("ix_messages_mailbox_object", messages.c.mailbox_id, messages.c.object_id)

keywords = Table(
    "keywords",
    metadata,
    Column("message_id", ForeignKey("messages.id"), primary_key=True),
    Column("keyword", String(255), primary_key=True),
)
Index("ix_keywords_keyword", keywords.c.keyword)

expunged = Table(
    "expunged",
    metadata,
    Column("mailbox_id", ForeignKey("mailboxes.id"), primary_key=True),
    Column("uid", BigInteger, primary_key=True, autoincrement=False),
    Column("modseq", BigInteger, nullable=False),
)
Index("ix_expunged_mailbox_modseq", expunged.c.mailbox_id, expunged.c.modseq)

# Values the server derives once from a content and keeps with it (the
# protocol layer's rendered ENVELOPE and BODYSTRUCTURE, for instance):
# opaque named bytes, shared by the content's copies and deleted with it.
summaries = Table(
    "summaries",
    metadata,
    Column("content_id", ForeignKey("contents.id"), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

#: Tables holding message content; status/uids/flags never touch these.
CONTENT_TABLES = ("contents", "chunks")
