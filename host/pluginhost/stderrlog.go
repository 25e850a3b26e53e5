package pluginhost

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// stderrLog turns the lines a plugin writes to its stderr into entries of
// the host's log, as go-plugin would, which the host no longer lets do it
// (see quietStderr): a go-hclog JSON line at its level, with its fields;
// a plain line at debug, or at the level its "[WARN]"-style prefix names;
// everything after a Go panic's first line at error.
//
// It differs from go-plugin where go-plugin fails plugins written in
// other languages: a timestamp in any RFC 3339 shape is taken (go-plugin
// wants exactly six fractional digits, and took a JavaScript
// toISOString() line for plain text at debug), and a field of an
// unexpected type is shown as it is (go-plugin panicked on a non-string
// "@message", taking the whole host down with it).
type stderrLog struct {
	log     hclog.Logger
	inPanic bool
}

// line logs one line of the plugin's stderr. It is called from one
// goroutine (lineLogger's writer), in order.
func (s *stderrLog) line(text string) {
	var raw map[string]any
	if strings.HasPrefix(text, "{") && json.Unmarshal([]byte(text), &raw) == nil {
		if _, ok := raw["@message"]; ok {
			s.entry(text, raw)
			return
		}
		if _, ok := raw["@level"]; ok {
			s.entry(text, raw)
			return
		}
	}
	switch {
	case strings.HasPrefix(text, "[TRACE]"):
		s.log.Trace(text)
	case strings.HasPrefix(text, "[DEBUG]"):
		s.log.Debug(text)
	case strings.HasPrefix(text, "[INFO]"):
		s.log.Info(text)
	case strings.HasPrefix(text, "[WARN]"):
		s.log.Warn(text)
	case strings.HasPrefix(text, "[ERROR]"):
		s.log.Error(text)
	case strings.HasPrefix(text, "panic: ") || strings.HasPrefix(text, "fatal error: "):
		s.inPanic = true
		s.log.Error(text)
	case s.inPanic:
		s.log.Error(text)
	default:
		s.log.Debug(text)
	}
}

// entry logs a go-hclog JSON line.
func (s *stderrLog) entry(text string, raw map[string]any) {
	level := hclog.NoLevel
	if l, ok := raw["@level"].(string); ok {
		switch strings.ToLower(l) {
		case "warning":
			level = hclog.Warn
		case "fatal", "critical", "panic":
			level = hclog.Error
		default:
			level = hclog.LevelFromString(l)
		}
	}
	if level == hclog.NoLevel || level == hclog.Off {
		// JSON from something other than go-hclog: verbatim.
		s.log.Debug(text)
		return
	}
	if level < s.log.GetLevel() {
		return
	}
	msg, ok := raw["@message"].(string)
	if !ok && raw["@message"] != nil {
		msg = fmt.Sprint(raw["@message"])
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		switch k {
		case "@level", "@message", "@timestamp":
		default:
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	args := make([]any, 0, 2*len(keys)+2)
	for _, k := range keys {
		args = append(args, k, raw[k])
	}
	if ts, ok := raw["@timestamp"]; ok {
		if str, isStr := ts.(string); isStr {
			if t, err := time.Parse(time.RFC3339Nano, str); err == nil {
				ts = t.Format(hclog.TimeFormat)
			}
		}
		args = append(args, "timestamp", ts)
	}
	s.log.Log(level, msg, args...)
}

// quietStderr is the logger go-plugin gets: the host's, except for the
// logger go-plugin names after the plugin binary to log its stderr,
// which is off, so that go-plugin leaves the plugin's stderr to
// stderrLog.
type quietStderr struct {
	hclog.Logger
	binary string // base name of the plugin binary
}

func newQuietStderr(logger hclog.Logger, path string) hclog.Logger {
	return &quietStderr{Logger: logger, binary: filepath.Base(path)}
}

// Named implements hclog.Logger.
func (q *quietStderr) Named(name string) hclog.Logger {
	if name == q.binary {
		return hclog.New(&hclog.LoggerOptions{Level: hclog.Off})
	}
	return q.Logger.Named(name)
}
