// Package bare is the floor for modpipe's plugin call: the smallest
// go-plugin gRPC plugin there is, with the same transport settings as the
// host (gRPC, AutoMTLS, one process), serving two unary methods: Payload
// returns a payload of the size asked for, Spawn runs a program with
// nothing captured and SpawnCaptured runs it with its output read back.
// The benchmark compares modpipe's Execute round trip with Payload, and
// its DAG of /bin/true modules with Spawn and SpawnCaptured driven by a
// bare runner, measured in the same run.
//
// There is no .proto: the method is declared by hand with well-known
// wrapper messages, so the floor carries no code generation of its own.
package bare

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Handshake differs from modpipe's, so neither binary is mistaken for the
// other.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "MODPIPE_BENCH_BARE",
	MagicCookieValue: "bare-grpc-floor",
}

// PluginName is the name the plugin is dispensed under.
const PluginName = "bare"

// maxMessage allows the 1 MiB payloads (plus framing) the benchmark sends.
const maxMessage = 8 << 20

// The full gRPC method names of the calls.
const (
	method         = "/modpipe.bench.Bare/Payload"
	spawnMethod    = "/modpipe.bench.Bare/Spawn"
	capturedMethod = "/modpipe.bench.Bare/SpawnCaptured"
	streamMethod   = "/modpipe.bench.Bare/SpawnStream"
	echoMethod     = "/modpipe.bench.Bare/EchoStream"
)

// service is what the service handlers call.
type service interface {
	Payload(ctx context.Context, size *wrapperspb.Int64Value) (*wrapperspb.BytesValue, error)
	Spawn(ctx context.Context, prog *wrapperspb.StringValue) (*wrapperspb.Int64Value, error)
	SpawnCaptured(ctx context.Context, prog *wrapperspb.StringValue) (*wrapperspb.Int64Value, error)
	SpawnStream(stream grpc.ServerStream) error
	EchoStream(stream grpc.ServerStream) error
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: "modpipe.bench.Bare",
	HandlerType: (*service)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Payload",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.Int64Value)
			if err := dec(in); err != nil {
				return nil, err
			}
			return srv.(service).Payload(ctx, in)
		},
	}, {
		MethodName: "Spawn",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			return srv.(service).Spawn(ctx, in)
		},
	}, {
		MethodName: "SpawnCaptured",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			return srv.(service).SpawnCaptured(ctx, in)
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "SpawnStream",
		ServerStreams: true,
		ClientStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			return srv.(service).SpawnStream(stream)
		},
	}, {
		StreamName:    "EchoStream",
		ServerStreams: true,
		ClientStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			return srv.(service).EchoStream(stream)
		},
	}},
	Metadata: "bare.go",
}

// server answers Payload with a cached payload of the asked size, so the
// call measures transport and encoding, not building the bytes.
type server struct {
	payloads map[int64][]byte
	devnull  *os.File
}

// Spawn runs prog with no arguments, an empty environment and /dev/null
// as its stdin, stdout and stderr, waits for it and returns its exit
// status: the cheapest spawn from Go (bench/internal/spawnfloor), with
// nothing read back.
func (s *server) Spawn(_ context.Context, prog *wrapperspb.StringValue) (*wrapperspb.Int64Value, error) {
	fd := s.devnull.Fd()
	pid, err := syscall.ForkExec(prog.GetValue(), []string{prog.GetValue()}, &syscall.ProcAttr{Env: []string{}, Files: []uintptr{fd, fd, fd}})
	if err != nil {
		return nil, fmt.Errorf("spawn %s: %w", prog.GetValue(), err)
	}
	return waitExit(pid, prog.GetValue())
}

