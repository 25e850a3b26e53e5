"""Tests of the Plugin service over a real in-process gRPC server: config
checks, failures of every kind, streaming, cancellation and Await."""

import io
import json
import os
import tempfile
import threading
import unittest
from concurrent import futures

import grpc

from modpipe.plugin.v1 import plugin_pb2, plugin_pb2_grpc
from modpipe_plugin import hclog
from modpipe_plugin.service import Attribute, Diagnostic, Failure, Kind, PluginService


class Echo(Kind):
    """Fails, raises, blocks or returns what its config says."""

    name = "echo"
    result_type = "test.echo/v1"
    result_schema = '["object",{"module":"string","deps":["list","string"]}]'
    attributes = (Attribute("mode", '"string"', "what to do", required=True),)

    def __init__(self):
        self.started = threading.Event()

    def validate(self, config):
        if config.get("mode") not in ("ok", "fail", "raise", "nan", "block"):
            return [Diagnostic("bad mode", attribute="mode")]
        return []

    def run(self, module, config):
        mode = config["mode"]
        module.stdout("one\ntwo")
        module.stderr("err line")
        if mode == "fail":
            raise Failure("it failed", value={"partial": True})
        if mode == "raise":
            raise KeyError("oops")
        if mode == "nan":
            return {"x": float("nan")}
        if mode == "block":
            self.started.set()
            while True:
                module.check_cancelled()
                module.cancelled.wait(0.05)
        return {"module": module.name, "deps": module.dependencies}


class Other(Kind):
    name = "other"
    default = True
    result_type = "test.other/v1"

    def run(self, module, config):
        return None


