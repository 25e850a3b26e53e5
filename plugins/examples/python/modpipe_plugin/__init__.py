"""A modpipe plugin written in Python: module kinds "render" (a template
filled from HCL values and a dependency's result) and "checksum" (digests of
the files matching globs).

It proves that a plugin can be written in any language that has gRPC: it
speaks hashicorp/go-plugin's protocol (handshake line, AutoMTLS, health,
controller, broker) and modpipe's proto/modpipe/plugin/v1/plugin.proto
without any Go. See docs/writing-plugins.md.

The gRPC code generated from the .proto files lives in gen/ next to this
package inside the built zip application (build.sh); it is put on sys.path
here so that its absolute imports (``from modpipe.plugin.v1 import ...``)
resolve.
"""

import os
import sys

_GEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gen")
if _GEN not in sys.path:
    sys.path.insert(0, _GEN)
