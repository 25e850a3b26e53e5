"""modpipe's Plugin service (proto/modpipe/plugin/v1/plugin.proto) over a
set of module kinds: the Python counterpart of the Go sdk.

A kind (see Kind) declares its attributes, checks a config (validate) and
runs a module (run). PluginService turns that into Describe, Validate,
Execute and Await: it decodes the config JSON, streams the module's output
lines, honours cancellation, turns exceptions into failed results and lets a
module fetch a dependency's envelope from the host through the broker.
"""

import json
import queue
import threading
import traceback

import grpc

from modpipe.plugin.v1 import plugin_pb2, plugin_pb2_grpc
from modpipe_plugin import hclog

PROTOCOL_VERSION = 1

# Error kinds of the envelope (coordinator/envelope.go).
ERROR_MODULE = "module"
ERROR_CONFIG = "config"
ERROR_CRASH = "crash"
ERROR_ENCODING = "encoding"
ERROR_CANCELLED = "cancelled"

# How often a streaming call looks up from its queue to see whether the
# host cancelled it. Only bounds the reaction time to a cancellation.
_POLL_SECONDS = 0.2

# How many output lines a failure's tail carries.
_TAIL_LINES = 20

# GET_RESULT_TIMEOUT bounds one Host.GetResult call.
GET_RESULT_TIMEOUT = 60.0


class Attribute:
    """One configuration attribute of a kind. type_json is go-cty's JSON
    type encoding: '"string"', '["list","string"]', '["map","string"]'."""

    def __init__(self, name, type_json, doc, required=False):
        self.name = name
        self.type_json = type_json
        self.doc = doc
        self.required = required


class Diagnostic:
    """A problem in a module's config. attribute is the attribute's path
    ("template", "values.name"); the host points at that attribute in the
    pipeline file."""

    def __init__(self, summary, detail="", attribute="", warning=False):
        self.summary = summary
        self.detail = detail
        self.attribute = attribute
        self.warning = warning

    def __repr__(self):
        return "Diagnostic(%r, attribute=%r)" % (self.summary, self.attribute)

    def to_proto(self):
        sev = plugin_pb2.SEVERITY_WARNING if self.warning else plugin_pb2.SEVERITY_ERROR
        return plugin_pb2.Diagnostic(severity=sev, summary=self.summary, detail=self.detail, attribute=self.attribute)


class Failure(Exception):
    """Ends a module as failed. kind is an envelope error kind; value, when
    set, is returned with the failure (a partial result)."""

    def __init__(self, message, kind=ERROR_MODULE, value=None, tail=""):
        super().__init__(message)
        self.kind = kind
        self.value = value
        self.tail = tail


class Cancelled(Exception):
    """Raised by Module.check_cancelled once the host cancelled the module."""


class Kind:
    """A module kind. Subclasses set name, result_type, doc, attributes
    (and default = True for the plugin's default kind) and implement
    validate and run. result_schema, when set, is the type of run's
    values in go-cty's JSON type encoding, as an attribute's type
    ('["object",{"text":"string"}]'): the host then refuses a reference to
    a field the result does not have (module.x.value.txet) before anything
    runs. Declare "dynamic" for any part whose shape varies; "" declares
    nothing, and nothing is checked."""

    name = ""
    result_type = ""
    result_schema = ""
    doc = ""
    default = False
    attributes = ()

    def validate(self, config):
        """Returns a list of Diagnostic for config (a dict; attributes the
        module does not set are absent or None). Called by Validate and again
        before every run, since a config that refers to other modules'
        results is only known then."""
        return []

    def run(self, module, config):
        """Runs one module and returns its result value (JSON-encodable).
        Raise Failure to fail it; call module.check_cancelled() between
        steps."""
        raise NotImplementedError

    def describe(self):
        return plugin_pb2.ModuleKind(
            name=self.name, default=self.default, doc=self.doc, result_type=self.result_type,
            result_schema=self.result_schema,
            attributes=[plugin_pb2.Attribute(name=a.name, type=a.type_json, required=a.required, doc=a.doc)
                        for a in self.attributes])


