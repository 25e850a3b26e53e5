"""The plugin's module kinds.

render (the default kind, result type template.render/v1) fills a template
with ${name} placeholders from two sources: the values map, which HCL fills
(often from other modules' results: values = { sha =
module.build.value.json.sha }), and, with from_module, the envelope of a
dependency fetched from the host at run time through the broker
(${from.status}, ${from.value.json.sha}, ...).

checksum (result type template.checksum/v1) hashes the files that match
glob patterns, like sha256sum, and a digest over the whole listing.
"""

import glob
import hashlib
import json
import os
import re
import string

from .service import ERROR_CONFIG, Attribute, Diagnostic, Failure, Kind

_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*\Z")


class DottedTemplate(string.Template):
    """string.Template whose braced placeholders may be dotted paths
    (${from.value.json.sha}); bare ones ($name) stay plain names, so that
    "$file.txt" is $file followed by ".txt"."""

    braceidpattern = r"(?a:[_a-z][_a-z0-9]*(?:\.[_a-z0-9-]+)*)"


def invalid_placeholder(template):
    """Returns (line, column) of the first "$" that starts no valid
    placeholder, or None."""
    for m in DottedTemplate.pattern.finditer(template):
        if m.group("invalid") is not None:
            # The invalid group is empty and sits just after the "$".
            i = m.start("invalid") - len(DottedTemplate.delimiter)
            line = template.count("\n", 0, i) + 1
            col = i - (template.rfind("\n", 0, i) + 1) + 1
            return line, col
    return None


