"""Exception root of the certs package.

Every error the PKI library raises derives from `CertsError`; its message says what was wrong and
what to do about it, so the CLI prints it as it is.
"""

from __future__ import annotations


class CertsError(Exception):
    """Root of every error raised by the certs package."""


class InvalidMacError(CertsError, ValueError):
    """A controller MAC is not 12 lowercase hex digits."""


class CANotInitializedError(CertsError):
    """The pki dir has no CA yet (or only half of one)."""


class CAMismatchError(CertsError):
    """ca.key and ca.crt do not belong together, or a file of the pki dir cannot be parsed."""


class CSRError(CertsError):
    """A certificate signing request is unreadable, badly signed, or names another device."""


class ValidityError(CertsError, ValueError):
    """A requested validity period is empty, naive, or outlives the CA."""


class InvalidSubjectError(CertsError, ValueError):
    """A server hostname or IP address cannot be put in a certificate."""


class IndexCorruptError(CertsError):
    """index.json cannot be read back."""


class PermissionSetupError(CertsError):
    """A file of the pki dir cannot be made readable by the broker's user."""


class CAImportError(CertsError):
    """A CA (or a certificate it issued) offered for adoption fails a check; nothing was written."""


class KeyEncryptedError(CAImportError):
    """The CA key to adopt is encrypted and no passphrase was given."""


class CAExistsError(CertsError):
    """A CA is already initialised here; adopting another replaces it only when asked."""


class NotInRegistryError(CertsError):
    """A certificate was requested for a MAC that is not a controller of the registry."""
