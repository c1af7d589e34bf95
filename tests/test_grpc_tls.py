"""TLS (self-signed certificate made here with `cryptography`) plus a bearer token, on a real server."""

from __future__ import annotations

import datetime
import ipaddress

import pytest
import torch

from blindproof.client import BlindClient, RemoteError
from blindproof.ee import generate_key
from blindproof.models.workloads import get_workload
from blindproof.server.process import ServerProcess

pytestmark = pytest.mark.timeout(120)
TOKEN = "s3cret-token-for-tests"


def _self_signed(tmp) -> tuple:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = _self_signed(tmp)
    token_file = tmp / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)  # a token file others can read is refused, like a key file
    with ServerProcess(extra_args=["--tls-cert", str(cert), "--tls-key", str(key),
                                   "--token-file", str(token_file)]) as srv:
        srv.cert = cert
        yield srv


def _client(srv, token):
    return BlindClient(f"localhost:{srv.port}", root_certificates=srv.cert, token=token, timeout=20, retries=0)


def test_tls_with_token_runs_blind_inference(tls_server):
    tiny = get_workload("tiny-llama").build(0)
    with _client(tls_server, TOKEN) as c:
        c.wait_ready()
        dep = c.deploy(tiny, generate_key(), "rotate")
        x = get_workload("tiny-llama").example_input(1)
        torch.testing.assert_close(c.infer(dep, x), tiny(x), rtol=1e-4, atol=1e-4)
        prompt = x[:, :5]
        assert torch.equal(c.generate(dep, prompt, 8), tiny.generate(prompt, 8))
    assert TOKEN not in tls_server.log()


@pytest.mark.parametrize("token,message", [(None, "missing bearer token"), ("wrong", "invalid bearer token")])
def test_missing_or_wrong_token_is_unauthenticated(tls_server, token, message):
    with _client(tls_server, token) as c:
        assert c.health() == "SERVING"  # health checks need no token
        for call in (c.list_deployments, lambda: c.infer_raw("ab" * 32, torch.zeros(1, 1, 64)),
                     lambda: c.deploy(get_workload("tiny-llama").build(0), None)):
            with pytest.raises(RemoteError) as err:
                call()
            assert err.value.code.name == "UNAUTHENTICATED" and message in err.value.details
        with pytest.raises(RemoteError) as err, c.session("ab" * 32) as sess:
            sess.step(torch.zeros(1, 1, 64))
        assert err.value.code.name == "UNAUTHENTICATED"


def test_plaintext_client_cannot_talk_to_tls_server(tls_server):
    with BlindClient(f"127.0.0.1:{tls_server.port}", token=TOKEN, timeout=5, retries=0) as c:
        with pytest.raises(RemoteError) as err:
            c.list_deployments()
    assert err.value.code.name == "UNAVAILABLE"


def test_untrusted_certificate_is_refused(tls_server, tmp_path):
    other_cert, _ = _self_signed(tmp_path)
    with BlindClient(f"localhost:{tls_server.port}", root_certificates=other_cert, token=TOKEN, timeout=5,
                     retries=0) as c:
        with pytest.raises(RemoteError) as err:
            c.list_deployments()
    assert err.value.code.name == "UNAVAILABLE"
    assert tls_server.alive()
