package sdk

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	pluginv1 "github.com/modpipe/modpipe/proto/pluginv1"
)

func TestWithServerCert(t *testing.T) {
	der := []byte("0123456789")
	enc := base64.RawStdEncoding.EncodeToString(der)
	tests := []struct {
		name, line, want string
	}{
		{"empty cert field", "1|1|unix|/tmp/p|grpc|\n", "1|1|unix|/tmp/p|grpc|" + enc + "\n"},
		{"broker multiplexing field kept", "1|1|unix|/tmp/p|grpc||true\n", "1|1|unix|/tmp/p|grpc|" + enc + "|true\n"},
		{"no newline", "1|1|unix|/tmp/p|grpc|", "1|1|unix|/tmp/p|grpc|" + enc},
		{"a certificate already there", "1|1|unix|/tmp/p|grpc|QUJD\n", "1|1|unix|/tmp/p|grpc|QUJD\n"},
		{"not a handshake line", "hello\n", "hello\n"},
		{"old five-field line", "1|1|unix|/tmp/p|grpc\n", "1|1|unix|/tmp/p|grpc\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := withServerCert(tt.line, der); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// recordRewriter keeps the rewrite instead of swapping os.Stdout.
type recordRewriter struct {
	rewrite func(string) string
	err     error
}

func (r *recordRewriter) rewriteNextLine(f func(string) string) error {
	r.rewrite = f
	return r.err
}

func TestServerTLS(t *testing.T) {
	host, err := pluginv1.NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	hostPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: host.Certificate[0]})

	t.Run("trusts only the host and announces a P-256 certificate", func(t *testing.T) {
		rw := &recordRewriter{}
		cfg, err := serverTLS(hostPEM, rw)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.ClientAuth != tls.RequireAndVerifyClientCert {
			t.Errorf("ClientAuth %v, want RequireAndVerifyClientCert", cfg.ClientAuth)
		}
		if _, err := host.Leaf.Verify(x509.VerifyOptions{Roots: cfg.ClientCAs, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("the host's certificate does not verify against ClientCAs: %v", err)
		}
		other, err := pluginv1.NewCertificate()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Leaf.Verify(x509.VerifyOptions{Roots: cfg.ClientCAs, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
			t.Error("another certificate verifies against ClientCAs")
		}
		line := rw.rewrite("1|1|unix|/tmp/p|grpc|\n")
		parts := strings.Split(strings.TrimSuffix(line, "\n"), "|")
		der, err := base64.RawStdEncoding.DecodeString(parts[5])
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		announced, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		if !announced.Equal(cfg.Certificates[0].Leaf) {
			t.Error("the handshake line announces another certificate than the one served")
		}
		if k, ok := announced.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
			t.Errorf("announced key %T, want ECDSA P-256", announced.PublicKey)
		}
		if _, err := announced.Verify(x509.VerifyOptions{Roots: poolOf(announced), DNSName: "localhost"}); err != nil {
			t.Errorf("the announced certificate does not serve localhost as its own root: %v", err)
		}
	})

	errBoom := errors.New("no pipe")
	tests := []struct {
		name    string
		pem     []byte
		rwErr   error
		wantErr string
	}{
		{"not PEM", []byte("junk"), nil, clientCertEnv},
		{"stdout cannot be caught", hostPEM, errBoom, "no pipe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := serverTLS(tt.pem, &recordRewriter{err: tt.rwErr})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error about %q", err, tt.wantErr)
			}
		})
	}
}

func poolOf(c *x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}
