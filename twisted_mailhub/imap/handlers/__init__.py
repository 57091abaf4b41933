"""
Command handlers: one coroutine per command, C{async def handler(session,
command)}.  A handler returns the text of the tagged OK (optionally with a
response code as C{(text, code)}), or raises L{CommandFailed} /
L{twisted_mailhub.errors.MailhubError} for NO and BAD.
"""

from twisted_mailhub.imap.handlers import (
    auth, basic, connection, mailboxes, messages, quota, sorting, urlauth,
)

HANDLERS = {}
for _module in (basic, auth, connection, mailboxes, messages, quota, sorting, urlauth):
    HANDLERS.update(_module.HANDLERS)