// SpawnCaptured runs prog as Spawn does, but as a CI runner must: in a
// process group of its own (so a cancel can kill what it starts), with
// its stdout and stderr on two pipes read until both close, both at once
// (a child filling one pipe must not block on it while the other is
// read). The reads use one poll(2) loop on this goroutine's thread rather
// than a reader goroutine per pipe on the runtime's poller, the cheaper
// of the two (bench/internal/spawnfloor). It returns the exit status; the
// output is counted and dropped.
func (s *server) SpawnCaptured(_ context.Context, prog *wrapperspb.StringValue) (*wrapperspb.Int64Value, error) {
	var out, errp [2]int
	if err := syscall.Pipe2(out[:], syscall.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("spawn %s: %w", prog.GetValue(), err)
	}
	if err := syscall.Pipe2(errp[:], syscall.O_CLOEXEC); err != nil {
		syscall.Close(out[0])
		syscall.Close(out[1])
		return nil, fmt.Errorf("spawn %s: %w", prog.GetValue(), err)
	}
	pid, err := syscall.ForkExec(prog.GetValue(), []string{prog.GetValue()}, &syscall.ProcAttr{
		Env: []string{}, Files: []uintptr{s.devnull.Fd(), uintptr(out[1]), uintptr(errp[1])},
		Sys: &syscall.SysProcAttr{Setpgid: true},
	})
	syscall.Close(out[1])
	syscall.Close(errp[1])
	if err != nil {
		syscall.Close(out[0])
		syscall.Close(errp[0])
		return nil, fmt.Errorf("spawn %s: %w", prog.GetValue(), err)
	}
	fds := []unix.PollFd{{Fd: int32(out[0]), Events: unix.POLLIN}, {Fd: int32(errp[0]), Events: unix.POLLIN}}
	var buf [4096]byte
	open := len(fds)
	for open > 0 {
		if _, err := unix.Poll(fds, -1); err != nil {
			if err == unix.EINTR {
				continue
			}
			break
		}
		for i := range fds {
			if fds[i].Fd < 0 || fds[i].Revents == 0 {
				continue
			}
			if n, err := unix.Read(int(fds[i].Fd), buf[:]); n <= 0 && err != unix.EINTR {
				unix.Close(int(fds[i].Fd))
				fds[i].Fd = -1
				open--
			}
		}
	}
	for _, f := range fds {
		if f.Fd >= 0 {
			unix.Close(int(f.Fd))
		}
	}
	return waitExit(pid, prog.GetValue())
}

// SpawnStream is Spawn over one bidirectional stream: every message the
// client sends is a program to spawn, and each exit status goes back as
// one message when that child ends, in the order they end. It is the
// floor of a runner that keeps one stream open to its plugin and sends
// one message each way per command, the least a go-plugin runner can
// exchange with the process that runs its commands.
func (s *server) SpawnStream(stream grpc.ServerStream) error {
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		werr error
	)
	defer wg.Wait()
	for {
		prog := new(wrapperspb.StringValue)
		if err := stream.RecvMsg(prog); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		wg.Go(func() {
			code, err := s.Spawn(stream.Context(), prog)
			mu.Lock()
			defer mu.Unlock()
			if werr != nil {
				return
			}
			if err != nil {
				code = wrapperspb.Int64(-1)
			}
			werr = stream.SendMsg(code)
		})
	}
}

