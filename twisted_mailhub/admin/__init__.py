"""
The admin subcommands of ``mailhub``, run on the server's own configuration:

  - L{twisted_mailhub.admin.mailboxes}: ``mailhub mailboxes USER`` lists a
    user's mailboxes with their counts; ``mailhub mailbox create|delete|
    rename|stats USER NAME [NEW]`` manages one;
  - L{twisted_mailhub.admin.transfer}: ``mailhub import`` and ``mailhub
    export`` move mail between a store and mbox files or Maildir folders;
  - L{twisted_mailhub.admin.check}: ``mailhub check [--repair] [USER...]``
    compares a store's bookkeeping with its mail.

Every command takes ``--config FILE`` (the server's TOML file) and
``--store URL``, opens the store as the server does
(L{twisted_mailhub.service.open_configured_backend}) and works through the
public store interfaces only, so it works on every persistent store.
"""
