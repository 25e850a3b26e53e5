package etcd

import (
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/modpipe/modpipe/coordinator"
)

// pausableProxy forwards TCP connections to an etcd endpoint until
// paused; paused, it holds every byte (and new connection) without
// closing anything, like a network partition that drops packets.
type pausableProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	open   chan struct{} // closed while forwarding
	conns  []net.Conn
	closed bool
	wg     sync.WaitGroup
}

func newPausableProxy(t *testing.T, target string) *pausableProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pausableProxy{ln: ln, target: target, open: make(chan struct{})}
	close(p.open)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *pausableProxy) addr() string { return p.ln.Addr().String() }

// gate returns the channel that is closed while the proxy forwards.
func (p *pausableProxy) gate() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.open
}

func (p *pausableProxy) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open = make(chan struct{})
}

func (p *pausableProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns = append(p.conns, c)
	return true
}

func (p *pausableProxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		if !p.track(in) || !p.track(out) {
			_ = in.Close()
			_ = out.Close()
			return
		}
		p.wg.Add(2)
		go p.copy(out, in)
		go p.copy(in, out)
	}
}

// copy forwards from src to dst, holding each chunk while paused.
func (p *pausableProxy) copy(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			<-p.gate()
			if p.isClosed() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				_ = dst.Close()
			}
			return
		}
	}
}

func (p *pausableProxy) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

func (p *pausableProxy) close() {
	p.mu.Lock()
	p.closed = true
	select {
	case <-p.open:
	default:
		close(p.open)
	}
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	p.wg.Wait()
}

// A partitioned member's session ends (ErrSessionLost) before etcd expires
// its lease, observed by a second client watching its member key: its
// modules stop before the master can see it lost and hand its claims, or
// its not_in_parallel keys, to someone else.
func TestPartitionedSessionEndsBeforeLeaseExpires(t *testing.T) {
	ctx := guard(t)
	direct := newTestCoordinator(t)
	u, err := url.Parse(testServer.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newPausableProxy(t, u.Host)
	c, err := New(ctx, Config{Endpoints: []string{proxy.addr()}, Prefix: direct.cfg.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	run := uniqueRunID("partition")
	req := joinReq(run, 1)
	// An interval that does not divide the timeout: a renewal blocked on
	// the partition spans the moment etcd may expire the lease.
	req.HeartbeatInterval, req.HeartbeatTimeout = 1200*time.Millisecond, 3*time.Second
	ws, err := c.Join(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	w := ws.(*Session)
	defer w.Close()
	key := memberKey(direct.runPrefix(run), 1)
	wch := direct.cli.Watch(ctx, key)
	proxy.pause()
	for {
		select {
		case resp := <-wch:
			if err := resp.Err(); err != nil {
				t.Fatal(err)
			}
			for _, ev := range resp.Events {
				if ev.Type != clientv3.EventTypeDelete {
					continue
				}
				select {
				case <-w.Done():
				default:
					t.Fatal("etcd expired the member's lease while its session still ran")
				}
				if !errors.Is(w.Err(), coordinator.ErrSessionLost) {
					t.Fatalf("Err = %v, want ErrSessionLost", w.Err())
				}
				return
			}
		case <-ctx.Done():
			t.Fatal("the member key was never deleted")
		}
	}
}
