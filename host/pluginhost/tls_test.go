package pluginhost_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/modpipe/modpipe/host/pluginhost"
	pluginv1 "github.com/modpipe/modpipe/proto/pluginv1"
)

// buildStock builds testdata/stockmtls into a directory of t's.
func buildStock(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "stockmtls")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/stockmtls").CombinedOutput(); err != nil {
		t.Fatalf("build testdata/stockmtls: %v\n%s", err, out)
	}
	return bin
}

// TestMTLSWithPlugins starts plugins that answer the host's mutual TLS in
// each way a modpipe plugin may: the sdk (P-256, the certificate added to
// go-plugin's handshake line) and plain go-plugin AutoMTLS (its own P-521
// certificate), and one that serves without TLS, which the host refuses.
func TestMTLSWithPlugins(t *testing.T) {
	stock := buildStock(t)
	shared, err := pluginhost.NewTLSIdentity()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		env     []string
		tls     *pluginhost.TLSIdentity
		wantErr bool
	}{
		{name: "sdk plugin", path: testkitBin},
		{name: "stock go-plugin AutoMTLS", path: stock},
		{name: "sdk plugin, shared host identity", path: testkitBin, tls: shared},
		{name: "stock plugin, the same shared host identity", path: stock, tls: shared},
		{name: "plugin without TLS", path: stock, env: []string{"STOCKMTLS_PLAIN=1"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), deadlockGuard)
			defer cancel()
			p, err := pluginhost.Start(ctx, pluginhost.Spec{Name: "p", Path: tt.path, Env: tt.env}, pluginhost.Options{Logger: testLogger(t), TLS: tt.tls})
			if tt.wantErr {
				if err == nil {
					p.Close()
					t.Fatal("the host started a plugin that serves without TLS")
				}
				var se *pluginhost.StartError
				if !errors.As(err, &se) || se.Reason != pluginhost.ReasonHandshake || !strings.Contains(err.Error(), "its handshake line has no TLS certificate") {
					t.Fatalf("got %T %v, want a *StartError saying the handshake line has no certificate", err, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if len(p.Info().Kinds) == 0 {
				t.Fatalf("no kinds in %+v", p.Info())
			}
		})
	}
}

// TestPluginRefusesOtherClients starts an sdk plugin by hand, as a host
// does, and checks that only the certificate given in PLUGIN_CLIENT_CERT
// can call it: another process on this machine that finds the plugin's
// socket cannot, with another certificate, with none, or in the clear.
func TestPluginRefusesOtherClients(t *testing.T) {
	hostCert, hostPEM := testCert(t)
	otherCert, _ := testCert(t)

	sockDir := t.TempDir()
	cmd := exec.Command(testkitBin)
	cmd.Env = append(os.Environ(),
		pluginv1.MagicCookieKey+"="+pluginv1.MagicCookieValue,
		"PLUGIN_PROTOCOL_VERSIONS=1",
		"PLUGIN_UNIX_SOCKET_DIR="+sockDir,
		"PLUGIN_CLIENT_CERT="+string(hostPEM),
	)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("read the handshake line: %v; stderr: %s", err, stderr.String())
	}
	parts := strings.Split(strings.TrimSpace(line), "|")
	if len(parts) < 6 || parts[2] != "unix" || parts[4] != "grpc" {
		t.Fatalf("handshake line %q", line)
	}
	der, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil {
		t.Fatalf("the handshake line's certificate: %v", err)
	}
	pluginCert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("the handshake line's certificate: %v", err)
	}
	if k, ok := pluginCert.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("the plugin's key is %T, want ECDSA P-256", pluginCert.PublicKey)
	}
	roots := x509.NewCertPool()
	roots.AddCert(pluginCert)
	addr := parts[3]

	tlsCreds := func(certs ...tls.Certificate) grpc.DialOption {
		return grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
			Certificates: certs, RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12,
		}))
	}
	tests := []struct {
		name  string
		creds grpc.DialOption
		ok    bool
	}{
		{"the host's certificate", tlsCreds(hostCert), true},
		{"another certificate", tlsCreds(otherCert), false},
		{"no certificate", tlsCreds(), false},
		{"no TLS", grpc.WithTransportCredentials(insecure.NewCredentials()), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := grpc.NewClient("unix://"+addr, tt.creds)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), deadlockGuard)
			defer cancel()
			resp, err := pluginv1.NewPluginClient(conn).Describe(ctx, &pluginv1.DescribeRequest{})
			switch {
			case tt.ok && err != nil:
				t.Fatalf("Describe with the host's certificate: %v", err)
			case tt.ok && resp.GetName() == "":
				t.Fatalf("Describe: %+v", resp)
			case !tt.ok && err == nil:
				t.Fatalf("the plugin answered a client with %s", tt.name)
			}
		})
	}
}

// testCert makes a self-signed localhost certificate like a go-plugin
// host's, and its PEM.
func testCert(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SerialNumber:          big.NewInt(1),
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// describeClient is the client side of the Plugin service for a stock
// go-plugin host.
type describeClient struct {
	goplugin.NetRPCUnsupportedPlugin
}

func (describeClient) GRPCServer(*goplugin.GRPCBroker, *grpc.Server) error {
	return errors.New("not a server")
}

func (describeClient) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return pluginv1.NewPluginClient(conn), nil
}

// TestSDKPluginUnderStockHost starts an sdk plugin from a plain go-plugin
// client with go-plugin's own AutoMTLS (a P-521 host certificate): the
// sdk's P-256 answer on the handshake line must satisfy it.
func TestSDKPluginUnderStockHost(t *testing.T) {
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: goplugin.HandshakeConfig{
			MagicCookieKey:   pluginv1.MagicCookieKey,
			MagicCookieValue: pluginv1.MagicCookieValue,
		},
		VersionedPlugins: map[int]goplugin.PluginSet{pluginv1.ProtocolVersion: {pluginv1.PluginName: describeClient{}}},
		Cmd:              exec.Command(testkitBin),
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           testLogger(t),
	})
	defer client.Kill()
	rpc, err := client.Client()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rpc.Dispense(pluginv1.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadlockGuard)
	defer cancel()
	resp, err := raw.(pluginv1.PluginClient).Describe(ctx, &pluginv1.DescribeRequest{})
	if err != nil || resp.GetName() == "" {
		t.Fatalf("Describe: %+v, %v", resp, err)
	}
}
