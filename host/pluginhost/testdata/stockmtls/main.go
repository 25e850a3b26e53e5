// Command stockmtls is a modpipe plugin served by plain go-plugin, the
// way a third-party Go plugin that does not use modpipe's sdk is: go-plugin's
// own AutoMTLS answers the host (an ECDSA P-521 certificate of its own on
// the handshake line). With STOCKMTLS_PLAIN=1 it drops the host's
// certificate before serving, so go-plugin serves without TLS: a plugin
// the host must refuse. It has Validate but not ValidateMany, as a plugin
// written before that call.
package main

import (
	"context"
	"errors"
	"os"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "github.com/modpipe/modpipe/proto/pluginv1"
)

type server struct {
	pluginv1.UnimplementedPluginServer
}

func (server) Describe(context.Context, *pluginv1.DescribeRequest) (*pluginv1.DescribeResponse, error) {
	return &pluginv1.DescribeResponse{
		Name: "stockmtls", Version: "0.0.1", ProtocolVersion: pluginv1.ProtocolVersion,
		Kinds: []*pluginv1.ModuleKind{{Name: "x", Default: true, ResultType: "stockmtls.x/v1"}},
	}, nil
}

// Validate accepts the empty config only.
func (server) Validate(_ context.Context, req *pluginv1.ValidateRequest) (*pluginv1.ValidateResponse, error) {
	if req.GetConfigJson() == "{}" {
		return &pluginv1.ValidateResponse{}, nil
	}
	return &pluginv1.ValidateResponse{Diagnostics: []*pluginv1.Diagnostic{{
		Severity: pluginv1.Severity_SEVERITY_ERROR, Summary: "No config taken", Detail: req.GetConfigJson(),
	}}}, nil
}

type plugin struct {
	goplugin.NetRPCUnsupportedPlugin
}

func (plugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	pluginv1.RegisterPluginServer(s, server{})
	return nil
}

func (plugin) GRPCClient(context.Context, *goplugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("not a client")
}

func main() {
	if os.Getenv("STOCKMTLS_PLAIN") == "1" {
		os.Unsetenv("PLUGIN_CLIENT_CERT")
	}
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: goplugin.HandshakeConfig{
			MagicCookieKey:   pluginv1.MagicCookieKey,
			MagicCookieValue: pluginv1.MagicCookieValue,
		},
		VersionedPlugins: map[int]goplugin.PluginSet{pluginv1.ProtocolVersion: {pluginv1.PluginName: plugin{}}},
		GRPCServer:       goplugin.DefaultGRPCServer,
	})
}
