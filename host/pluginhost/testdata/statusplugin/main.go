// Command statusplugin is a modpipe plugin served by plain go-plugin, as
// one written without the sdk (or in another language) is, that
// misbehaves on request: its kind's config {"mode": ...} makes Execute
//
//   - "internal", "unavailable": end the call with that gRPC status and a
//     message of its own, instead of a result, while the process lives on;
//   - "stdout": write a line to the process's own stdout (not go-plugin's
//     stdio stream, which a plugin in another language does not have),
//     then succeed;
//   - "stderr": write {"line": ...} to the process's own stderr, then
//     succeed;
//   - "sleep": succeed after 1s;
//   - anything else: succeed at once.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/modpipe/modpipe/proto/pluginv1"
)

type server struct {
	pluginv1.UnimplementedPluginServer
	stdout, stderr *os.File
}

// Describe describes the kind "x", without a result_schema, as a plugin
// older than that field does. STATUSPLUGIN_DESCRIBE makes the
// description wrong: "no-result-type", "duplicate-attribute",
// "bare-type" (a type written string, not "string") or
// "bad-result-schema" (a result_schema that is not a type).
func (server) Describe(context.Context, *pluginv1.DescribeRequest) (*pluginv1.DescribeResponse, error) {
	k := &pluginv1.ModuleKind{Name: "x", Default: true, ResultType: "statusplugin.x/v1",
		Attributes: []*pluginv1.Attribute{{Name: "mode", Type: `"string"`}, {Name: "line", Type: `"string"`}}}
	switch os.Getenv("STATUSPLUGIN_DESCRIBE") {
	case "no-result-type":
		k.ResultType = ""
	case "duplicate-attribute":
		k.Attributes = append(k.Attributes, &pluginv1.Attribute{Name: "mode", Type: `"number"`})
	case "bare-type":
		k.Attributes[0].Type = "string"
	case "bad-result-schema":
		k.ResultSchema = `{"mode":"string"}`
	}
	return &pluginv1.DescribeResponse{
		Name: "statusplugin", Version: "0.0.1", ProtocolVersion: pluginv1.ProtocolVersion,
		Kinds: []*pluginv1.ModuleKind{k},
	}, nil
}

func (server) Validate(context.Context, *pluginv1.ValidateRequest) (*pluginv1.ValidateResponse, error) {
	return &pluginv1.ValidateResponse{}, nil
}

func (s server) Execute(req *pluginv1.ExecuteRequest, stream pluginv1.Plugin_ExecuteServer) error {
	var cfg struct{ Mode, Line string }
	if err := json.Unmarshal([]byte(req.GetConfigJson()), &cfg); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	switch cfg.Mode {
	case "internal":
		return status.Error(codes.Internal, "exploded on purpose")
	case "unavailable":
		return status.Error(codes.Unavailable, "not in the mood")
	case "stdout":
		fmt.Fprintln(s.stdout, "hello from the process's own stdout")
	case "stderr":
		fmt.Fprintln(s.stderr, cfg.Line)
	case "sleep":
		select {
		case <-time.After(time.Second):
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
	return stream.Send(&pluginv1.ExecuteEvent{Event: &pluginv1.ExecuteEvent_Result{Result: &pluginv1.Result{
		Succeeded: true, Type: "statusplugin.x/v1", ValueJson: `{"mode":` + fmt.Sprintf("%q", cfg.Mode) + `}`,
	}}})
}

type plugin struct {
	goplugin.NetRPCUnsupportedPlugin
	stdout, stderr *os.File
}

func (p plugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	pluginv1.RegisterPluginServer(s, server{stdout: p.stdout, stderr: p.stderr})
	return nil
}

func (plugin) GRPCClient(context.Context, *goplugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("not a client")
}

func main() {
	// go-plugin swaps os.Stdout and os.Stderr for its stdio stream's
	// pipes; these keep the process's own, the handshake line's stdout
	// and the stderr the host reads logs from.
	stdout, stderr := os.Stdout, os.Stderr
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: goplugin.HandshakeConfig{
			MagicCookieKey:   pluginv1.MagicCookieKey,
			MagicCookieValue: pluginv1.MagicCookieValue,
		},
		VersionedPlugins: map[int]goplugin.PluginSet{pluginv1.ProtocolVersion: {pluginv1.PluginName: plugin{stdout: stdout, stderr: stderr}}},
		GRPCServer:       goplugin.DefaultGRPCServer,
	})
}
