// Command silent is a plugin that completes go-plugin's handshake with
// modpipe's cookie and protocol version, then never answers Describe (nor
// anything else), for the host's test of a plugin that stops responding.
package main

import (
	"context"
	"errors"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "github.com/modpipe/modpipe/proto/pluginv1"
)

type silentServer struct {
	pluginv1.UnimplementedPluginServer
}

func (silentServer) Describe(ctx context.Context, _ *pluginv1.DescribeRequest) (*pluginv1.DescribeResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

type silentPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
}

func (silentPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	pluginv1.RegisterPluginServer(s, silentServer{})
	return nil
}

func (silentPlugin) GRPCClient(context.Context, *goplugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("not a client")
}

func main() {
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: goplugin.HandshakeConfig{
			MagicCookieKey:   pluginv1.MagicCookieKey,
			MagicCookieValue: pluginv1.MagicCookieValue,
		},
		VersionedPlugins: map[int]goplugin.PluginSet{pluginv1.ProtocolVersion: {pluginv1.PluginName: silentPlugin{}}},
		GRPCServer:       goplugin.DefaultGRPCServer,
	})
}
