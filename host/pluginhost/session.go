package pluginhost

import (
	"context"
	"errors"
	"io"
	"sync"

	"google.golang.org/grpc"

	pluginv1 "github.com/modpipe/modpipe/proto/pluginv1"
)

// session is the Session stream of one plugin process. Every module the
// Plugin runs in that process goes over it when the plugin serves it, in
// place of an Execute call of its own: a new HTTP/2 stream per module
// (headers, flow-control state, goroutines on both sides) was most of the
// host's CPU per module in the benchmark's DAG of /bin/true modules.
type session struct {
	pr     *process
	stream grpc.BidiStreamingClient[pluginv1.SessionRequest, pluginv1.SessionEvent]
	cancel context.CancelFunc
	done   chan struct{} // closed when read has returned

	sendMu sync.Mutex // a gRPC stream's Send is not safe for concurrent use

	mu    sync.Mutex
	calls map[string]*sessionCall // execution id -> its events; nil once ended
	err   error                   // why the stream ended
}

// sessionCall queues one module's events until its Execute call takes
// them. The queue is unbounded so that a caller slow to take its lines
// never holds up the other modules on the stream; the module's own output
// bounds it.
type sessionCall struct {
	ready chan struct{} // capacity 1: something was queued since the last take

	mu     sync.Mutex
	events []*pluginv1.ExecuteEvent
	err    error // the stream ended
}

func (c *sessionCall) push(ev *pluginv1.ExecuteEvent, err error) {
	c.mu.Lock()
	if ev != nil {
		c.events = append(c.events, ev)
	}
	if err != nil {
		c.err = err
	}
	c.mu.Unlock()
	select {
	case c.ready <- struct{}{}:
	default:
	}
}

// take returns the events queued so far and the stream's error, if it
// ended; events come first, they were sent before it ended.
func (c *sessionCall) take(buf []*pluginv1.ExecuteEvent) ([]*pluginv1.ExecuteEvent, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	buf = append(buf[:0], c.events...)
	clear(c.events)
	c.events = c.events[:0]
	return buf, c.err
}

// openSession opens the Session stream on pr's connection and starts the
// goroutine that routes its events; close stops it.
func openSession(pr *process) (*session, error) {
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := pr.rpc.Session(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	s := &session{pr: pr, stream: stream, cancel: cancel, done: make(chan struct{}), calls: map[string]*sessionCall{}}
	go s.read()
	return s, nil
}

// read routes each event to its call until the stream ends, then fails
// every call still waiting with the stream's error.
func (s *session) read() {
	defer close(s.done)
	for {
		ev, err := s.stream.Recv()
		if err != nil {
			s.mu.Lock()
			s.err = err
			calls := s.calls
			s.calls = nil
			s.mu.Unlock()
			for _, c := range calls {
				c.push(nil, err)
			}
			return
		}
		id := ev.GetExecutionId()
		s.mu.Lock()
		c := s.calls[id]
		if _, final := ev.GetEvent().GetEvent().(*pluginv1.ExecuteEvent_Result); final {
			delete(s.calls, id)
		}
		s.mu.Unlock()
		// A call that gave up (cancelled) is gone: its late events are
		// dropped, as a cancelled Execute stream drops them.
		if c != nil && ev.GetEvent() != nil {
			c.push(ev.GetEvent(), nil)
		}
	}
}

// ended reports whether the stream has ended.
func (s *session) ended() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls == nil
}

// start registers the call and sends its request.
func (s *session) start(req *pluginv1.ExecuteRequest) (*sessionCall, error) {
	c := &sessionCall{ready: make(chan struct{}, 1)}
	id := req.GetExecutionId()
	s.mu.Lock()
	if s.calls == nil {
		err := s.err
		s.mu.Unlock()
		return nil, err
	}
	s.calls[id] = c
	s.mu.Unlock()
	if err := s.send(&pluginv1.SessionRequest{Request: &pluginv1.SessionRequest_Execute{Execute: req}}); err != nil {
		s.forget(id)
		return nil, err
	}
	return c, nil
}

// cancelCall asks the plugin to cancel a module and stops routing its
// events. A failed send means the stream ended, which cancels the module
// in the plugin too.
// requestCancel asks the plugin to cancel a module and keeps routing its
// events: what the module writes while it stops, and its result, still
// reach the caller.
func (s *session) requestCancel(id string) error {
	return s.send(&pluginv1.SessionRequest{Request: &pluginv1.SessionRequest_Cancel{Cancel: id}})
}

func (s *session) cancelCall(id string) {
	s.forget(id)
	_ = s.send(&pluginv1.SessionRequest{Request: &pluginv1.SessionRequest_Cancel{Cancel: id}})
}

func (s *session) forget(id string) {
	s.mu.Lock()
	delete(s.calls, id)
	s.mu.Unlock()
}

func (s *session) send(m *pluginv1.SessionRequest) error {
	s.sendMu.Lock()
	err := s.stream.Send(m)
	s.sendMu.Unlock()
	if errors.Is(err, io.EOF) {
		// Send reports only that the stream ended; Recv has the reason.
		<-s.done
		s.mu.Lock()
		err = s.err
		s.mu.Unlock()
	}
	return err
}

// close ends the stream, which cancels every module still running on it,
// and waits for read to return.
func (s *session) close() {
	s.cancel()
	<-s.done
}
