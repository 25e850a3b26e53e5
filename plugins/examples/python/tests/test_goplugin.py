"""Unit tests of the go-plugin machinery: version negotiation, the AutoMTLS
certificate and the broker's bookkeeping."""

import base64
import io
import json
import threading
import unittest

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from modpipe_plugin import goplugin, hclog
from plugin import grpc_broker_pb2


class NegotiateTest(unittest.TestCase):
    def test_versions(self):
        tests = [("1", (1,), 1), ("1,2", (1, 2), 2), ("2,1", (1,), 1), ("", (1,), 1), ("3", (1, 2), 2),
                 (" 1 , x", (1,), 1)]
        for offered, ours, want in tests:
            with self.subTest(offered=offered, ours=ours):
                self.assertEqual(goplugin.negotiate_version(offered, ours), want)


class CertTest(unittest.TestCase):
    def test_cert_is_what_go_plugin_verifies(self):
        _, cert_pem, der = goplugin.generate_cert()
        cert = x509.load_pem_x509_certificate(cert_pem)
        self.assertEqual(cert.public_bytes(x509.base.serialization.Encoding.DER), der)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(san.get_values_for_type(x509.DNSName), ["localhost"])
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        self.assertIn(ExtendedKeyUsageOID.SERVER_AUTH, eku)
        self.assertIn(ExtendedKeyUsageOID.CLIENT_AUTH, eku)
        self.assertTrue(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)

    def test_handshake_cert_is_unpadded_base64_der(self):
        _, host_pem, _ = goplugin.generate_cert()
        ident = goplugin.TLSIdentity(host_pem)
        field = ident.handshake_cert()
        self.assertNotIn("=", field)
        self.assertNotIn("|", field)
        padded = field + "=" * (-len(field) % 4)
        self.assertEqual(base64.b64decode(padded), ident.cert_der)

    def test_bad_host_cert(self):
        with self.assertRaises(goplugin.HandshakeError):
            goplugin.TLSIdentity(b"not a certificate")


class CookieTest(unittest.TestCase):
    def test_refuses_without_cookie(self):
        for env in ({}, {"K": "wrong"}):
            with self.subTest(env=env):
                s = goplugin.GoPluginServer(hclog.new_logger("test"), "K", "V", (1,), lambda *a: None, environ=env)
                with self.assertRaises(goplugin.HandshakeError) as cm:
                    s.serve()
                self.assertIn("not by hand", str(cm.exception))


class BrokerTest(unittest.TestCase):
    def test_dial_waits_for_the_announcement(self):
        closed = threading.Event()
        b = goplugin.Broker(None, hclog.new_logger("test"), on_close=closed.set)
        announce = threading.Event()

        def requests():
            announce.wait()
            yield grpc_broker_pb2.ConnInfo(service_id=7, network="unix", address="/nonexistent.sock")

        stream = b.StartStream(requests(), None)
        reader = threading.Thread(target=lambda: list(stream))
        reader.start()
        result = {}
        dialer = threading.Thread(target=lambda: result.setdefault("channel", b.dial(7, timeout=60)))
        dialer.start()
        announce.set()
        dialer.join(60)
        reader.join(60)
        self.assertIsNotNone(result.get("channel"))
        self.assertIs(b.dial(7), result["channel"], "a second dial reuses the channel")
        self.assertTrue(closed.is_set(), "the end of the host's stream closes the plugin")
        with self.assertRaises(goplugin.BrokerError):
            b.dial(8)  # closed: fails at once instead of waiting
        b.close()

    def test_dial_unknown_id_times_out(self):
        b = goplugin.Broker(None, hclog.new_logger("test"))
        with self.assertRaises(goplugin.BrokerError) as cm:
            b.dial(3, timeout=0.01)
        self.assertIn("broker id 3", str(cm.exception))


if __name__ == "__main__":
    unittest.main()


class HclogTest(unittest.TestCase):
    def test_lines_are_what_go_plugin_parses(self):
        out = io.StringIO()
        log = hclog.new_logger("hclog-test", out)
        log.warning("careful", extra=hclog.kv(module="build", count=2, name="x"))
        entry = json.loads(out.getvalue())
        self.assertEqual(entry["@level"], "warn")
        self.assertEqual(entry["@message"], "careful")
        # Go's "2006-01-02T15:04:05.000000Z07:00", else go-plugin keeps the
        # line as plain text.
        self.assertRegex(entry["@timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}([+-]\d\d:\d\d|Z)$")
        self.assertEqual((entry["module"], entry["count"], entry["name"]), ("build", 2, "x"))