def format_value(v):
    """How a JSON value is written into a template: strings as they are,
    null as nothing, numbers and booleans as JSON, objects and lists as
    compact JSON."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True, separators=(",", ":"))


def flatten(prefix, v, out):
    """Adds prefix -> v and, for objects and lists, every nested path
    (prefix.key, prefix.0) to out."""
    out[prefix] = format_value(v)
    if isinstance(v, dict):
        for k, sub in v.items():
            flatten("%s.%s" % (prefix, k), sub, out)
    elif isinstance(v, list):
        for i, sub in enumerate(v):
            flatten("%s.%d" % (prefix, i), sub, out)


def envelope_values(envelope):
    """The template values an envelope provides: from.module, from.status,
    from.type, from.value and every path below from.value, from.error.*."""
    out = {}
    for key in ("module", "status", "type", "skip_reason", "attempts", "duration_ms", "host", "plugin",
                "plugin_version"):
        if key in envelope:
            out["from." + key] = format_value(envelope[key])
    flatten("from.value", envelope.get("value"), out)
    err = envelope.get("error") or {}
    for key in ("message", "kind"):
        out["from.error." + key] = format_value(err.get(key))
    return out


class Render(Kind):
    name = "render"
    default = True
    result_type = "template.render/v1"
    # from is null without from_module.
    result_schema = ('["object",{"text":"string","sha256":"string","lines":"number",'
                     '"placeholders":["list","string"],'
                     '"from":["object",{"module":"string","status":"string","type":"string"}],'
                     '"output":"string"}]')
    doc = ("Render a template: ${name} placeholders are filled from values and, with from_module, from a "
           "dependency's result envelope (${from.status}, ${from.value.PATH}) fetched from the host.")
    attributes = (
        Attribute("template", '"string"', "The template text. ${name} or $name is replaced by values[name]; "
                  "${from.PATH} by a field of from_module's envelope; $$ is a literal $.", required=True),
        Attribute("values", '["map","string"]', "Values for the template's placeholders."),
        Attribute("from_module", '"string"', "A dependency whose result envelope the placeholders ${from.*} "
                  "read: ${from.status}, ${from.type}, ${from.value.json.sha}, ${from.error.message}."),
        Attribute("strict", '"bool"', "Fail on a placeholder without a value (default true); false leaves it "
                  "as it is."),
        Attribute("output", '"string"', "A file to write the rendered text to (its folder is created)."),
    )

    def validate(self, config):
        diags = []
        template = config.get("template")
        if not isinstance(template, str) or template == "":
            return [Diagnostic("Missing template", "Set template to the text to render.", "template")]
        values = config.get("values") or {}
        if not isinstance(values, dict):
            diags.append(Diagnostic("values must be a map of strings", attribute="values"))
            values = {}
        for key in sorted(values):
            if not _NAME.match(key):
                diags.append(Diagnostic(
                    "Invalid value name \"%s\"" % key,
                    "A value's name must be a letter or _ followed by letters, digits or _, so that the template "
                    "can name it as ${%s}." % re.sub(r"[^_a-zA-Z0-9]", "_", key),
                    "values." + key))
        from_module = config.get("from_module")
        if from_module is not None and (not isinstance(from_module, str) or from_module.strip() == ""):
            diags.append(Diagnostic("from_module is empty",
                                    "Name the module whose result the template reads, or remove from_module.",
                                    "from_module"))
        output = config.get("output")
        if output is not None and os.path.isdir(output):
            diags.append(Diagnostic("output is a folder", "\"%s\" is a folder; name a file to write." % output,
                                    "output"))

        where = invalid_placeholder(template)
        if where is not None:
            diags.append(Diagnostic(
                "Invalid placeholder in template",
                "At line %d, column %d of the template: a $ must be followed by a name, {name} or another $ "
                "(write $$ for a literal $)." % where, "template"))
            return diags
        if config.get("strict") is False:
            return diags
        for ident in DottedTemplate(template).get_identifiers():
            if ident.startswith("from."):
                if not from_module:
                    diags.append(Diagnostic(
                        "Placeholder ${%s} needs from_module" % ident,
                        "${from.*} placeholders read the result of the module named in from_module; set "
                        "from_module to a dependency's name.", "template"))
            elif ident not in values:
                known = ", ".join(sorted(values)) or "none"
                diags.append(Diagnostic(
                    "Placeholder ${%s} has no value" % ident,
                    "Add %s to values (values set: %s), or set strict = false to leave it as it is." % (ident, known),
                    "template"))
        return diags

    def run(self, module, config):
        template = DottedTemplate(config["template"])
        mapping = dict(config.get("values") or {})
        source = None
        from_module = config.get("from_module")
        if from_module:
            module.log("fetching the result of %s from the host" % from_module)
            envelope = module.result(from_module)
            source = {"module": envelope.get("module"), "status": envelope.get("status"),
                      "type": envelope.get("type")}
            module.log("%s: %s, %s" % (source["module"], source["status"], source["type"] or "no result type"))
            mapping.update(envelope_values(envelope))
        module.check_cancelled()

        if config.get("strict") is False:
            text = template.safe_substitute(mapping)
        else:
            try:
                text = template.substitute(mapping)
            except KeyError as e:
                name = e.args[0]
                hint = ""
                if name.startswith("from.") and source is not None:
                    parent = name.rsplit(".", 1)[0]
                    children = sorted(k[len(parent) + 1:] for k in mapping
                                      if k.startswith(parent + ".") and "." not in k[len(parent) + 1:])
                    hint = " (%s has: %s)" % (parent, ", ".join(children) or "nothing")
                raise Failure("placeholder ${%s} has no value%s" % (name, hint), ERROR_CONFIG) from None

        for line in text.splitlines():
            module.stdout(line)
        output = config.get("output") or ""
        if output:
            folder = os.path.dirname(output)
            if folder:
                os.makedirs(folder, exist_ok=True)
            with open(output, "w", encoding="utf-8") as f:
                f.write(text)
            module.log("wrote %d bytes to %s" % (len(text.encode("utf-8")), output))
        return {
            "text": text,
            "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "lines": len(text.splitlines()),
            "placeholders": sorted(set(template.get_identifiers())),
            "from": source,
            "output": output,
        }


ALGORITHMS = ("sha256", "sha512", "sha1", "md5", "blake2b")

# Files are read in chunks of this size, checking for cancellation between.
_CHUNK = 1 << 20


class Checksum(Kind):
    name = "checksum"
    result_type = "template.checksum/v1"
    result_schema = ('["object",{"algorithm":"string","dir":"string",'
                     '"files":["list",["object",{"path":"string","digest":"string","bytes":"number"}]],'
                     '"count":"number","bytes":"number","digest":"string"}]')
    doc = ("Hash the files matching glob patterns, like sha256sum; digest is the hash of that listing "
           "(HASH  PATH lines), so it changes when any file, name or the set of files does.")
    attributes = (
        Attribute("patterns", '["list","string"]', "Glob patterns relative to dir; ** matches any folders.",
                  required=True),
        Attribute("dir", '"string"', "The folder the patterns are relative to (default: the working folder)."),
        Attribute("algorithm", '"string"', "One of %s (default sha256)." % ", ".join(ALGORITHMS)),
        Attribute("min_files", '"number"', "Fail when fewer files match (default 1)."),
    )

    def validate(self, config):
        diags = []
        patterns = config.get("patterns")
        if not isinstance(patterns, list) or not patterns:
            diags.append(Diagnostic("No patterns", "Set patterns to one or more globs, e.g. [\"**/*.go\"].",
                                    "patterns"))
        else:
            for i, p in enumerate(patterns):
                if not isinstance(p, str) or not p.strip():
                    diags.append(Diagnostic("Empty pattern", "Pattern %d is empty." % i, "patterns"))
        algorithm = config.get("algorithm")
        if algorithm is not None and algorithm not in ALGORITHMS:
            diags.append(Diagnostic("Unknown algorithm \"%s\"" % algorithm,
                                    "Use one of: %s." % ", ".join(ALGORITHMS), "algorithm"))
        min_files = config.get("min_files")
        if min_files is not None and (not isinstance(min_files, (int, float)) or min_files < 0
                                      or int(min_files) != min_files):
            diags.append(Diagnostic("min_files must be a whole number, 0 or more", attribute="min_files"))
        return diags

    def run(self, module, config):
        root = config.get("dir") or "."
        if not os.path.isdir(root):
            raise Failure("dir \"%s\" is not a folder" % root, ERROR_CONFIG)
        algorithm = config.get("algorithm") or "sha256"
        min_files = int(config.get("min_files") if config.get("min_files") is not None else 1)

        paths = set()
        for pattern in config["patterns"]:
            # iglob, checking between matches: listing a large tree takes
            # long enough that a cancelled module must stop inside it.
            for p in glob.iglob(pattern, root_dir=root, recursive=True):
                module.check_cancelled()
                if os.path.isfile(os.path.join(root, p)):
                    paths.add(os.path.normpath(p))
        module.log("hashing %d file%s with %s" % (len(paths), "" if len(paths) == 1 else "s", algorithm))
        files, listing, total = [], [], 0
        for path in sorted(paths):
            module.check_cancelled()
            h = hashlib.new(algorithm)
            size = 0
            with open(os.path.join(root, path), "rb") as f:
                while True:
                    chunk = f.read(_CHUNK)
                    if not chunk:
                        break
                    h.update(chunk)
                    size += len(chunk)
                    module.check_cancelled()
            digest = h.hexdigest()
            line = "%s  %s" % (digest, path)
            module.stdout(line)
            listing.append(line + "\n")
            files.append({"path": path, "digest": digest, "bytes": size})
            total += size
        overall = hashlib.new(algorithm, "".join(listing).encode("utf-8")).hexdigest()
        value = {"algorithm": algorithm, "dir": root, "files": files, "count": len(files), "bytes": total,
                 "digest": overall}
        module.log("%d files, %d bytes, %s %s" % (len(files), total, algorithm, overall))
        if len(files) < min_files:
            raise Failure("%d files match %s in %s, fewer than min_files = %d"
                          % (len(files), ", ".join(config["patterns"]), root, min_files), value=value)
        return value
