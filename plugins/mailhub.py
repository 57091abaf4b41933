"""
The ``mailhub`` plugin for ``twistd``: ``twistd -n mailhub --help``.

This file is installed into the ``twisted/plugins`` directory, where twistd
looks for service makers.  It stays small and imports the server lazily.
"""

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from zope.interface import implementer

from twisted_mailhub.config import MailhubOptions


@implementer(IServiceMaker, IPlugin)
class MailhubServiceMaker:
    """Makes the IMAP server service from L{MailhubOptions}."""

    tapname = "mailhub"
    description = "An IMAP4 mail server (twisted_mailhub)."
    options = MailhubOptions

    def makeService(self, options: MailhubOptions):
        """Open the store and return the server's MultiService."""
        from twisted_mailhub.service import make_service

        return make_service(options)


serviceMaker = MailhubServiceMaker()
