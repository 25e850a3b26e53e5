package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/modpipe/modpipe/proto/pluginv1"
)

// Errors Result and ResultEnvelope wrap, so a module can tell cases apart
// with errors.Is.
var (
	// ErrNotDependency: the module asked for a module it does not depend on.
	// Depend on it (reference it or list it in depends_on) first.
	ErrNotDependency = errors.New("not a dependency of this module")
	// ErrNotFinished: the dependency has no result yet.
	ErrNotFinished = errors.New("dependency has not finished")
	// ErrDependencyFailed: the dependency finished without succeeding
	// (Result only; ResultEnvelope returns the envelope).
	ErrDependencyFailed = errors.New("dependency did not succeed")
	// ErrNoModule: the context is not a module run's context.
	ErrNoModule = errors.New("no module in context: pass the ctx given to the run function")
	// ErrResultType: the dependency's result is not of the type Result
	// was asked to decode (see Result).
	ErrResultType = errors.New("result of another type")
)

// ResultTyper is implemented by a result type that names its versioned
// result type (e.g. "git.checkout/v1"), so Result can check a dependency's
// envelope against it. Types this plugin's own kinds return need not
// implement it: NewKind recorded them.
type ResultTyper interface {
	ModpipeResultType() string
}

// Envelope is a module's result record as the host publishes it. It
// mirrors the host's envelope JSON field for field.
type Envelope struct {
	Module        string          `json:"module"`
	Status        string          `json:"status"` // succeeded, failed, skipped, cancelled, timed_out
	Type          string          `json:"type"`
	Value         json.RawMessage `json:"value"`
	Error         *EnvelopeError  `json:"error"`
	SkipReason    string          `json:"skip_reason"`
	Attempts      int             `json:"attempts"`
	StartedAt     time.Time       `json:"started_at"`
	EndedAt       time.Time       `json:"ended_at"`
	DurationMS    int64           `json:"duration_ms"`
	Instance      int             `json:"instance"`
	Host          string          `json:"host"`
	Plugin        string          `json:"plugin"`
	PluginVersion string          `json:"plugin_version"`
}

// EnvelopeError is why a module did not succeed.
type EnvelopeError struct {
	Message string `json:"message"`
	Kind    string `json:"kind"`
	Tail    string `json:"tail,omitempty"`
}

// StatusSucceeded is the Envelope.Status of a module that succeeded.
const StatusSucceeded = "succeeded"

// ResultEnvelope fetches the envelope of a finished dependency of the
// running module from the host. ctx must be (derived from) the context the
// run function got. The envelope is returned whatever its status.
func ResultEnvelope(ctx context.Context, module string) (*Envelope, error) {
	m := moduleFrom(ctx)
	if m == nil {
		return nil, fmt.Errorf("fetch result of %q: %w", module, ErrNoModule)
	}
	if !slices.Contains(m.deps, module) {
		var instances []string
		for _, d := range m.deps {
			if strings.HasPrefix(d, module+"[") {
				instances = append(instances, d)
			}
		}
		if len(instances) > 0 {
			return nil, fmt.Errorf("fetch result of %q for module %q: %w: it is a matrix module, ask for one instance: %s", module, m.name, ErrNotDependency, strings.Join(instances, ", "))
		}
		deps := "it has none"
		if len(m.deps) > 0 {
			deps = "its dependencies: " + strings.Join(m.deps, ", ")
		}
		return nil, fmt.Errorf("fetch result of %q for module %q: %w (%s); depend on it first", module, m.name, ErrNotDependency, deps)
	}
	client, err := m.srv.hostClient(m.brokerID)
	if err != nil {
		return nil, fmt.Errorf("fetch result of %q: %w", module, err)
	}
	resp, err := client.GetResult(ctx, &pluginv1.GetResultRequest{Caller: m.name, Module: module})
	if err != nil {
		switch status.Code(err) {
		case codes.PermissionDenied:
			return nil, fmt.Errorf("fetch result of %q for module %q: %w: %s", module, m.name, ErrNotDependency, status.Convert(err).Message())
		case codes.NotFound, codes.FailedPrecondition:
			return nil, fmt.Errorf("fetch result of %q for module %q: %w: %s", module, m.name, ErrNotFinished, status.Convert(err).Message())
		}
		return nil, fmt.Errorf("fetch result of %q for module %q from the host: %w", module, m.name, err)
	}
	var env Envelope
	if err := json.Unmarshal([]byte(resp.GetEnvelopeJson()), &env); err != nil {
		return nil, fmt.Errorf("decode result envelope of %q: %w", module, err)
	}
	return &env, nil
}

// Result fetches the value of a finished, succeeded dependency of the
// running module and decodes it into T (with encoding/json). It fails when
// module is not a dependency, has not finished, did not succeed, or its
// value does not decode into T.
//
// When T is known to be one result type, Result also fails with
// ErrResultType when the envelope's type is another: encoding/json would
// otherwise decode, say, a shell result into a checkout struct as zero
// values without a word. T is known when it implements ResultTyper, or
// when it is the named struct type R of this plugin's kinds (NewKind[C,
// R]). Decode into a map, json.RawMessage or a struct of your own to read
// any type.
func Result[T any](ctx context.Context, module string) (T, error) {
	var out T
	env, err := ResultEnvelope(ctx, module)
	if err != nil {
		return out, err
	}
	if want := expectedResultTypes[T](moduleFrom(ctx)); len(want) > 0 && env.Type != "" && !slices.Contains(want, env.Type) {
		return out, fmt.Errorf("result of %q is of type %q, but %T is the result of type %s: %w; depend on the module that returns it, or decode the value into a map with sdk.Result[map[string]any]",
			module, env.Type, out, quoteAll(want), ErrResultType)
	}
	if env.Status != StatusSucceeded {
		msg := env.Status
		if env.Error != nil && env.Error.Message != "" {
			msg += ": " + env.Error.Message
		} else if env.SkipReason != "" {
			msg += ": " + env.SkipReason
		}
		return out, fmt.Errorf("result of %q: %w (%s)", module, ErrDependencyFailed, msg)
	}
	if len(env.Value) == 0 {
		return out, nil
	}
	if err := json.Unmarshal(env.Value, &out); err != nil {
		return out, fmt.Errorf("decode result of %q (type %q) into %T: %w", module, env.Type, out, err)
	}
	return out, nil
}

// expectedResultTypes are the result type names T stands for: its own
// (ResultTyper), or those of this plugin's kinds returning the named
// struct T. None means any type is accepted.
func expectedResultTypes[T any](m *Module) []string {
	var zero T
	if rt, ok := any(zero).(ResultTyper); ok {
		return []string{rt.ModpipeResultType()}
	}
	if rt, ok := any(&zero).(ResultTyper); ok {
		return []string{rt.ModpipeResultType()}
	}
	t := reflect.TypeFor[T]()
	if m == nil || m.srv == nil || t.Kind() != reflect.Struct || t.Name() == "" {
		return nil
	}
	var types []string
	for _, k := range m.srv.kinds {
		if k.resultGoType == t && !slices.Contains(types, k.resultType) {
			types = append(types, k.resultType)
		}
	}
	return types
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, " or ")
}