// EchoStream sends every message back as it arrives: the exchange of
// SpawnStream without the spawn, for the client's CPU per message.
func (s *server) EchoStream(stream grpc.ServerStream) error {
	for {
		m := new(wrapperspb.Int64Value)
		if err := stream.RecvMsg(m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := stream.SendMsg(m); err != nil {
			return err
		}
	}
}

// waitExit waits for pid, the child that runs prog, and returns its exit
// status.
func waitExit(pid int, prog string) (*wrapperspb.Int64Value, error) {
	var ws syscall.WaitStatus
	var err error
	for {
		_, err = syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("wait for %s: %w", prog, err)
	}
	return wrapperspb.Int64(int64(ws.ExitStatus())), nil
}

func (s *server) Payload(_ context.Context, size *wrapperspb.Int64Value) (*wrapperspb.BytesValue, error) {
	n := size.GetValue()
	if n < 0 || n > maxMessage/2 {
		return nil, errors.New("size out of range")
	}
	b, ok := s.payloads[n]
	if !ok {
		b = []byte(strings.Repeat("x", int(n)))
	}
	return &wrapperspb.BytesValue{Value: b}, nil
}

// Plugin is the go-plugin side of the floor, for both the server (the
// plugin binary) and the client (the benchmark).
type Plugin struct {
	goplugin.NetRPCUnsupportedPlugin
}

// GRPCServer registers the Payload service.
func (Plugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	srv := &server{payloads: map[int64][]byte{}, devnull: devnull}
	for _, n := range []int64{0, 64 << 10, 1 << 20} {
		srv.payloads[n] = []byte(strings.Repeat("x", int(n)))
	}
	s.RegisterService(&serviceDesc, srv)
	return nil
}

// GRPCClient returns a *Client on the plugin's connection.
func (Plugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return &Client{conn: conn}, nil
}

// Client calls the floor plugin.
type Client struct {
	conn *grpc.ClientConn
}

// Payload asks for size bytes and returns how many arrived.
func (c *Client) Payload(ctx context.Context, size int) (int, error) {
	out := new(wrapperspb.BytesValue)
	if err := c.conn.Invoke(ctx, method, wrapperspb.Int64(int64(size)), out, grpc.MaxCallRecvMsgSize(maxMessage)); err != nil {
		return 0, err
	}
	return len(out.GetValue()), nil
}

// Spawn runs prog in the plugin and returns its exit status.
func (c *Client) Spawn(ctx context.Context, prog string) (int, error) {
	out := new(wrapperspb.Int64Value)
	if err := c.conn.Invoke(ctx, spawnMethod, wrapperspb.String(prog), out); err != nil {
		return 0, err
	}
	return int(out.GetValue()), nil
}

// SpawnCaptured runs prog in the plugin with its output read back and
// returns its exit status.
func (c *Client) SpawnCaptured(ctx context.Context, prog string) (int, error) {
	out := new(wrapperspb.Int64Value)
	if err := c.conn.Invoke(ctx, capturedMethod, wrapperspb.String(prog), out); err != nil {
		return 0, err
	}
	return int(out.GetValue()), nil
}

// SpawnStream runs prog n times in the plugin over one stream, j at a
// time (a new one is sent as each result comes back), and returns the
// first error or non-zero exit status.
func (c *Client) SpawnStream(ctx context.Context, prog string, n, j int) error {
	return c.pump(ctx, &serviceDesc.Streams[0], streamMethod, n, j,
		func() proto.Message { return wrapperspb.String(prog) },
		func(code *wrapperspb.Int64Value) error {
			if code.GetValue() != 0 {
				return fmt.Errorf("%s exited with status %d", prog, code.GetValue())
			}
			return nil
		})
}

// EchoStream exchanges n messages with the plugin over one stream, j in
// flight (a new one sent as each comes back), as SpawnStream does with
// nothing spawned.
func (c *Client) EchoStream(ctx context.Context, n, j int) error {
	return c.pump(ctx, &serviceDesc.Streams[1], echoMethod, n, j,
		func() proto.Message { return wrapperspb.Int64(0) },
		func(*wrapperspb.Int64Value) error { return nil })
}

// pump sends n messages on a new stream of method, keeping j in flight:
// j at first, then one more as each answer arrives, which check judges.
func (c *Client) pump(ctx context.Context, desc *grpc.StreamDesc, method string, n, j int, msg func() proto.Message, check func(*wrapperspb.Int64Value) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.conn.NewStream(ctx, desc, method)
	if err != nil {
		return err
	}
	sent := 0
	for ; sent < min(n, j); sent++ {
		if err := stream.SendMsg(msg()); err != nil {
			return err
		}
	}
	for range n {
		answer := new(wrapperspb.Int64Value)
		if err := stream.RecvMsg(answer); err != nil {
			return err
		}
		if err := check(answer); err != nil {
			return err
		}
		if sent < n {
			if err := stream.SendMsg(msg()); err != nil {
				return err
			}
			sent++
		}
	}
	return stream.CloseSend()
}

// ServeConfig is what the plugin binary passes to goplugin.Serve.
func ServeConfig() *goplugin.ServeConfig {
	return &goplugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         goplugin.PluginSet{PluginName: Plugin{}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, grpc.MaxRecvMsgSize(maxMessage), grpc.MaxSendMsgSize(maxMessage))
			return grpc.NewServer(opts...)
		},
	}
}

// Start starts the floor plugin binary at path with the host's transport
// settings (gRPC only, AutoMTLS) and returns its client and a function
// that stops it.
func Start(path string) (*Client, func(), error) {
	c := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          goplugin.PluginSet{PluginName: Plugin{}},
		Cmd:              exec.Command(path),
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           hclog.NewNullLogger(),
	})
	rpc, err := c.Client()
	if err != nil {
		c.Kill()
		return nil, nil, fmt.Errorf("start the floor plugin %s: %w", path, err)
	}
	raw, err := rpc.Dispense(PluginName)
	if err != nil {
		c.Kill()
		return nil, nil, fmt.Errorf("dispense the floor plugin %s: %w", path, err)
	}
	return raw.(*Client), c.Kill, nil
}
