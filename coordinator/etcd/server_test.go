package etcd

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/modpipe/modpipe/coordinator"
)

// testServer is the real etcd server every test of the package talks to,
// embedded in the test process.
var testServer struct {
	etcd     *embed.Etcd
	endpoint string
}

func TestMain(m *testing.M) {
	os.Exit(runWithServer(m))
}

func runWithServer(m *testing.M) int {
	dir, err := os.MkdirTemp("", "modpipe-etcd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	e, endpoint, err := startEtcd(dir, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start embedded etcd:", err)
		return 1
	}
	defer e.Close()
	testServer.etcd, testServer.endpoint = e, endpoint
	return m.Run()
}

// freePort finds a free loopback port: embed needs concrete URLs, so
// 127.0.0.1:0 cannot be passed through.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startEtcd starts a single-member etcd in dir, serving clients over TLS
// when tlsInfo is set.
func startEtcd(dir string, tlsInfo *transport.TLSInfo, modify ...func(*embed.Config)) (*embed.Etcd, string, error) {
	cport, err := freePort()
	if err != nil {
		return nil, "", err
	}
	pport, err := freePort()
	if err != nil {
		return nil, "", err
	}
	cfg := embed.NewConfig()
	cfg.Name = "test"
	cfg.Dir = dir
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	scheme := "http"
	if tlsInfo != nil {
		scheme = "https"
		cfg.ClientTLSInfo = *tlsInfo
	}
	curl, _ := url.Parse(fmt.Sprintf("%s://127.0.0.1:%d", scheme, cport))
	purl, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", pport))
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*curl}, []url.URL{*curl}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*purl}, []url.URL{*purl}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	for _, m := range modify {
		m(cfg)
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", err
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		e.Server.Stop()
		return nil, "", fmt.Errorf("embedded etcd not ready after 60s")
	}
	return e, curl.String(), nil
}

// newTestCoordinator returns a coordinator on the test server under a
// prefix of its own.
func newTestCoordinator(tb testing.TB) *Coordinator {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := New(ctx, Config{Endpoints: []string{testServer.endpoint}, Prefix: "/modpipe-test"})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// joinReq is a join with heartbeats far apart from the timeout: under
// -race on a loaded machine (the suite beside other tenants' work), a
// 2 s timeout lost sessions by accident, failing tests that are about
// something else. TestLeaseExpiryLosesClaims, which waits for an expiry,
// shortens it.
func joinReq(run string, index int, caps ...string) coordinator.JoinRequest {
	return coordinator.JoinRequest{
		RunID:             run,
		Member:            coordinator.Member{Index: index, Host: fmt.Sprintf("host-%d", index), Capabilities: caps},
		HeartbeatInterval: 250 * time.Millisecond,
		HeartbeatTimeout:  10 * time.Second,
	}
}
