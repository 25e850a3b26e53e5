package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	var flaky atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Version", "1.2.3")
		fmt.Fprint(w, "all good")
	})
	mux.HandleFunc("/json", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"status": "up", "n": [1, 2]}`)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s token=%s", r.Method, b, r.Header.Get("Authorization"))
	})
	mux.HandleFunc("/down", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, "maintenance")
	})
	mux.HandleFunc("/flaky", func(w http.ResponseWriter, r *http.Request) {
		if flaky.Add(1) < 3 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		fmt.Fprint(w, "up now")
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	tests := []struct {
		name         string
		cfg          CheckConfig
		wantStatus   int
		wantBody     string
		wantJSON     string
		wantAttempts int
		wantErr      string
		checkErr     bool
	}{
		{name: "ok", cfg: CheckConfig{URL: srv.URL + "/ok"}, wantStatus: 200, wantBody: "all good", wantAttempts: 1},
		{name: "body contains", cfg: CheckConfig{URL: srv.URL + "/ok", BodyContains: "good"}, wantStatus: 200, wantBody: "all good", wantAttempts: 1},
		{name: "body lacks", cfg: CheckConfig{URL: srv.URL + "/ok", BodyContains: "bad"}, wantStatus: 200, wantBody: "all good", wantAttempts: 1, wantErr: `does not contain "bad"`, checkErr: true},
		{name: "json", cfg: CheckConfig{URL: srv.URL + "/json", JSON: true}, wantStatus: 200, wantJSON: `{"status":"up","n":[1,2]}`, wantAttempts: 1},
		{name: "json invalid", cfg: CheckConfig{URL: srv.URL + "/ok", JSON: true}, wantStatus: 200, wantBody: "all good", wantAttempts: 1, wantErr: "not valid JSON: invalid character 'a'", checkErr: true},
		{name: "method body headers", cfg: CheckConfig{URL: srv.URL + "/echo", Method: "post", Body: "payload", Headers: map[string]string{"Authorization": "t0k"}}, wantStatus: 200, wantBody: "POST payload token=t0k", wantAttempts: 1},
		{name: "bad status", cfg: CheckConfig{URL: srv.URL + "/down"}, wantStatus: 503, wantBody: "maintenance", wantAttempts: 1, wantErr: "status 503, expected 2xx", checkErr: true},
		{name: "expected status", cfg: CheckConfig{URL: srv.URL + "/down", ExpectStatus: []int{503}}, wantStatus: 503, wantBody: "maintenance", wantAttempts: 1},
		{name: "wait until up", cfg: CheckConfig{URL: srv.URL + "/flaky", Wait: time.Minute, Interval: ptr(time.Millisecond)}, wantStatus: 200, wantBody: "up now", wantAttempts: 3},
		{name: "wait gives up", cfg: CheckConfig{URL: srv.URL + "/down", Wait: 50 * time.Millisecond, Interval: ptr(10 * time.Millisecond)}, wantStatus: 503, wantBody: "maintenance", wantErr: "status 503", checkErr: true},
		// A wait shorter than the interval still tries again as it ends.
		{name: "last attempt at the wait's end", cfg: CheckConfig{URL: srv.URL + "/down", Wait: time.Second, Interval: ptr(time.Hour)}, wantStatus: 503, wantBody: "maintenance", wantAttempts: 2, wantErr: "after 2 attempts", checkErr: true},
		{name: "timeout", cfg: CheckConfig{URL: srv.URL + "/slow", Timeout: ptr(50 * time.Millisecond)}, wantAttempts: 1, wantErr: "/slow: no response within 50ms (request_timeout): context deadline exceeded"},
		{name: "connection refused", cfg: CheckConfig{URL: "http://127.0.0.1:1/"}, wantAttempts: 1, wantErr: "GET http://127.0.0.1:1/: dial tcp 127.0.0.1:1: connect: connection refused"},
		{name: "bad url", cfg: CheckConfig{URL: "ftp://x"}, wantErr: "must start with http:// or https://"},
		{name: "bad expect", cfg: CheckConfig{URL: srv.URL, ExpectStatus: []int{42}}, wantErr: "42 is not an HTTP status"},
		{name: "empty expect", cfg: CheckConfig{URL: srv.URL, ExpectStatus: []int{}}, wantErr: "expect_status is empty, so no response could pass"},
		{name: "zero request_timeout", cfg: CheckConfig{URL: srv.URL, Timeout: ptr(0)}, wantErr: "request_timeout must be more than 0s (it is 0s); leave it out for the default, 30s"},
		{name: "zero interval", cfg: CheckConfig{URL: srv.URL, Wait: time.Second, Interval: ptr(0)}, wantErr: "interval must be more than 0s (it is 0s); leave it out for the default, 1s"},
		{name: "negative wait", cfg: CheckConfig{URL: srv.URL, Wait: -time.Second}, wantErr: "wait must not be negative (it is -1s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs []string
			res, err := Check(context.Background(), srv.Client(), tt.cfg, func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) })
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Check: %v", err)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				var ce *CheckError
				if errors.As(err, &ce) != tt.checkErr {
					t.Errorf("CheckError = %v, want %v", !tt.checkErr, tt.checkErr)
				}
			}
			if res.Status != tt.wantStatus || (tt.wantBody != "" && res.Body != tt.wantBody) {
				t.Errorf("status, body = %d, %q; want %d, %q", res.Status, res.Body, tt.wantStatus, tt.wantBody)
			}
			if tt.wantJSON != "" && string(res.JSON) != tt.wantJSON {
				t.Errorf("json = %s, want %s", res.JSON, tt.wantJSON)
			}
			if tt.wantAttempts != 0 && res.Attempts != tt.wantAttempts {
				t.Errorf("attempts = %d, want %d", res.Attempts, tt.wantAttempts)
			}
			if res.Attempts > 1 && len(logs) != res.Attempts-1 {
				t.Errorf("logged %d retries for %d attempts: %q", len(logs), res.Attempts, logs)
			}
		})
	}
	t.Run("headers", func(t *testing.T) {
		res, err := Check(context.Background(), srv.Client(), CheckConfig{URL: srv.URL + "/ok"}, t.Logf)
		if err != nil {
			t.Fatal(err)
		}
		if res.Headers["X-Version"] != "1.2.3" {
			t.Errorf("headers = %v, want X-Version 1.2.3", res.Headers)
		}
	})
}

func TestCheckCancelledWhileWaiting(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	logf := func(string, ...any) { cancel() } // cancel on the first retry
	_, err := Check(ctx, srv.Client(), CheckConfig{URL: srv.URL, Wait: 10 * time.Hour, Interval: ptr(time.Hour)}, logf)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// body_contains searches the whole body, past the part the result keeps,
// including a match that straddles two reads.
func TestBodyContainsSearchesPastTheKeptBody(t *testing.T) {
	big := strings.Repeat("z", 2*MaxBodyBytes+12345) + "READY" + strings.Repeat("z", 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, big) }))
	defer srv.Close()
	res, err := Check(context.Background(), srv.Client(), CheckConfig{URL: srv.URL, BodyContains: "READY"}, t.Logf)
	if err != nil {
		t.Fatalf("READY past the kept body: %v", err)
	}
	if !res.BodyTruncated || len(res.Body) != MaxBodyBytes {
		t.Errorf("kept body %d bytes, truncated %v; want the first %d", len(res.Body), res.BodyTruncated, MaxBodyBytes)
	}
	_, err = Check(context.Background(), srv.Client(), CheckConfig{URL: srv.URL, BodyContains: "NOPE"}, t.Logf)
	if want := fmt.Sprintf("all %d bytes searched", len(big)); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want one saying %q", err, want)
	}
	// Straddling: the text starts in the kept part and ends after it.
	edge := strings.Repeat("z", MaxBodyBytes-2) + "READY"
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, edge) }))
	defer srv2.Close()
	if _, err := Check(context.Background(), srv2.Client(), CheckConfig{URL: srv2.URL, BodyContains: "READY"}, t.Logf); err != nil {
		t.Fatalf("READY across the kept body's end: %v", err)
	}
}

func ptr(d time.Duration) *time.Duration { return &d }

// The pause before a retry is logged in whole milliseconds, also when it
// is cut to the wait's end, which the clock gives to the nanosecond.
func TestRetryPauseLoggedInMilliseconds(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var line string
	logf := func(format string, args ...any) { line = fmt.Sprintf(format, args...); cancel() }
	// The interval is longer than the wait: the pause is what is left of it.
	_, _ = Check(ctx, srv.Client(), CheckConfig{URL: srv.URL, Wait: 30*time.Minute + 123457, Interval: ptr(time.Hour)}, logf)
	_, after, ok := strings.Cut(line, "retrying in ")
	if !ok {
		t.Fatalf("no retry logged: %q", line)
	}
	d, err := time.ParseDuration(after)
	if err != nil || d != d.Round(time.Millisecond) {
		t.Errorf("logged pause %q (%v), want whole milliseconds", after, err)
	}
}
