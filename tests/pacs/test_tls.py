"""DICOM TLS against a real Orthanc whose DICOM port speaks TLS only: certificates made here
(a CA, Orthanc's certificate for 127.0.0.1, ours), echo, find and retrieve (C-GET, and C-MOVE
with Orthanc connecting back to our storage SCP over TLS) over TLS; an
untrusted certificate, a missing client certificate and plain DIMSE to the TLS port each end
in one clear line within the timeout."""

from __future__ import annotations

import datetime
import io
import ipaddress
import time
from pathlib import Path

import pydicom
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from app.cli import main
from app.imaging.pacs.nodes import PacsError
from app.imaging.pacs.query import Query
from app.workflow import pacs
from tests.pacs.conftest import node_for, study_of
from tests.pacs.orthanc import OUR_AET, Orthanc

PATIENT = "TLS-PATIENT-1"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _certificate(
    subject: str, key, issuer: tuple[str, object] | None, *, ca: bool
) -> x509.Certificate:
    """A certificate for ``subject`` signed by ``issuer`` (name, key), self-signed without."""
    issuer_name, issuer_key = issuer or (subject, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(folder: Path, name: str, cert: x509.Certificate, key) -> tuple[Path, Path]:
    cert_file, key_file = folder / f"{name}.crt", folder / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A hospital CA, Orthanc's and our certificates signed by it, and a stranger CA."""
    folder = tmp_path_factory.mktemp("certs")
    ca_key, stranger_key = _key(), _key()
    ca = _certificate("Test Hospital CA", ca_key, None, ca=True)
    stranger = _certificate("Stranger CA", stranger_key, None, ca=True)
    files = {"ca": _write(folder, "ca", ca, ca_key)[0]}
    files["stranger"] = _write(folder, "stranger", stranger, stranger_key)[0]
    for name in ("orthanc", "medprint"):
        key = _key()
        cert = _certificate(name, key, ("Test Hospital CA", ca_key), ca=False)
        files[f"{name}.crt"], files[f"{name}.key"] = _write(folder, name, cert, key)
    return files


@pytest.fixture(scope="module")
def tls_orthanc(tmp_path_factory: pytest.TempPathFactory, certs, dicom_dir: Path):
    """Orthanc with DICOM TLS on its DICOM port, asking for a client certificate."""
    server = Orthanc(tmp_path_factory.mktemp("orthanc-tls"))
    ours = {"AET": OUR_AET, "Host": "127.0.0.1", "Port": server.our_port, "UseDicomTls": True}
    server.tls = {
        "DicomModalities": {"medprint": ours},  # C-MOVE connects back to us over TLS
        "DicomTlsEnabled": True,
        "DicomTlsCertificate": str(certs["orthanc.crt"]),
        "DicomTlsPrivateKey": str(certs["orthanc.key"]),
        "DicomTlsTrustedCertificates": str(certs["ca"]),
        "DicomTlsRemoteCertificateRequired": True,
    }
    server.start()
    try:
        files = sorted((dicom_dir / "mr-brain-t1-sagittal-philips-170").glob("*.dcm"))[:12]
        for file in files:
            server.upload_bytes(_renamed(file))
        yield server
    finally:
        server.stop()


def _renamed(file: Path) -> bytes:
    ds = pydicom.dcmread(file)
    ds.PatientID = PATIENT
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


def _tls_node(server: Orthanc, certs, name: str = "secure", **changes: object):
    values = {
        "tls": True,
        "tls_ca": str(certs["ca"]),
        "tls_cert": str(certs["medprint.crt"]),
        "tls_key": str(certs["medprint.key"]),
    }
    return node_for(server, name, **(values | changes))


@pytest.mark.parametrize("method", ["get", "move"])
def test_echo_find_retrieve_over_tls(admin, tls_orthanc, certs, method):
    pacs.add_node(admin, _tls_node(tls_orthanc, certs))
    assert pacs.echo(admin, "secure") < 5
    page = pacs.find(admin, "secure", Query(patient_id=PATIENT))
    [study] = page.studies
    assert study.series[0].instances == 12
    got = pacs.retrieve(admin, "secure", *study_of(tls_orthanc, PATIENT), method=method)
    assert got.instances == 12 and got.case.series_facts()["modality"] == "MR"


def test_move_over_tls_needs_our_certificate(admin, tls_orthanc, certs):
    pacs.add_node(admin, _tls_node(tls_orthanc, certs, "nocert", tls_cert="", tls_key=""))
    with pytest.raises(PacsError, match=r"needs our certificate .* or use --method get"):
        pacs.retrieve(admin, "nocert", *study_of(tls_orthanc, PATIENT), method="move")


def test_untrusted_certificate_is_one_line(admin, tls_orthanc, certs):
    pacs.add_node(admin, _tls_node(tls_orthanc, certs, "stranger", tls_ca=str(certs["stranger"])))
    with pytest.raises(PacsError) as caught:
        pacs.echo(admin, "stranger", timeout=3)
    message = str(caught.value)
    assert message.startswith("the PACS certificate is not trusted") and "\n" not in message


def test_without_our_certificate_the_node_refuses(admin, tls_orthanc, certs):
    pacs.add_node(admin, _tls_node(tls_orthanc, certs, "anonymous", tls_cert="", tls_key=""))
    with pytest.raises(PacsError) as caught:
        pacs.echo(admin, "anonymous", timeout=3)
    assert "--tls-cert" in str(caught.value) and "\n" not in str(caught.value)


def test_plain_dimse_to_the_tls_port_fails_within_the_timeout(admin, tls_orthanc):
    pacs.add_node(admin, node_for(tls_orthanc, "plain"))
    started = time.monotonic()
    with pytest.raises(PacsError) as caught:
        pacs.echo(admin, "plain", timeout=3)
    assert time.monotonic() - started < 6
    assert "TLS" in str(caught.value) and "\n" not in str(caught.value)


def test_tls_to_a_plain_port_is_one_line(admin, orthanc, certs):
    pacs.add_node(admin, node_for(orthanc, "mismatch", tls=True, tls_ca=str(certs["ca"])))
    with pytest.raises(PacsError, match="DICOM TLS port") as caught:
        pacs.echo(admin, "mismatch", timeout=3)
    assert "\n" not in str(caught.value)


def test_cli_adds_a_tls_node(admin, tls_orthanc, certs, capsys):
    argv = ["pacs", "add", "cli-tls", "--aet", "ORTHANC", "--host", "127.0.0.1"]
    argv += ["--port", str(tls_orthanc.dicom_port), "--tls", "--tls-ca", str(certs["ca"])]
    argv += ["--tls-cert", str(certs["medprint.crt"]), "--tls-key", str(certs["medprint.key"])]
    assert main(argv) == 0
    assert main(["pacs", "echo", "cli-tls"]) == 0
    assert "C-ECHO ok" in capsys.readouterr().out
    assert main(["pacs", "nodes"]) == 0
    [line] = [x for x in capsys.readouterr().out.splitlines() if x.startswith("cli-tls:")]
    assert line.endswith("[tls]")
    assert (
        main(["pacs", "add", "x", "--aet", "A", "--host", "h", "--port", "1", "--tls-ca", "f"]) == 2
    )
    assert "add --tls" in capsys.readouterr().err
