package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/modpipe/modpipe/sdk"
)

// CheckResultType is the versioned name of the check kind's result.
const CheckResultType = "http.check/v1"

// MaxBodyBytes caps the response body kept in the result.
const MaxBodyBytes = 1 << 20

// CheckConfig is the configuration of the check kind.
type CheckConfig struct {
	URL          string            `modpipe:"url" doc:"URL to request."`
	Method       string            `modpipe:"method,optional" doc:"HTTP method; default GET."`
	Headers      map[string]string `modpipe:"headers,optional" doc:"Request headers."`
	Body         string            `modpipe:"body,optional" doc:"Request body."`
	ExpectStatus []int             `modpipe:"expect_status,optional" doc:"Acceptable status codes; default any 2xx."`
	BodyContains string            `modpipe:"body_contains,optional" doc:"Text the response body must contain."`
	JSON         bool              `modpipe:"json,optional" doc:"Parse the response body as JSON into the result's json attribute; invalid JSON fails the check."`
	// Not "timeout": that name is the host's meta-argument for the whole
	// module.
	// Timeout and Interval are pointers so that "0s", which would mean
	// no timeout or no pause (a request that may hang forever, a retry
	// loop that hammers the server), is refused rather than taken for
	// the default.
	Timeout  *time.Duration `modpipe:"request_timeout,optional" doc:"Timeout of one request, e.g. \"10s\"; default 30s. The module's own timeout meta-argument bounds the whole check."`
	Wait     time.Duration  `modpipe:"wait,optional" doc:"Keep retrying a failing check for up to this long (e.g. \"2m\" to wait for a service to come up); default no retry."`
	Interval *time.Duration `modpipe:"interval,optional" doc:"Pause between retries when wait is set; default 1s."`
}

// Defaults of the optional durations.
const (
	defaultRequestTimeout = 30 * time.Second
	defaultInterval       = time.Second
)

