"""HTTPS downloads trust the system's CA store wherever it lives, SSL_CERT_FILE, or the bundled one."""

import hashlib

import certifi
import pytest

from resnext_gui.core import certs
from resnext_gui.core import weights as W
from resnext_gui.core.errors import DownloadError
from tests.support.helpers import LocalCA, WeightsServer

PAYLOAD = b"resnext-gui test payload " * 4000


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return LocalCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def no_store(monkeypatch, tmp_path):
    """A system without any of the usual CA files and without SSL_CERT_FILE / SSL_CERT_DIR."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setattr(certs, "SYSTEM_CA_FILES", (str(tmp_path / "absent.crt"),))


def test_a_fedora_style_store_is_found_when_debians_is_absent(no_store, monkeypatch, tmp_path, ca):
    fedora = tmp_path / "etc" / "pki" / "tls" / "certs" / "ca-bundle.crt"
    fedora.parent.mkdir(parents=True)
    fedora.write_bytes(ca.ca.read_bytes())
    monkeypatch.setattr(certs, "SYSTEM_CA_FILES", (str(tmp_path / "etc/ssl/certs/ca-certificates.crt"), str(fedora)))
    assert certs.ca_source() == ("system", str(fedora))
    with WeightsServer({"w.pth": PAYLOAD}, tls=ca) as srv:
        got = W.download(f"{srv.base}/w.pth", tmp_path / "out" / "w.pth", hashlib.sha256(PAYLOAD).hexdigest()[:8])
    assert got.read_bytes() == PAYLOAD


def test_ssl_cert_file_comes_first(no_store, monkeypatch, tmp_path, ca):
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca))
    assert certs.ca_source() == ("env", str(ca.ca))
    with WeightsServer({"w.pth": PAYLOAD}, tls=ca) as srv:
        assert W.download(f"{srv.base}/w.pth", tmp_path / "w.pth").read_bytes() == PAYLOAD


def test_without_a_system_store_the_bundled_one_is_used_and_verifies(no_store, tmp_path, ca):
    assert certs.ca_source() == ("bundled", certifi.where())
    assert certs.tls_context().cert_store_stats()["x509_ca"] > 50  # a real CA list, not an empty store
    # The test CA is in no public list: the download is refused as untrusted, and nothing is kept.
    with WeightsServer({"w.pth": PAYLOAD}, tls=ca) as srv:
        with pytest.raises(DownloadError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            W.download(f"{srv.base}/w.pth", tmp_path / "w.pth")
    assert list(tmp_path.iterdir()) == []
