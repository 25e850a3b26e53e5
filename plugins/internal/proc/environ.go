package proc

import (
	"os"
	"strings"

	"github.com/modpipe/modpipe/proto/pluginv1"
	"github.com/modpipe/modpipe/sdk"
)

// pluginProtocolVars are what the host sets in a plugin's environment to
// run the plugin protocol itself: go-plugin's handshake variables (the
// host's TLS certificate among them) and modpipe's magic cookie. They
// describe the plugin's own connection to the host, not the module's
// environment, so a module's commands do not inherit them; a command that
// is itself a go-plugin host or plugin would otherwise read them as its
// own.
var pluginProtocolVars = map[string]bool{
	pluginv1.MagicCookieKey:    true,
	pluginv1.StopGraceEnv:      true,
	"PLUGIN_CLIENT_CERT":       true,
	"PLUGIN_MIN_PORT":          true,
	"PLUGIN_MAX_PORT":          true,
	"PLUGIN_PROTOCOL_VERSIONS": true,
	"PLUGIN_MULTIPLEX_GRPC":    true,
	"PLUGIN_UNIX_SOCKET_DIR":   true,
	"PLUGIN_UNIX_SOCKET_GROUP": true,
}

// Environ is the environment a plugin's commands inherit: the plugin's own
// (os.Environ) without the variables of the plugin protocol. Command.Env
// nil means Environ.
func Environ() []string {
	env := os.Environ()
	out := env[:0]
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); !pluginProtocolVars[k] {
			out = append(out, kv)
		}
	}
	return out
}

// CheckEnvKeys refuses environment names a command could not be given:
// empty, or holding '=' or a NUL (the name would end at the '=', and the
// rest would become part of the value). The error names the attribute
// "env", so the host points at its line.
func CheckEnvKeys(env map[string]string) error {
	for k := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return sdk.AttributeError("env", "env: %q is not a valid environment variable name (it must be non-empty, without '=' or NUL)", k)
		}
	}
	return nil
}
