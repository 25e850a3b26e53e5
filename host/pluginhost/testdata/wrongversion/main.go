// Command wrongversion is a plugin that completes go-plugin's handshake
// with modpipe's cookie but offers only protocol version 99, for the
// host's protocol-version refusal test.
package main

import (
	"context"
	"errors"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "github.com/modpipe/modpipe/proto/pluginv1"
)

type futurePlugin struct {
	goplugin.NetRPCUnsupportedPlugin
}

func (futurePlugin) GRPCServer(*goplugin.GRPCBroker, *grpc.Server) error { return nil }
func (futurePlugin) GRPCClient(context.Context, *goplugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("not a client")
}

func main() {
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: goplugin.HandshakeConfig{
			MagicCookieKey:   pluginv1.MagicCookieKey,
			MagicCookieValue: pluginv1.MagicCookieValue,
		},
		VersionedPlugins: map[int]goplugin.PluginSet{99: {pluginv1.PluginName: futurePlugin{}}},
		GRPCServer:       goplugin.DefaultGRPCServer,
	})
}
