"""The plugin side of hashicorp/go-plugin's gRPC protocol, in Python.

go-plugin is the Go library the modpipe host uses to start plugins. A plugin
in any language has to do what go-plugin's own Go server does:

1. refuse to run without the magic cookie in its environment (a user who
   starts the binary by hand gets an explanation, not a hung process);
2. pick an application protocol version the host offers
   (PLUGIN_PROTOCOL_VERSIONS);
3. with AutoMTLS (the host's certificate in PLUGIN_CLIENT_CERT, PEM), make a
   self-signed certificate of its own, serve gRPC over TLS requiring the
   host's certificate, and send its own certificate back in the handshake;
4. listen on a unix socket (or loopback TCP) and print one handshake line on
   stdout:  CORE|APP|NETWORK|ADDRESS|grpc|BASE64-DER-CERT-WITHOUT-PADDING ;
5. serve the gRPC health service ("plugin" is SERVING), the GRPCController
   (Shutdown: exit cleanly) and the GRPCBroker (the stream over which the
   host tells the plugin where to dial the services it offers back).

GoPluginServer does all of that; the application registers its own services
through a callback. Broker is the client side of go-plugin's broker: the host
announces each service it serves (ConnInfo: id, network, address) on the
StartStream stream, and the plugin dials it with the same mTLS identities.
GRPCStdio (mirroring stdout/stderr over gRPC) is optional in go-plugin and
not served: the host reads the process's stderr directly.
"""

import base64
import datetime
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
from concurrent import futures

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from grpc_health.v1 import health_pb2, health_pb2_grpc
from modpipe_plugin import hclog
from plugin import grpc_broker_pb2_grpc, grpc_controller_pb2, grpc_controller_pb2_grpc

# CORE_PROTOCOL_VERSION is go-plugin's own protocol version: always 1.
CORE_PROTOCOL_VERSION = 1

# HEALTH_SERVICE is the service name go-plugin's host checks.
HEALTH_SERVICE = "plugin"

# BROKER_DIAL_TIMEOUT is how long dial waits for the host to announce a
# broker id (go-plugin's Go implementation waits 5s too).
BROKER_DIAL_TIMEOUT = 5.0

# SHUTDOWN_GRACE is how long in-flight calls get to finish after Shutdown.
# go-plugin kills the process 2s after asking it to shut down.
SHUTDOWN_GRACE = 1.0


class HandshakeError(Exception):
    """The plugin cannot start: the message says why and what to do."""


class BrokerError(Exception):
    """A broker connection to the host could not be made."""


class TLSIdentity:
    """The plugin's side of AutoMTLS: its own key and self-signed
    certificate, and the host's certificate it trusts."""

    def __init__(self, host_cert_pem):
        self.host_cert_pem = host_cert_pem
        try:
            x509.load_pem_x509_certificate(host_cert_pem)
        except ValueError as e:
            raise HandshakeError(
                "PLUGIN_CLIENT_CERT does not hold a PEM certificate (%s): the host that started this plugin "
                "is not a go-plugin host with AutoMTLS" % e) from e
        self.key_pem, self.cert_pem, self.cert_der = generate_cert()

    def handshake_cert(self):
        """The certificate as the handshake line carries it: base64 of the
        DER bytes without padding (Go's base64.RawStdEncoding)."""
        return base64.b64encode(self.cert_der).decode("ascii").rstrip("=")

    def server_credentials(self):
        """TLS for the plugin's gRPC server: present our certificate,
        require and verify the host's."""
        return grpc.ssl_server_credentials(
            [(self.key_pem, self.cert_pem)],
            root_certificates=self.host_cert_pem,
            require_client_auth=True,
        )

    def channel_credentials(self):
        """TLS for dialling the host (broker connections): verify the host's
        certificate, present ours."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.host_cert_pem,
            private_key=self.key_pem,
            certificate_chain=self.cert_pem,
        )


def generate_cert():
    """Makes a self-signed certificate like go-plugin's generateCert: valid
    for "localhost" (the name both sides verify), usable for server and
    client authentication, and its own CA (each side trusts exactly the
    other's certificate). Returns (key PEM, certificate PEM, certificate DER).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "modpipe"),
    ])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
        .not_valid_before(now - datetime.timedelta(seconds=30))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=True, key_cert_sign=True, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM), cert.public_bytes(serialization.Encoding.DER)


