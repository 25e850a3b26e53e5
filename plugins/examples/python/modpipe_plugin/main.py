"""Entry point of the plugin binary (modpipe-plugin-template)."""

import sys

from . import goplugin, hclog
from .kinds import Checksum, Render
from .service import PluginService
from modpipe.plugin.v1 import plugin_pb2_grpc

NAME = "template"
VERSION = "0.1.0"

# The go-plugin handshake of the modpipe protocol (proto/pluginv1/handshake.go).
MAGIC_COOKIE_KEY = "MODPIPE_PLUGIN"
MAGIC_COOKIE_VALUE = "d1b0c3e8-modpipe-plugin-v1"
PROTOCOL_VERSIONS = (1,)

# The largest gRPC message either way (pluginv1.MaxMessageBytes): results
# and envelopes can be far larger than gRPC's default 4 MiB.
MAX_MESSAGE_BYTES = 256 << 20


def main():
    log = hclog.new_logger(NAME)
    service = PluginService(NAME, VERSION, [Render(), Checksum()], log)

    def register(server, broker):
        service.broker = broker
        plugin_pb2_grpc.add_PluginServicer_to_server(service, server)

    server = goplugin.GoPluginServer(
        log, MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE, PROTOCOL_VERSIONS, register,
        on_stop=service.stop, max_message_bytes=MAX_MESSAGE_BYTES)
    try:
        server.serve()
    except goplugin.HandshakeError as e:
        print(str(e), file=sys.stderr)
        sys.exit(1)
