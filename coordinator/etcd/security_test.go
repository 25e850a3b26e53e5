package etcd

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/modpipe/modpipe/coordinator"
)

// writeCert signs a certificate for tmpl with parent/parentKey (or
// self-signs when parent is nil) and writes NAME.pem and NAME-key.pem.
func writeCert(t *testing.T, dir, name string, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key, certFile, keyFile
}

// A fleet can reach etcd over mutual TLS, and a client without the CA is
// refused.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, caKey, caFile, _ := writeCert(t, dir, "ca", &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "modpipe test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}, nil, nil)
	_, _, serverCert, serverKey := writeCert(t, dir, "server", &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "etcd"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, ca, caKey)
	_, _, clientCert, clientKey := writeCert(t, dir, "client", &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "modpipe"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca, caKey)
	e, endpoint, err := startEtcd(filepath.Join(dir, "data"), &transport.TLSInfo{
		CertFile: serverCert, KeyFile: serverKey, TrustedCAFile: caFile, ClientCertAuth: true,
	})
	if err != nil {
		t.Fatalf("start etcd with TLS: %v", err)
	}
	defer e.Close()
	ctx := guard(t)

	c, err := New(ctx, Config{Endpoints: []string{endpoint}, CAFile: caFile, CertFile: clientCert, KeyFile: clientKey})
	if err != nil {
		t.Fatalf("New over mutual TLS: %v", err)
	}
	defer c.Close()
	m, err := c.JoinMaster(ctx, joinReq(uniqueRunID("tls"), 0))
	if err != nil {
		t.Fatalf("JoinMaster over TLS: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	// What goes wrong is said, not only the client's deadline: the
	// server answers, but not to this TLS set-up.
	for name, cfg := range map[string]Config{
		"without the CA":                 {CertFile: clientCert, KeyFile: clientKey},
		"without a client certificate":   {CAFile: caFile},
		"in plain text to a TLS server":  {},
		"with the client's cert as a CA": {CAFile: clientCert, CertFile: clientCert, KeyFile: clientKey},
		// The client authenticates as it connects: another path.
		"with credentials, without the CA": {CertFile: clientCert, KeyFile: clientKey, Username: "u", Password: "p"},
	} {
		cfg.Endpoints, cfg.DialTimeout = []string{endpoint}, time.Second
		_, err := New(ctx, cfg)
		if err == nil {
			t.Fatalf("New %s connected", name)
		}
		if !strings.Contains(err.Error(), "did not answer as etcd in time (TLS or credentials") || !strings.Contains(err.Error(), "check that etcd is running") {
			t.Errorf("New %s: %v; want what the endpoint did and what to check", name, err)
		}
	}
	if _, err := New(ctx, Config{Endpoints: []string{endpoint}, CAFile: filepath.Join(dir, "missing.pem")}); err == nil || !strings.Contains(err.Error(), "CA file") {
		t.Fatalf("New with a missing CA file: %v", err)
	}
}

// Username and password reach etcd's auth; a wrong password is refused.
func TestAuth(t *testing.T) {
	dir := t.TempDir()
	e, endpoint, err := startEtcd(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := guard(t)
	admin, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.RoleAdd(ctx, "root"); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
	if _, err := admin.UserAdd(ctx, "root", "s3cret"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AuthEnable(ctx); err != nil {
		t.Fatal(err)
	}

	c, err := New(ctx, Config{Endpoints: []string{endpoint}, Username: "root", Password: "s3cret"})
	if err != nil {
		t.Fatalf("New with the right password: %v", err)
	}
	defer c.Close()
	m, err := c.JoinMaster(ctx, joinReq(uniqueRunID("auth"), 0))
	if err != nil {
		t.Fatalf("JoinMaster with auth: %v", err)
	}
	if err := m.Enqueue(ctx, coordinator.Assignment{Module: "a", Attempt: 1}); err != nil {
		t.Fatalf("Enqueue with auth: %v", err)
	}
	_ = m.Close()

	if _, err := New(ctx, Config{Endpoints: []string{endpoint}, Username: "root", Password: "wrong", DialTimeout: 30 * time.Second}); err == nil {
		t.Fatal("New with a wrong password succeeded")
	}
	// No credentials, and a user without rights on the prefix: the
	// server answered, and the error says what it wants.
	if _, err := New(ctx, Config{Endpoints: []string{endpoint}, DialTimeout: 30 * time.Second}); err == nil || !strings.Contains(err.Error(), "authentication enabled; give a username and password") {
		t.Errorf("New without credentials: %v", err)
	}
	root, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, Username: "root", Password: "s3cret", DialTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := root.UserAdd(ctx, "reader", "pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, Config{Endpoints: []string{endpoint}, Username: "reader", Password: "pw", DialTimeout: 30 * time.Second}); err == nil || !strings.Contains(err.Error(), `user "reader" may not read the prefix /modpipe`) {
		t.Errorf("New as a user without rights: %v", err)
	}
}