def negotiate_version(offered, supported):
    """Picks the highest application protocol version both sides speak, as
    go-plugin does. offered is PLUGIN_PROTOCOL_VERSIONS ("1,2"); when the
    host offers none we speak, the plugin still answers with its highest
    version and the host refuses it with a clear message."""
    ours = sorted(supported, reverse=True)
    theirs = set()
    for part in (offered or "").split(","):
        part = part.strip()
        if part.isdigit():
            theirs.add(int(part))
    for v in ours:
        if v in theirs:
            return v
    return ours[0]


class _Health(health_pb2_grpc.HealthServicer):
    def Check(self, request, context):
        if request.service in ("", HEALTH_SERVICE):
            return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)
        context.abort(grpc.StatusCode.NOT_FOUND, "unknown service \"%s\"" % request.service)


class _Controller(grpc_controller_pb2_grpc.GRPCControllerServicer):
    def __init__(self, shutdown):
        self._shutdown = shutdown

    def Shutdown(self, request, context):
        # Answer first; the main thread stops the server once woken.
        self._shutdown.set()
        return grpc_controller_pb2.Empty()


class Broker(grpc_broker_pb2_grpc.GRPCBrokerServicer):
    """go-plugin's broker, plugin side, without multiplexing (the modpipe
    host does not multiplex).

    The host calls StartStream once, right after connecting, and keeps it
    open for the life of the connection. Whenever it serves something for
    the plugin (modpipe's Host service) it sends a ConnInfo naming the
    broker id, network and address of a fresh listener. dial(id) waits for
    that announcement and connects to it with the mTLS identities of the
    main connection.
    """

    def __init__(self, tls, logger, on_close=None, max_message_bytes=None):
        self._tls = tls
        self._log = logger
        self._on_close = on_close
        self._options = [("grpc.ssl_target_name_override", "localhost"), ("grpc.default_authority", "localhost")]
        if max_message_bytes:
            self._options += [("grpc.max_receive_message_length", max_message_bytes),
                              ("grpc.max_send_message_length", max_message_bytes)]
        self._cond = threading.Condition()
        self._announced = {}  # broker id -> ConnInfo
        self._channels = {}  # broker id -> grpc.Channel
        self._closed = False

    def StartStream(self, request_iterator, context):
        # A generator: gRPC calls next() on it in one of the server's
        # threads, which then reads the host's announcements until the host
        # closes the stream (it closes the connection: it is done with us).
        # The plugin never announces anything itself, so it yields nothing.
        try:
            for info in request_iterator:
                if info.HasField("knock"):
                    self._log.warning("the host sent a broker knock, but this plugin does not multiplex broker "
                                      "connections; ignoring it", extra=hclog.kv(broker_id=info.service_id))
                    continue
                self._log.debug("broker connection announced",
                                extra=hclog.kv(broker_id=info.service_id, network=info.network, address=info.address))
                with self._cond:
                    self._announced[info.service_id] = info
                    self._cond.notify_all()
        except grpc.RpcError:
            pass  # the host went away; same as the stream ending
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            if self._on_close is not None:
                self._on_close()
        return
        yield  # pylint: disable=unreachable  (makes this a generator)

    def dial(self, broker_id, timeout=BROKER_DIAL_TIMEOUT):
        """Returns a channel to the service the host serves under
        broker_id, connecting the first time. Raises BrokerError when the
        host does not announce it within timeout."""
        with self._cond:
            if broker_id in self._channels:
                return self._channels[broker_id]
            if not self._cond.wait_for(lambda: broker_id in self._announced or self._closed, timeout):
                raise BrokerError("the host did not announce broker id %d within %.0fs; is the host a modpipe host "
                                  "with broker support?" % (broker_id, timeout))
            info = self._announced.get(broker_id)
            if info is None:
                raise BrokerError("the connection to the host is closed")
            if info.network == "unix":
                target = "unix:" + info.address
            elif info.network == "tcp":
                target = info.address
            else:
                raise BrokerError("the host announced broker id %d on network \"%s\", which this plugin cannot dial"
                                  % (broker_id, info.network))
            if self._tls is not None:
                channel = grpc.secure_channel(target, self._tls.channel_credentials(), options=self._options)
            else:
                channel = grpc.insecure_channel(target, options=self._options)
            self._channels[broker_id] = channel
            return channel

    def close(self):
        """Closes every channel dialled through the broker."""
        with self._cond:
            channels, self._channels = list(self._channels.values()), {}
            self._closed = True
            self._cond.notify_all()
        for c in channels:
            c.close()


