package sdk

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	pluginv1 "github.com/modpipe/modpipe/proto/pluginv1"
)

// clientCertEnv is where a go-plugin host with AutoMTLS puts its
// certificate (PEM): the only certificate the plugin accepts connections
// from.
const clientCertEnv = "PLUGIN_CLIENT_CERT"

// autoMTLS is the plugin's side of go-plugin's AutoMTLS, as
// goplugin.ServeConfig.TLSProvider. go-plugin's own makes an ECDSA P-521
// key and certificate at every start: 6 to 16 ms of CPU on the machines
// modpipe was measured on, most of a plugin's start. This one is the same
// exchange with a P-256 certificate (0.3 ms): trust only the host's
// certificate from PLUGIN_CLIENT_CERT, require it from every client, and
// send our certificate back on the handshake line, where any go-plugin
// host (modpipe's, or a stock go-plugin client) reads it.
//
// Without PLUGIN_CLIENT_CERT the host did not ask for TLS and go-plugin
// serves in the clear, as it would with its own AutoMTLS.
func autoMTLS() (*tls.Config, error) {
	hostPEM := os.Getenv(clientCertEnv)
	if hostPEM == "" {
		return nil, nil
	}
	return serverTLS([]byte(hostPEM), &stdoutSwap{})
}

// serverTLS builds the TLS config that trusts only hostPEM and arranges
// for our certificate to reach the host in the handshake line.
func serverTLS(hostPEM []byte, out lineRewriter) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(hostPEM) {
		return nil, errors.New(clientCertEnv + " does not hold a PEM certificate")
	}
	cert, err := pluginv1.NewCertificate()
	if err != nil {
		return nil, err
	}
	if err := out.rewriteNextLine(func(line string) string { return withServerCert(line, cert.Certificate[0]) }); err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		// go-plugin uses the same config to dial the host's broker.
		RootCAs:    pool,
		MinVersion: tls.VersionTLS12,
		// P-256 key exchange first: on the machines measured it costs
		// about a third less CPU per handshake (both sides together)
		// than Go's default X25519MLKEM768 hybrid, and the handshake is
		// on the path of every plugin's start. A stock go-plugin host
		// that sends no P-256 key share gets X25519 (the server prefers
		// a group it has a share for) rather than a retry. Post-quantum
		// key exchange guards recorded traffic against future
		// decryption; this connection is a local socket between two
		// processes of one user, keyed with certificates that die with
		// them.
		CurvePreferences: []tls.CurveID{tls.CurveP256, tls.X25519},
		ServerName:       "localhost",
	}, nil
}

// withServerCert puts the certificate (DER) into the handshake line
// CORE|APP|NETWORK|ADDRESS|PROTOCOL|CERT[|MUX] the way go-plugin does
// (base64, no padding) when its CERT field is empty: go-plugin leaves it
// empty when the server's TLS comes from a TLSProvider.
func withServerCert(line string, der []byte) string {
	body, nl := strings.CutSuffix(line, "\n")
	parts := strings.Split(body, "|")
	if len(parts) < 6 || parts[5] != "" {
		return line
	}
	parts[5] = base64.RawStdEncoding.EncodeToString(der)
	out := strings.Join(parts, "|")
	if nl {
		out += "\n"
	}
	return out
}

// lineRewriter changes the next line written to the process's stdout.
type lineRewriter interface {
	rewriteNextLine(func(string) string) error
}

// stdoutSwap catches go-plugin's handshake line: goplugin.Serve prints it
// with fmt.Printf right after TLSProvider returns, then points os.Stdout
// at its own pipe for module output. Until then os.Stdout is a pipe of
// ours; a goroutine reads the line from it, rewrites it and writes it to
// the real stdout, and ends. Serve prints the line unless it fails first,
// and then the process exits; so the goroutine never outlives the start.
type stdoutSwap struct{}

func (stdoutSwap) rewriteNextLine(rewrite func(string) string) error {
	stdout := os.Stdout
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("catch the handshake line: %w", err)
	}
	os.Stdout = w
	go forwardLine(r, w, stdout, rewrite)
	return nil
}

// forwardLine copies one rewritten line from r to out and closes the pipe
// (r and its writer w), which nothing writes to once the line is out.
func forwardLine(r, w *os.File, out io.Writer, rewrite func(string) string) {
	defer r.Close()
	defer w.Close()
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && line == "" {
		return
	}
	_, _ = io.WriteString(out, rewrite(line))
}
