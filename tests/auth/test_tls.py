"""make_tls_options and generate_self_signed, over a real loopback handshake."""

import ipaddress
import os
import socket
import ssl
import stat
import warnings

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.interfaces import IOpenSSLContextFactory
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from twisted_mailhub.auth.tls import generate_self_signed, make_tls_options


class Greeter(Protocol):
    def connectionMade(self):
        self.transport.write(b"* OK hello\r\n")


class TLSTests(TestCase):
    def setUp(self):
        directory = self.mktemp()
        os.mkdir(directory)
        self.cert = os.path.join(directory, "cert.pem")
        self.key = os.path.join(directory, "key.pem")
        generate_self_signed(self.cert, self.key, hostnames=("localhost", "127.0.0.1"), days=30)
        port = reactor.listenSSL(0, Factory.forProtocol(Greeter),
                                 make_tls_options(self.cert, self.key), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.port = port.getHost().port

    def connect(self, context, server_hostname):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname=server_hostname) as tls:
                return tls.version(), tls.recv(100)

    def test_certificate_contents(self):
        with open(self.cert, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(sans.get_values_for_type(x509.DNSName), ["localhost"])
        self.assertEqual(sans.get_values_for_type(x509.IPAddress),
                         [ipaddress.ip_address("127.0.0.1")])
        self.assertEqual(stat.S_IMODE(os.stat(self.key).st_mode), 0o600)

    async def test_verified_handshake(self):
        for name in ("localhost", "127.0.0.1"):
            context = ssl.create_default_context(cafile=self.cert)
            version, greeting = await deferToThread(self.connect, context, name)
            self.assertIn(version, ("TLSv1.2", "TLSv1.3"))
            self.assertEqual(greeting, b"* OK hello\r\n")

    async def test_wrong_name_is_rejected_by_the_client(self):
        context = ssl.create_default_context(cafile=self.cert)
        with self.assertRaises(ssl.SSLCertVerificationError):
            await deferToThread(self.connect, context, "mail.example.com")

    async def test_tls_1_2_accepted(self):
        context = ssl.create_default_context(cafile=self.cert)
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        version, _ = await deferToThread(self.connect, context, "localhost")
        self.assertEqual(version, "TLSv1.2")

    def tls11_client(self):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cafile=self.cert)
        # Let this client offer TLS 1.1 at all (modern defaults forbid it),
        # so that a refusal comes from the server.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1_1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
        return context

    async def test_tls_1_1_refused(self):
        with self.assertRaises(ssl.SSLError) as caught:
            await deferToThread(self.connect, self.tls11_client(), "localhost")
        self.assertNotIsInstance(caught.exception, ssl.SSLCertVerificationError)

    async def test_the_tls_1_1_client_works_against_a_permissive_server(self):
        # The control for the test above: the same client does get TLS 1.1
        # from a server configured to allow it.
        with open(self.key, "rb") as f:
            key = load_pem_private_key(f.read(), None)
        with open(self.cert, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        options = CertificateOptions(privateKey=key, certificate=cert,
                                     insecurelyLowerMinimumTo=TLSVersion.TLSv1_1)
        context = options.getContext()
        context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")

        @implementer(IOpenSSLContextFactory)
        class Permissive:
            def getContext(self):
                return context

        port = reactor.listenSSL(0, Factory.forProtocol(Greeter), Permissive(),
                                 interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.port = port.getHost().port
        version, _ = await deferToThread(self.connect, self.tls11_client(), "localhost")
        self.assertEqual(version, "TLSv1.1")

    def test_mismatched_key_is_refused_at_once(self):
        other_cert = self.cert + ".other"
        other_key = self.key + ".other"
        generate_self_signed(other_cert, other_key)
        self.assertRaises(ValueError, make_tls_options, self.cert, other_key)
        with open(other_cert, "w") as f:
            f.write("not a certificate")
        self.assertRaises(ValueError, make_tls_options, other_cert, self.key)

    def test_chain_file_with_intermediates(self):
        other_cert = self.cert + ".other"
        generate_self_signed(other_cert, self.key + ".other")
        with open(self.cert) as a, open(other_cert) as b:
            chain = a.read() + b.read()
        with open(other_cert, "w") as f:
            f.write(chain)
        options = make_tls_options(other_cert, self.key)
        self.assertEqual(len(options.extraCertChain), 1)