class ServiceTest(unittest.TestCase):
    def setUp(self):
        self.echo = Echo()
        self.service = PluginService("test", "1.2.3", [self.echo, Other()], hclog.new_logger("test", io.StringIO()))
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        plugin_pb2_grpc.add_PluginServicer_to_server(self.service, self.server)
        self.dir = tempfile.TemporaryDirectory()
        target = "unix:" + os.path.join(self.dir.name, "s.sock")
        self.server.add_insecure_port(target)
        self.server.start()
        self.channel = grpc.insecure_channel(target)
        self.stub = plugin_pb2_grpc.PluginStub(self.channel)

    def tearDown(self):
        self.service.stop()
        self.channel.close()
        self.server.stop(None).wait()
        self.dir.cleanup()

    def execute(self, mode, execution_id="1"):
        events = list(self.stub.Execute(plugin_pb2.ExecuteRequest(
            module="m", kind="echo", config_json=json.dumps({"mode": mode}), dependencies=["a"],
            execution_id=execution_id), timeout=60))
        self.assertTrue(events and events[-1].HasField("result"), "the stream ends with a result")
        self.assertEqual(sum(1 for e in events if e.HasField("result")), 1, "exactly one result")
        return [e.line for e in events[:-1]], events[-1].result

    def test_describe(self):
        d = self.stub.Describe(plugin_pb2.DescribeRequest(), timeout=60)
        self.assertEqual((d.name, d.version, d.protocol_version), ("test", "1.2.3", 1))
        self.assertEqual([(k.name, k.default, k.result_type) for k in d.kinds],
                         [("echo", False, "test.echo/v1"), ("other", True, "test.other/v1")])
        self.assertEqual([(a.name, a.type, a.required) for a in d.kinds[0].attributes], [("mode", '"string"', True)])
        # A kind that declares no result_schema sends none: the host checks nothing of its results.
        self.assertEqual([k.result_schema for k in d.kinds], [Echo.result_schema, ""])

    def test_validate(self):
        tests = [
            ('{"mode": "ok"}', []),
            ('{"mode": "nope"}', [("mode", "bad mode")]),
            ("[1]", [("", "Config is not a JSON object")]),
            ("{", [("", "Config is not valid JSON")]),
        ]
        for config, want in tests:
            with self.subTest(config=config):
                r = self.stub.Validate(plugin_pb2.ValidateRequest(kind="echo", config_json=config), timeout=60)
                self.assertEqual([(d.attribute, d.summary) for d in r.diagnostics], want)
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub.Validate(plugin_pb2.ValidateRequest(kind="nope", config_json="{}"), timeout=60)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertIn("echo, other", cm.exception.details())

    def test_validate_many(self):
        configs = ['{"mode": "ok"}', '{"mode": "nope"}', "[1]"]
        r = self.stub.ValidateMany(plugin_pb2.ValidateManyRequest(
            requests=[plugin_pb2.ValidateRequest(kind="echo", config_json=c) for c in configs]), timeout=60)
        self.assertEqual([[(d.attribute, d.summary) for d in v.diagnostics] for v in r.responses],
                         [[], [("mode", "bad mode")], [("", "Config is not a JSON object")]])
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub.ValidateMany(plugin_pb2.ValidateManyRequest(requests=[
                plugin_pb2.ValidateRequest(kind="echo", config_json="{}"),
                plugin_pb2.ValidateRequest(kind="nope", config_json="{}")]), timeout=60)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_execute_outcomes(self):
        lines, r = self.execute("ok")
        self.assertEqual([(l.stream, l.text) for l in lines],
                         [(plugin_pb2.STREAM_STDOUT, "one"), (plugin_pb2.STREAM_STDOUT, "two"),
                          (plugin_pb2.STREAM_STDERR, "err line")])
        self.assertTrue(r.succeeded)
        self.assertEqual((r.type, json.loads(r.value_json)), ("test.echo/v1", {"module": "m", "deps": ["a"]}))

        tests = [
            ("fail", "module", "it failed", {"partial": True}),
            ("raise", "crash", "module \"m\" (kind \"echo\") raised KeyError", None),
            ("nan", "encoding", "encode the result of module \"m\"", None),
            ("bad", "config", "invalid configuration: mode: bad mode", None),
        ]
        for mode, kind, message, value in tests:
            with self.subTest(mode=mode):
                _, r = self.execute(mode)
                self.assertFalse(r.succeeded)
                self.assertEqual(r.error.kind, kind)
                self.assertIn(message, r.error.message)
                self.assertEqual(json.loads(r.value_json) if r.value_json else None, value)
        _, r = self.execute("raise")
        self.assertIn("Traceback", r.error.tail, "a crash carries the Python traceback")
        _, r = self.execute("fail")
        self.assertEqual(r.error.tail, "one\ntwo\nerr line", "a failure carries the last output lines")

    def test_cancel_then_await(self):
        call = self.stub.Execute(plugin_pb2.ExecuteRequest(
            module="m", kind="echo", config_json='{"mode": "block"}', execution_id="7"), timeout=60)
        first = next(call)
        self.assertEqual(first.line.text, "one")
        self.assertTrue(self.echo.started.wait(60))
        call.cancel()
        # Await returns only once the module's thread has ended.
        self.stub.Await(plugin_pb2.AwaitRequest(execution_id="7"), timeout=60)
        with self.service._lock:
            self.assertNotIn("7", self.service._running)
            self.assertEqual(len(self.service._workers), 0)
        # Unknown ids return at once.
        self.stub.Await(plugin_pb2.AwaitRequest(execution_id="nope"), timeout=60)

    def test_stop_cancels_running_modules(self):
        call = self.stub.Execute(plugin_pb2.ExecuteRequest(
            module="m", kind="echo", config_json='{"mode": "block"}', execution_id="8"), timeout=60)
        next(call)
        self.assertTrue(self.echo.started.wait(60))
        self.service.stop(timeout=60)
        events = list(call)
        self.assertEqual(events[-1].result.error.kind, "cancelled")

    def test_result_without_dependency(self):
        from modpipe_plugin.service import Module
        m = Module(plugin_pb2.ExecuteRequest(module="m", dependencies=["b[linux]", "c"]), None,
                   threading.Event(), lambda: None)
        for dep, want in (("a", "is not a dependency of module \"m\" (its dependencies: b[linux], c)"),
                          ("b", "is a matrix module; name one instance of it: b[linux]")):
            with self.subTest(dep=dep):
                with self.assertRaises(Failure) as cm:
                    m.result(dep)
                self.assertIn(want, str(cm.exception))
                self.assertEqual(cm.exception.kind, "config")


if __name__ == "__main__":
    unittest.main()
