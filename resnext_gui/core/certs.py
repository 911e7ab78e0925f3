"""Which CA certificates HTTPS downloads trust: the system's store wherever this Linux keeps it, else a bundled one."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

# Where distributions keep the trusted CA bundle (PEM), most common first.
SYSTEM_CA_FILES = (
    "/etc/ssl/certs/ca-certificates.crt",                  # Debian, Ubuntu, Arch, Gentoo, Alpine
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",   # Fedora, RHEL 7+, CentOS
    "/etc/pki/tls/certs/ca-bundle.crt",                    # Fedora, RHEL (compatibility link)
    "/etc/ssl/ca-bundle.pem",                              # openSUSE, SLES
    "/var/lib/ca-certificates/ca-bundle.pem",              # openSUSE (the file behind the link)
    "/etc/ca-certificates/extracted/tls-ca-bundle.pem",    # Arch (the file behind the link)
    "/etc/ssl/cert.pem",                                   # Alpine, Arch, macOS
)


def ca_source() -> tuple[str, str]:
    """(kind, path) of the CA store to trust: "env" (SSL_CERT_FILE / SSL_CERT_DIR), "system" or "bundled"."""
    for var in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        value = os.environ.get(var)
        if value and Path(value).exists():
            return "env", value
    for path in SYSTEM_CA_FILES:
        if os.path.isfile(path) and os.access(path, os.R_OK):
            return "system", path
    import certifi

    return "bundled", certifi.where()


def tls_context() -> ssl.SSLContext:
    """A verifying client context that trusts the store ``ca_source`` names.

    OpenSSL's built-in default (the folder it was compiled for, /usr/lib/ssl for the standalone app's copy)
    exists only on Debian-family systems, so the store is always named explicitly.
    """
    kind, path = ca_source()
    if kind == "env" and Path(path).is_dir():
        return ssl.create_default_context(capath=path)
    return ssl.create_default_context(cafile=path)