// Validate checks what the schema cannot.
func (c CheckConfig) Validate() error {
	// Each error names its attribute, so the host points at its line.
	if c.Method != "" && strings.IndexFunc(c.Method, notTokenRune) >= 0 {
		return sdk.AttributeError("method", "method %q is not an HTTP method name (letters such as GET, POST, PUT; no spaces or separators)", c.Method)
	}
	if !strings.HasPrefix(c.URL, "http://") && !strings.HasPrefix(c.URL, "https://") {
		return sdk.AttributeError("url", "url %q must start with http:// or https://", c.URL)
	}
	if u, err := url.Parse(c.URL); err != nil {
		return sdk.AttributeError("url", "url %q is not a valid URL: %v", c.URL, errors.Unwrap(err))
	} else if u.Host == "" {
		return sdk.AttributeError("url", "url %q names no host", c.URL)
	}
	for name := range c.Headers {
		if name == "" || strings.IndexFunc(name, notTokenRune) >= 0 {
			return sdk.AttributeError("headers", "header name %q is not valid: letters, digits and -, no spaces or separators", name)
		}
	}
	if c.ExpectStatus != nil && len(c.ExpectStatus) == 0 {
		return sdk.AttributeError("expect_status", "expect_status is empty, so no response could pass: list the status codes to accept, or leave it out to accept any 2xx")
	}
	for _, s := range c.ExpectStatus {
		if s < 100 || s > 599 {
			return sdk.AttributeError("expect_status", "expect_status: %d is not an HTTP status code (100-599)", s)
		}
	}
	if c.Wait < 0 {
		return sdk.AttributeError("wait", "wait must not be negative (it is %s)", c.Wait)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{{"request_timeout", c.Timeout, defaultRequestTimeout}, {"interval", c.Interval, defaultInterval}} {
		if d.v != nil && *d.v <= 0 {
			return sdk.AttributeError(d.name, "%s must be more than 0s (it is %s); leave it out for the default, %s", d.name, *d.v, d.def)
		}
	}
	return nil
}

// durationOr is *d, or def when d is nil.
func durationOr(d *time.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return *d
}

// notTokenRune reports a rune that cannot be in an HTTP token (a method or
// a header name, RFC 9110).
func notTokenRune(r rune) bool {
	return r <= ' ' || r >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", r)
}

// CheckResult is the value of a finished check.
type CheckResult struct {
	URL    string `json:"url"`
	Status int    `json:"status"`
	// Headers holds the response headers (first value of each), with
	// canonical names.
	Headers map[string]string `json:"headers"`
	// Body is the response body, at most MaxBodyBytes of it.
	Body          string          `json:"body"`
	BodyTruncated bool            `json:"body_truncated"`
	JSON          json.RawMessage `json:"json"`
	// Attempts counts requests made (more than one only with wait).
	Attempts  int   `json:"attempts"`
	ElapsedMS int64 `json:"elapsed_ms"`
}

// CheckError is a check whose response did not meet the expectations.
type CheckError struct {
	Message string
	// Body is the start of the response body, worth showing with the error.
	Body string
}

func (e *CheckError) Error() string { return e.Message }

// Check requests the URL until the response meets the expectations or the
// wait is over, logging each failed attempt to logf.
func Check(ctx context.Context, client *http.Client, cfg CheckConfig, logf func(string, ...any)) (CheckResult, error) {
	if err := cfg.Validate(); err != nil {
		return CheckResult{}, err
	}
	timeout := durationOr(cfg.Timeout, defaultRequestTimeout)
	interval := durationOr(cfg.Interval, defaultInterval)
	start := time.Now()
	deadline := start.Add(cfg.Wait)
	for attempt := 1; ; attempt++ {
		res, err := checkOnce(ctx, client, cfg, timeout)
		res.Attempts = attempt
		res.ElapsedMS = time.Since(start).Milliseconds()
		left := time.Until(deadline)
		if err == nil || ctx.Err() != nil || cfg.Wait == 0 || left <= 0 {
			if err != nil && attempt > 1 {
				err = fmt.Errorf("%w (after %d attempts over %s)", err, attempt, time.Since(start).Round(time.Millisecond))
			}
			return res, err
		}
		// The last pause is cut to the deadline, so the last attempt
		// comes as the wait ends rather than an interval before it.
		pause := min(interval, left)
		// The pause to the deadline has the clock's nanoseconds: the log
		// shows milliseconds, as the interval's pauses read.
		logf("attempt %d: %v; retrying in %s", attempt, err, pause.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("%s %s: %w", cfg.method(), cfg.URL, ctx.Err())
		case <-time.After(pause):
		}
	}
}

func (c CheckConfig) method() string {
	if c.Method == "" {
		return http.MethodGet
	}
	return strings.ToUpper(c.Method)
}

func checkOnce(ctx context.Context, client *http.Client, cfg CheckConfig, timeout time.Duration) (CheckResult, error) {
	res := CheckResult{URL: cfg.URL, Headers: map[string]string{}}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if cfg.Body != "" {
		body = strings.NewReader(cfg.Body)
	}
	req, err := http.NewRequestWithContext(ctx, cfg.method(), cfg.URL, body)
	if err != nil {
		return res, fmt.Errorf("build the request %s %s: %w", cfg.method(), cfg.URL, err)
	}
	keys := make([]string, 0, len(cfg.Headers))
	for k := range cfg.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.EqualFold(k, "Host") {
			req.Host = cfg.Headers[k]
			continue
		}
		req.Header.Set(k, cfg.Headers[k])
	}
	resp, err := client.Do(req)
	if err != nil {
		// A *url.Error repeats the method and URL we already say.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil && !errors.Is(context.Cause(ctx), context.Canceled) {
			return res, fmt.Errorf("%s %s: no response within %s (request_timeout): %w", cfg.method(), cfg.URL, timeout, err)
		}
		return res, fmt.Errorf("%s %s: %w", cfg.method(), cfg.URL, err)
	}
	defer resp.Body.Close()
	res.Status = resp.StatusCode
	for k, v := range resp.Header {
		if len(v) > 0 {
			res.Headers[k] = v[0]
		}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes+1))
	if err != nil {
		return res, fmt.Errorf("%s %s: read the response body: %w", cfg.method(), cfg.URL, err)
	}
	// body_contains looks at the whole body, not only the part the
	// result keeps: the rest is read and searched as it streams.
	contains, searched, complete := true, int64(len(b)), len(b) <= MaxBodyBytes
	if cfg.BodyContains != "" {
		contains = bytes.Contains(b, []byte(cfg.BodyContains))
		if !contains && !complete {
			var rerr error
			contains, searched, complete, rerr = searchRest(resp.Body, b, cfg.BodyContains)
			if rerr != nil {
				return res, fmt.Errorf("%s %s: read the response body: %w", cfg.method(), cfg.URL, rerr)
			}
		}
	}
	if len(b) > MaxBodyBytes {
		b = b[:MaxBodyBytes]
		res.BodyTruncated = true
	}
	res.Body = string(b)

	if !statusOK(resp.StatusCode, cfg.ExpectStatus) {
		return res, &CheckError{
			Message: fmt.Sprintf("%s %s: status %d, expected %s", cfg.method(), cfg.URL, resp.StatusCode, expected(cfg.ExpectStatus)),
			Body:    head(res.Body, 2048),
		}
	}
	if !contains {
		where := ""
		switch {
		case !complete:
			where = fmt.Sprintf(" in its first %d bytes (the most the check reads)", searched)
		case res.BodyTruncated:
			where = fmt.Sprintf(" (all %d bytes searched; the result keeps the first %d)", searched, MaxBodyBytes)
		}
		return res, &CheckError{
			Message: fmt.Sprintf("%s %s: the response body does not contain %q%s", cfg.method(), cfg.URL, cfg.BodyContains, where),
			Body:    head(res.Body, 2048),
		}
	}
	if cfg.JSON {
		if res.BodyTruncated {
			return res, fmt.Errorf("%s %s: the body is larger than %d bytes, too large to parse as JSON", cfg.method(), cfg.URL, MaxBodyBytes)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, b); err != nil {
			return res, &CheckError{
				Message: fmt.Sprintf("%s %s: the response body is not valid JSON: %v", cfg.method(), cfg.URL, jsonErr(b)),
				Body:    head(res.Body, 2048),
			}
		}
		res.JSON = compact.Bytes()
	}
	return res, nil
}

