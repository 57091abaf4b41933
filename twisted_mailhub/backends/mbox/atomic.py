"""
Replacing a file so that a crash leaves either the old or the new content:
now L{twisted_mailhub.backends.files}, which every file store shares; the
names stay importable from here.
"""

from twisted_mailhub.backends.files import fsync_directory, replace_file

__all__ = ["fsync_directory", "replace_file"]
