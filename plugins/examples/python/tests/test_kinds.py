"""Unit tests of the module kinds: validation diagnostics, rendering and
checksums. Run against the built plugin (see cmd/host/python_test.go):

    PYTHONPATH=bin/plugins/modpipe-plugin-template /usr/bin/python3 -m unittest discover -s plugins/examples/python/tests
"""

import hashlib
import json
import os
import queue
import tempfile
import threading
import unittest

from modpipe_plugin.kinds import Checksum, Render, envelope_values, invalid_placeholder
from modpipe_plugin.service import Cancelled, Failure, Module
from modpipe.plugin.v1 import plugin_pb2


class FakeRequest:
    module = "m"
    matrix = {}
    attempt = 1
    instance = 0
    run_id = "r"

    def __init__(self, deps=()):
        self.dependencies = list(deps)


class RecordingModule(Module):
    """A Module whose host answers from a dict of envelopes."""

    def __init__(self, envelopes=None, deps=()):
        self.events = queue.Queue()
        super().__init__(FakeRequest(deps), self.events, threading.Event(), lambda: None)
        self._envelopes = envelopes or {}

    def result(self, module):
        if module not in self.dependencies:
            raise Failure("not a dependency")
        return self._envelopes[module]

    def lines(self, stream=None):
        """The output lines sent so far (of one stream, when given)."""
        out = []
        while not self.events.empty():
            line = self.events.get().line
            if stream is None or line.stream == stream:
                out.append(line.text)
        return out


def attributes(diags):
    return [(d.attribute, d.summary) for d in diags]


class RenderValidateTest(unittest.TestCase):
    def test_diagnostics(self):
        tests = [
            ("valid", {"template": "hi $name", "values": {"name": "x"}}, []),
            ("valid braced and escaped", {"template": "${name} costs $$5", "values": {"name": "x"}}, []),
            ("missing template", {}, [("template", "Missing template")]),
            ("empty template", {"template": ""}, [("template", "Missing template")]),
            ("no value", {"template": "hi $who", "values": {"name": "x"}},
             [("template", "Placeholder ${who} has no value")]),
            ("no value but not strict", {"template": "hi $who", "strict": False}, []),
            ("from without from_module", {"template": "${from.status}"},
             [("template", "Placeholder ${from.status} needs from_module")]),
            ("from with from_module", {"template": "${from.value.json.sha}", "from_module": "build"}, []),
            ("bad value name", {"template": "x", "values": {"a-b": "1"}}, [("values.a-b", 'Invalid value name "a-b"')]),
            ("invalid placeholder", {"template": "line\ncost $5"}, [("template", "Invalid placeholder in template")]),
            ("empty from_module", {"template": "x", "from_module": " "}, [("from_module", "from_module is empty")]),
            ("null optional attributes", {"template": "x", "values": None, "from_module": None, "strict": None,
                                          "output": None}, []),
        ]
        for name, config, want in tests:
            with self.subTest(name):
                self.assertEqual(attributes(Render().validate(config)), want)

    def test_invalid_placeholder_position(self):
        self.assertEqual(invalid_placeholder("ab\ncd $5"), (2, 4))
        self.assertIsNone(invalid_placeholder("$$ and ${x.y} and $z"))


class RenderRunTest(unittest.TestCase):
    ENVELOPE = {"module": "build", "status": "succeeded", "type": "shell.exec/v1",
                "value": {"exit_code": 0, "json": {"sha": "abc", "tags": ["a", "b"], "n": 3, "ok": True}},
                "error": None}

    def test_renders_values_and_envelope(self):
        m = RecordingModule({"build": self.ENVELOPE}, deps=["build"])
        v = Render().run(m, {"template": "v$version ${from.value.json.sha} ${from.status}\n"
                                         "${from.value.json.tags.1} ${from.value.json.n} ${from.value.json.ok}",
                             "values": {"version": "1.2"}, "from_module": "build"})
        self.assertEqual(v["text"], "v1.2 abc succeeded\nb 3 true")
        self.assertEqual(v["lines"], 2)
        self.assertEqual(v["sha256"], hashlib.sha256(v["text"].encode()).hexdigest())
        self.assertEqual(v["from"], {"module": "build", "status": "succeeded", "type": "shell.exec/v1"})
        self.assertEqual(v["placeholders"], ["from.status", "from.value.json.n", "from.value.json.ok",
                                             "from.value.json.sha", "from.value.json.tags.1", "version"])
        self.assertIn("v1.2 abc succeeded", m.lines())

    def test_missing_field_names_what_exists(self):
        m = RecordingModule({"build": self.ENVELOPE}, deps=["build"])
        with self.assertRaises(Failure) as cm:
            Render().run(m, {"template": "${from.value.json.nope}", "from_module": "build"})
        self.assertEqual(cm.exception.kind, "config")
        self.assertIn("from.value.json has: n, ok, sha, tags", str(cm.exception))

    def test_not_strict_keeps_unknown_placeholders(self):
        v = Render().run(RecordingModule(), {"template": "a $x b", "strict": False})
        self.assertEqual(v["text"], "a $x b")

    def test_writes_output(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "sub", "notes.txt")
            Render().run(RecordingModule(), {"template": "hello $who", "values": {"who": "you"}, "output": out})
            with open(out, encoding="utf-8") as f:
                self.assertEqual(f.read(), "hello you")

    def test_envelope_values(self):
        vals = envelope_values({"module": "b", "status": "failed", "value": None,
                                "error": {"message": "boom", "kind": "module"}})
        self.assertEqual(vals["from.status"], "failed")
        self.assertEqual(vals["from.value"], "")
        self.assertEqual(vals["from.error.message"], "boom")


class ChecksumTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        os.makedirs(os.path.join(self.dir.name, "src", "deep"))
        for path, data in (("src/a.txt", b"alpha\n"), ("src/deep/b.txt", b"beta\n"), ("src/c.bin", b"\0\1")):
            with open(os.path.join(self.dir.name, path), "wb") as f:
                f.write(data)

    def test_validate(self):
        tests = [
            ("valid", {"patterns": ["*.go"], "algorithm": "sha512", "min_files": 0}, []),
            ("no patterns", {"patterns": []}, [("patterns", "No patterns")]),
            ("empty pattern", {"patterns": ["a", ""]}, [("patterns", "Empty pattern")]),
            ("bad algorithm", {"patterns": ["a"], "algorithm": "sha3"}, [("algorithm", "Unknown algorithm \"sha3\"")]),
            ("bad min_files", {"patterns": ["a"], "min_files": 1.5},
             [("min_files", "min_files must be a whole number, 0 or more")]),
        ]
        for name, config, want in tests:
            with self.subTest(name):
                self.assertEqual(attributes(Checksum().validate(config)), want)

    def test_digest_is_hash_of_sha256sum_listing(self):
        m = RecordingModule()
        v = Checksum().run(m, {"patterns": ["src/**/*.txt"], "dir": self.dir.name})
        self.assertEqual([f["path"] for f in v["files"]], ["src/a.txt", "src/deep/b.txt"])
        listing = "".join("%s  %s\n" % (hashlib.sha256(d).hexdigest(), p)
                          for p, d in (("src/a.txt", b"alpha\n"), ("src/deep/b.txt", b"beta\n")))
        self.assertEqual(v["digest"], hashlib.sha256(listing.encode()).hexdigest())
        self.assertEqual((v["count"], v["bytes"]), (2, 11))
        self.assertEqual(m.lines(plugin_pb2.STREAM_STDOUT), listing.splitlines())

    def test_overlapping_patterns_count_once(self):
        v = Checksum().run(RecordingModule(), {"patterns": ["src/*.txt", "src/a.*"], "dir": self.dir.name})
        self.assertEqual(v["count"], 1)

    def test_too_few_files_fails_with_value(self):
        with self.assertRaises(Failure) as cm:
            Checksum().run(RecordingModule(), {"patterns": ["*.nothing"], "dir": self.dir.name})
        self.assertEqual(cm.exception.value["count"], 0)
        self.assertIn("fewer than min_files = 1", str(cm.exception))

    def test_cancelled(self):
        m = RecordingModule()
        m.cancelled.set()
        with self.assertRaises(Cancelled):
            Checksum().run(m, {"patterns": ["src/**"], "dir": self.dir.name})


def object_keys(schema):
    """The attributes of a result_schema's object type, and of the object
    types nested in it: {path: keys}."""
    out = {}

    def walk(path, t):
        if isinstance(t, list) and t[0] == "object":
            out[path] = set(t[1])
            for k, sub in t[1].items():
                walk(path + "." + k, sub)
        elif isinstance(t, list) and t[0] == "list":
            walk(path + "[]", t[1])

    walk("value", json.loads(schema))
    return out


def value_keys(v):
    """The keys of a result value's objects, by the same paths."""
    out = {}

    def walk(path, x):
        if isinstance(x, dict):
            out.setdefault(path, set()).update(x)
            for k, sub in x.items():
                walk(path + "." + k, sub)
        elif isinstance(x, list):
            for sub in x:
                walk(path + "[]", sub)

    walk("value", v)
    return out


class ResultSchemaTest(unittest.TestCase):
    """What a kind declares as its result_schema is what its run returns:
    the host refuses references to anything else before the run."""

    def test_values_have_the_declared_attributes(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "a.txt"), "w", encoding="utf-8") as f:
                f.write("a")
            envelope = RenderRunTest.ENVELOPE
            runs = [
                (Render, Render().run(RecordingModule(), {"template": "x"})),
                (Render, Render().run(RecordingModule({"build": envelope}, deps=["build"]),
                                      {"template": "${from.status}", "from_module": "build"})),
                (Checksum, Checksum().run(RecordingModule(), {"patterns": ["*.txt"], "dir": d})),
            ]
            for kind, value in runs:
                with self.subTest(kind.name):
                    declared = object_keys(kind.result_schema)
                    for path, keys in value_keys(value).items():
                        self.assertEqual(keys, declared.get(path), path)


if __name__ == "__main__":
    unittest.main()