class Module:
    """What a running module sees: its identity, its output streams, its
    cancellation and the results of its dependencies."""

    def __init__(self, request, events, cancelled, host_client):
        self.name = request.module
        self.matrix = dict(request.matrix)
        self.attempt = request.attempt
        self.instance = request.instance
        self.run_id = request.run_id
        self.dependencies = list(request.dependencies)
        self._events = events
        self._cancelled = cancelled
        self._host_client = host_client
        self._tail = []

    def _line(self, stream, text):
        for part in str(text).splitlines() or [""]:
            self._tail.append(part)
            del self._tail[:-_TAIL_LINES]
            self._events.put(plugin_pb2.ExecuteEvent(line=plugin_pb2.OutputLine(stream=stream, text=part)))

    def stdout(self, text):
        """Sends text (one or more lines) as the module's stdout."""
        self._line(plugin_pb2.STREAM_STDOUT, text)

    def stderr(self, text):
        """Sends text as the module's stderr; it also feeds a failure's tail."""
        self._line(plugin_pb2.STREAM_STDERR, text)

    def log(self, text):
        """Sends text as a log line of the module (progress, decisions)."""
        self._line(plugin_pb2.STREAM_LOG, text)

    def tail(self):
        return "\n".join(self._tail)

    @property
    def cancelled(self):
        """A threading.Event set when the host cancels the module."""
        return self._cancelled

    def check_cancelled(self):
        if self._cancelled.is_set():
            raise Cancelled()

    def result(self, module):
        """Fetches the envelope (a dict) of dependency module from the host
        through the broker. Raises Failure when it is not a dependency, has
        not finished or the host cannot be reached."""
        if module not in self.dependencies:
            instances = [d for d in self.dependencies if d.startswith(module + "[")]
            if instances:
                raise Failure("module \"%s\" is a matrix module; name one instance of it: %s"
                              % (module, ", ".join(instances)), ERROR_CONFIG)
            raise Failure("module \"%s\" is not a dependency of module \"%s\" (its dependencies: %s); reference it or add "
                          "it to depends_on" % (module, self.name, ", ".join(self.dependencies) or "none"),
                          ERROR_CONFIG)
        try:
            client = self._host_client()
            resp = client.GetResult(plugin_pb2.GetResultRequest(caller=self.name, module=module),
                                    timeout=GET_RESULT_TIMEOUT)
        except grpc.RpcError as e:
            code = e.code()
            if code == grpc.StatusCode.PERMISSION_DENIED:
                raise Failure("the host refused the result of \"%s\" to module \"%s\": not a dependency: %s"
                              % (module, self.name, e.details()), ERROR_CONFIG) from None
            if code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                raise Failure("module \"%s\" has not finished: %s" % (module, e.details())) from None
            raise Failure("fetch the result of \"%s\" from the host: %s: %s" % (module, code.name, e.details()),
                          ERROR_CRASH) from None
        except Exception as e:  # no broker connection
            raise Failure("fetch the result of \"%s\" from the host: %s" % (module, e), ERROR_CRASH) from None
        try:
            return json.loads(resp.envelope_json)
        except ValueError as e:
            raise Failure("the host sent the result envelope of \"%s\" as invalid JSON: %s" % (module, e),
                          ERROR_ENCODING) from None


