"""Logging in hashicorp/go-hclog's JSON format on stderr.

go-plugin's host reads a plugin's stderr line by line; a line that is an
hclog JSON object ({"@level": ..., "@message": ..., "@timestamp": ...,
other keys as key/value pairs}) becomes a log entry of the host at that
level. Anything else is kept as plain output (and as the crash tail).
"""

import datetime
import json
import logging
import os
import sys

# hclog's level names by Python level.
_LEVELS = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "error",
}


def kv(**pairs):
    """Key/value pairs for a log call: ``log.info("msg", extra=kv(module="build"))``.
    They travel in one attribute of the record, so no key can clash with a
    LogRecord attribute (module, name, ...)."""
    return {"hclog_kv": pairs}


class HclogFormatter(logging.Formatter):
    """Formats records as hclog JSON lines, with the pairs given by kv."""

    def format(self, record):
        entry = {
            "@level": _LEVELS.get(record.levelno, "info"),
            "@message": record.getMessage(),
            # go-plugin parses exactly this layout (Go's
            # "2006-01-02T15:04:05.000000Z07:00").
            "@timestamp": datetime.datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="microseconds"),
        }
        for key, value in getattr(record, "hclog_kv", {}).items():
            if not key.startswith("@"):
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def new_logger(name, stream=None):
    """Returns a logger named name writing hclog JSON to stream (stderr by
    default) at the level in MODPIPE_PLUGIN_LOG_LEVEL (default info), like
    the Go sdk's default logger."""
    logger = logging.getLogger(name)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(HclogFormatter())
    logger.addHandler(handler)
    level = os.environ.get("MODPIPE_PLUGIN_LOG_LEVEL", "info").strip().lower()
    logger.setLevel({"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO,
                     "warn": logging.WARNING, "error": logging.ERROR}.get(level, logging.INFO))
    return logger
