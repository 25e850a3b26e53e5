package etcd

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// EndpointsEnv is the environment variable the CLI reads endpoints from
// when neither --etcd nor the pipeline file gives them.
const EndpointsEnv = "MODPIPE_ETCD_ENDPOINTS"

// Defaults for Config.
const (
	DefaultPrefix      = "/modpipe"
	DefaultDialTimeout = 5 * time.Second
	DefaultRunTTL      = 24 * time.Hour
	// DefaultMaxRequestBytes is etcd's default --max-request-bytes.
	DefaultMaxRequestBytes = 1536 * 1024
	// requestOverhead is what a publish Txn carries besides the envelope
	// (keys, compares, protobuf framing, the raft wrapper). Envelopes may
	// use MaxRequestBytes minus this.
	requestOverhead = 4 * 1024
)

// Config is everything needed to reach an etcd cluster. The CLI builds it
// from `distributed { etcd { ... } }`, --etcd and MODPIPE_ETCD_ENDPOINTS.
type Config struct {
	// Endpoints are the cluster's client URLs or host:port pairs; the client
	// fails over between them.
	Endpoints []string
	// Prefix is the root of modpipe's keys (default DefaultPrefix); runs
	// live under PREFIX/RUN_ID/.
	Prefix string
	// DialTimeout bounds connecting (default DefaultDialTimeout).
	DialTimeout time.Duration
	// Username and Password enable etcd authentication when Username is set.
	Username, Password string
	// CAFile verifies the server's certificate; CertFile and KeyFile are the
	// client certificate for mutual TLS. Any of them set enables TLS.
	CAFile, CertFile, KeyFile string
	// RunTTL is the lease every key of a run lives on, so an abandoned run
	// disappears (default DefaultRunTTL). It must outlast the run.
	RunTTL time.Duration
	// MaxRequestBytes must equal the server's --max-request-bytes (default
	// DefaultMaxRequestBytes); Publish refuses envelopes that would not fit.
	MaxRequestBytes int
	// Logger receives the coordinator's structured logs (default: none).
	Logger hclog.Logger
}

// ParseEndpoints splits a comma-separated endpoint list ("--etcd
// a:2379,b:2379" or MODPIPE_ETCD_ENDPOINTS), dropping blanks.
func ParseEndpoints(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// CheckEndpoint says what is wrong with an etcd endpoint, or returns nil
// for one etcd's client can dial: host:port, http:// or https:// and
// host:port, unix:// or unixs:// and a socket path.
func CheckEndpoint(e string) error {
	hostport := e
	if scheme, rest, ok := strings.Cut(e, "://"); ok {
		switch scheme {
		case "http", "https":
			hostport = strings.TrimSuffix(rest, "/")
		case "unix", "unixs":
			if rest == "" {
				return fmt.Errorf("etcd endpoint %q has no socket path after %s://", e, scheme)
			}
			return nil
		default:
			return fmt.Errorf("etcd endpoint %q: %q is not a scheme etcd's client dials (http, https, unix, unixs)", e, scheme)
		}
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			err = errors.New(ae.Err)
		}
		return fmt.Errorf("etcd endpoint %q: %v; write host:port, such as 127.0.0.1:2379", e, err)
	}
	if host == "" {
		return fmt.Errorf("etcd endpoint %q has no host; write host:port, such as 127.0.0.1:2379", e)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("etcd endpoint %q: port %q is not a number from 1 to 65535", e, port)
	}
	return nil
}

// withDefaults validates c and fills in defaults.
func (c Config) withDefaults() (Config, error) {
	if len(c.Endpoints) == 0 {
		return c, fmt.Errorf("no etcd endpoints: set distributed { etcd { endpoints = [...] } }, --etcd or %s", EndpointsEnv)
	}
	for _, e := range c.Endpoints {
		if err := CheckEndpoint(e); err != nil {
			return c, err
		}
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	c.Prefix = strings.TrimRight(c.Prefix, "/")
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.RunTTL == 0 {
		c.RunTTL = DefaultRunTTL
	}
	if c.RunTTL < time.Minute {
		return c, fmt.Errorf("etcd run TTL %s is too short: every key of the run lives on it; use at least a minute (default %s)", c.RunTTL, DefaultRunTTL)
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.MaxRequestBytes <= 2*requestOverhead {
		return c, fmt.Errorf("etcd max request bytes %d is too small; it must match the server's --max-request-bytes (default %d)", c.MaxRequestBytes, DefaultMaxRequestBytes)
	}
	if c.Username == "" && c.Password != "" {
		return c, errors.New("etcd password given without a username")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return c, errors.New("etcd TLS needs both a client certificate file and its key file (or neither)")
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return c, nil
}

// CheckTLS reads c's TLS files as New does, so that a file that is
// wrong (a certificate without its key, a CA file without a certificate
// in it, a key that does not match) is found before connecting: the
// settings' mistake to fix, not an etcd that cannot be reached.
func (c Config) CheckTLS() error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("etcd TLS needs both a client certificate file and its key file (or neither)")
	}
	_, err := c.tlsConfig()
	return err
}

// maxEnvelopeBytes is the largest envelope a publish Txn can carry.
func (c Config) maxEnvelopeBytes() int { return c.MaxRequestBytes - requestOverhead }

// tlsConfig returns nil when no TLS file is configured.
func (c Config) tlsConfig() (*tls.Config, error) {
	if c.CAFile == "" && c.CertFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read etcd CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd CA file %s holds no PEM certificate", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load etcd client certificate %s and key %s: %w", c.CertFile, c.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