class PluginService(plugin_pb2_grpc.PluginServicer):
    """Implements the Plugin service over kinds. Execute calls run each
    module in a thread of their own, owned by this service: stop() cancels
    them all and waits for them."""

    def __init__(self, name, version, kinds, logger):
        if not kinds:
            raise ValueError("a plugin needs at least one kind")
        self.name = name
        self.version = version
        self._kinds = {k.name: k for k in kinds}
        if len(self._kinds) != len(kinds):
            raise ValueError("two kinds have the same name")
        defaults = [k for k in kinds if k.default]
        if len(defaults) > 1:
            raise ValueError("more than one kind is the default")
        self._default = defaults[0] if defaults else kinds[0]
        self._log = logger
        self.broker = None  # set by the server before serving
        self._lock = threading.Lock()
        self._host_broker_id = 0
        self._running = {}  # execution id -> threading.Event set when done
        self._workers = set()  # (thread, cancel event)

    # -- the host's Host service, through the broker --------------------

    def _host_client(self, broker_id=None):
        with self._lock:
            broker_id = broker_id or self._host_broker_id
        if not broker_id:
            raise Failure("the host did not offer its result service (no broker id)", ERROR_CRASH)
        if self.broker is None:
            raise Failure("no broker connection to the host", ERROR_CRASH)
        return plugin_pb2_grpc.HostStub(self.broker.dial(broker_id))

    # -- Plugin service ----------------------------------------------------

    def _kind(self, name, context):
        if not name:
            return self._default
        kind = self._kinds.get(name)
        if kind is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "plugin \"%s\" has no module kind \"%s\" (it has: %s)"
                          % (self.name, name, ", ".join(sorted(self._kinds))))
        return kind

    def Describe(self, request, context):
        if request.host_broker_id:
            with self._lock:
                self._host_broker_id = request.host_broker_id
            # Connect now, as the protocol asks: a plugin that cannot reach
            # the host's result service should say so at start, not when a
            # module first needs a result.
            try:
                self._host_client(request.host_broker_id)
            except Exception as e:
                self._log.warning("cannot reach the host's result service; from_module will fail",
                                  extra=hclog.kv(error=str(e)))
        kinds = []
        for k in self._kinds.values():
            mk = k.describe()
            mk.default = k is self._default
            kinds.append(mk)
        return plugin_pb2.DescribeResponse(name=self.name, version=self.version,
                                           protocol_version=PROTOCOL_VERSION, kinds=kinds)

    def Validate(self, request, context):
        kind = self._kind(request.kind, context)
        config, diags = decode_config(request.config_json)
        if config is not None:
            diags = kind.validate(config)
        return plugin_pb2.ValidateResponse(diagnostics=[d.to_proto() for d in diags])

    def ValidateMany(self, request, context):
        # Validate for each config, the answers in order: one call for a
        # whole file's configs. An unknown kind fails the call, as it
        # fails a Validate call.
        return plugin_pb2.ValidateManyResponse(
            responses=[self.Validate(r, context) for r in request.requests])

    def Await(self, request, context):
        with self._lock:
            done = self._running.get(request.execution_id)
        while done is not None and context.is_active():
            if done.wait(_POLL_SECONDS):
                break
        return plugin_pb2.AwaitResponse()

    def Execute(self, request, context):
        kind = self._kind(request.kind, context)
        events = queue.Queue()
        cancelled = threading.Event()
        done = threading.Event()
        # Called when the call ends for any reason; after the result was
        # sent it changes nothing.
        context.add_callback(cancelled.set)
        if request.host_broker_id:
            with self._lock:
                self._host_broker_id = self._host_broker_id or request.host_broker_id
        module = Module(request, events, cancelled,
                        lambda: self._host_client(request.host_broker_id or None))

        worker = threading.Thread(target=self._run, args=(kind, module, request, events, done),
                                  name="module " + request.module, daemon=True)
        with self._lock:
            if request.execution_id:
                self._running[request.execution_id] = done
            self._workers.add((worker, cancelled))
        worker.start()
        try:
            while True:
                try:
                    event = events.get(timeout=_POLL_SECONDS)
                except queue.Empty:
                    if not context.is_active():
                        return  # cancelled: the worker sees it and stops on its own
                    continue
                yield event
                if event.HasField("result"):
                    return
        finally:
            if not context.is_active():
                cancelled.set()

    def _run(self, kind, module, request, events, done):
        """Runs one module in its own thread and always ends with exactly
        one result event."""
        try:
            try:
                result = self._execute(kind, module, request)
            except BaseException as e:  # a bug here must not leave the stream without its result
                result = failed(kind.result_type, Failure(
                    "plugin %s failed running module \"%s\": %s: %s" % (self.name, module.name, type(e).__name__, e),
                    ERROR_CRASH, tail=traceback.format_exc()))
            events.put(plugin_pb2.ExecuteEvent(result=result))
        finally:
            done.set()
            with self._lock:
                self._running.pop(request.execution_id, None)
                self._workers.discard((threading.current_thread(), module.cancelled))

    def _execute(self, kind, module, request):
        config, diags = decode_config(request.config_json)
        if config is not None:
            diags = kind.validate(config)
        errors = [d for d in diags if not d.warning]
        if errors:
            msg = "; ".join(("%s: %s" % (d.attribute, d.summary) if d.attribute else d.summary) for d in errors)
            return failed(kind.result_type, Failure("invalid configuration: " + msg, ERROR_CONFIG))
        if module.cancelled.is_set():
            return failed(kind.result_type, Failure("cancelled before the module started", ERROR_CANCELLED))
        try:
            value = kind.run(module, config)
        except Cancelled:
            return failed(kind.result_type, Failure("cancelled", ERROR_CANCELLED, tail=module.tail()))
        except Failure as f:
            if not f.tail:
                f.tail = module.tail()
            return failed(kind.result_type, f)
        except Exception as e:  # a bug in the kind: fail this module, keep serving the others
            self._log.error("module raised an exception", extra=hclog.kv(module=module.name, kind=kind.name,
                                                                  error=repr(e)))
            return failed(kind.result_type, Failure(
                "module \"%s\" (kind \"%s\") raised %s: %s" % (module.name, kind.name, type(e).__name__, e),
                ERROR_CRASH, tail=traceback.format_exc()))
        try:
            value_json = json.dumps(value, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as e:
            return failed(kind.result_type, Failure(
                "encode the result of module \"%s\" (kind \"%s\") as JSON: %s" % (module.name, kind.name, e), ERROR_ENCODING))
        return plugin_pb2.Result(succeeded=True, type=kind.result_type, value_json=value_json)

    def stop(self, timeout=5.0):
        """Cancels every running module and waits (up to timeout each) for
        its thread to end. Called when the host shuts the plugin down."""
        with self._lock:
            workers = list(self._workers)
        for _, cancelled in workers:
            cancelled.set()
        for thread, _ in workers:
            thread.join(timeout)


def decode_config(config_json):
    """Parses a config JSON object. Returns (dict, []) or (None, [Diagnostic])."""
    try:
        config = json.loads(config_json or "{}")
    except ValueError as e:
        return None, [Diagnostic("Config is not valid JSON", "The host sent %r: %s." % (config_json[:200], e))]
    if not isinstance(config, dict):
        return None, [Diagnostic("Config is not a JSON object", "The host sent %r." % (config_json[:200],))]
    return config, []


def failed(result_type, failure):
    value_json = ""
    if failure.value is not None:
        try:
            value_json = json.dumps(failure.value, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError):
            value_json = ""
    return plugin_pb2.Result(succeeded=False, type=result_type, value_json=value_json,
                             error=plugin_pb2.Error(message=str(failure), kind=failure.kind, tail=failure.tail))