// MaxSearchBytes bounds how much of a body body_contains reads: a
// response that never ends must not hold the module forever.
const MaxSearchBytes = 256 << 20

// searchRest goes on searching for text in the body after its first part,
// seen, keeping only the bytes a match could straddle. It returns whether
// text was found, how many bytes were searched in all, and whether that
// was the whole body.
func searchRest(body io.Reader, seen []byte, text string) (found bool, searched int64, complete bool, err error) {
	needle := []byte(text)
	keep := len(needle) - 1
	tail := append([]byte(nil), seen[max(0, len(seen)-keep):]...)
	searched = int64(len(seen))
	buf := make([]byte, 64<<10)
	for searched < MaxSearchBytes {
		n, rerr := body.Read(buf[:min(int64(len(buf)), MaxSearchBytes-searched)])
		if n > 0 {
			searched += int64(n)
			window := append(tail, buf[:n]...)
			if bytes.Contains(window, needle) {
				return true, searched, false, nil
			}
			tail = append(tail[:0], window[max(0, len(window)-keep):]...)
		}
		if rerr == io.EOF {
			return false, searched, true, nil
		}
		if rerr != nil {
			return false, searched, false, rerr
		}
	}
	return false, searched, false, nil
}

// jsonErr explains why b is not JSON (Unmarshal's message names the
// offending character, Compact's does not always).
func jsonErr(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	return errors.New("invalid JSON")
}

func statusOK(code int, expect []int) bool {
	if len(expect) == 0 {
		return code >= 200 && code <= 299
	}
	for _, s := range expect {
		if s == code {
			return true
		}
	}
	return false
}

func expected(expect []int) string {
	if len(expect) == 0 {
		return "2xx"
	}
	parts := make([]string, len(expect))
	for i, s := range expect {
		parts[i] = fmt.Sprint(s)
	}
	return "one of " + strings.Join(parts, ", ")
}

func head(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