class GoPluginServer:
    """Serves a plugin the way go-plugin's Go server does.

    register(server, broker) adds the application's services to the gRPC
    server. serve() returns once the host asked the plugin to shut down (or
    went away); stop() is then called on the application through on_stop so
    it can end its own work.
    """

    def __init__(self, logger, magic_cookie_key, magic_cookie_value, versions, register,
                 on_stop=None, max_message_bytes=None, max_workers=64, environ=None, stdout=None):
        self._log = logger
        self._cookie = (magic_cookie_key, magic_cookie_value)
        self._versions = versions
        self._register = register
        self._on_stop = on_stop
        self._max_message_bytes = max_message_bytes
        self._max_workers = max_workers
        self._env = os.environ if environ is None else environ
        self._stdout = stdout or sys.stdout
        self._shutdown = threading.Event()

    def check_cookie(self):
        key, value = self._cookie
        if self._env.get(key) != value:
            raise HandshakeError(
                "This binary is a modpipe plugin. It is started by the modpipe host (host run pipeline.hcl), "
                "not by hand: put it in the plugins/ folder next to the host binary, in MODPIPE_PLUGIN_PATH, "
                "or name it in a plugin block of the pipeline.")

    def serve(self):
        """Starts serving, prints the handshake line and blocks until
        shutdown. Raises HandshakeError when it cannot start."""
        self.check_cookie()
        version = negotiate_version(self._env.get("PLUGIN_PROTOCOL_VERSIONS"), self._versions)

        tls = None
        host_cert = self._env.get("PLUGIN_CLIENT_CERT", "")
        if host_cert:
            tls = TLSIdentity(host_cert.encode("ascii"))

        # No bandwidth-estimator PING for nearly every message received
        # (the host's side turns it off too): one write and wake-up less
        # per module on each side.
        options = [("grpc.http2.bdp_probe", 0)]
        if self._max_message_bytes:
            options += [("grpc.max_receive_message_length", self._max_message_bytes),
                        ("grpc.max_send_message_length", self._max_message_bytes)]
        pool = futures.ThreadPoolExecutor(max_workers=self._max_workers, thread_name_prefix="grpc")
        server = grpc.server(pool, options=options)
        broker = Broker(tls, self._log, on_close=self._shutdown.set, max_message_bytes=self._max_message_bytes)
        health_pb2_grpc.add_HealthServicer_to_server(_Health(), server)
        grpc_controller_pb2_grpc.add_GRPCControllerServicer_to_server(_Controller(self._shutdown), server)
        grpc_broker_pb2_grpc.add_GRPCBrokerServicer_to_server(broker, server)
        self._register(server, broker)

        sock_dir = tempfile.mkdtemp(prefix="modpipe-plugin-", dir=self._env.get("PLUGIN_UNIX_SOCKET_DIR") or None)
        try:
            address = os.path.join(sock_dir, "plugin.sock")
            target = "unix:" + address
            bound = server.add_secure_port(target, tls.server_credentials()) if tls else server.add_insecure_port(target)
            if not bound:
                raise HandshakeError("cannot listen on unix socket %s" % address)
            server.start()

            # Ctrl-C reaches the whole process group; the host decides what
            # to cancel, so the plugin ignores it, as go-plugin's Go server does.
            signal.signal(signal.SIGINT, signal.SIG_IGN)

            line = "|".join([str(CORE_PROTOCOL_VERSION), str(version), "unix", address, "grpc",
                             tls.handshake_cert() if tls else ""])
            self._stdout.write(line + "\n")
            self._stdout.flush()
            self._log.debug("plugin serving", extra=hclog.kv(network="unix", address=address, protocol=version,
                                                     mtls=tls is not None))

            self._shutdown.wait()
            self._log.debug("plugin shutting down")
            if self._on_stop is not None:
                self._on_stop()
            server.stop(SHUTDOWN_GRACE).wait()
            broker.close()
            pool.shutdown(wait=True, cancel_futures=True)
        finally:
            shutil.rmtree(sock_dir, ignore_errors=True)

    def shutdown(self):
        """Asks serve to return, as the host's Shutdown call does."""
        self._shutdown.set()
