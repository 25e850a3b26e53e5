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

# The attributes every LogRecord has; anything else came from extra= and is
# a key/value pair of the entry.
_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class HclogFormatter(logging.Formatter):
    """Formats records as hclog JSON lines. Key/value pairs are passed as
    ``extra={"module": "build"}``."""

    def format(self, record):
        entry = {
            "@level": _LEVELS.get(record.levelno, "info"),
            "@message": record.getMessage(),
            # go-plugin parses exactly this layout (Go's
            # "2006-01-02T15:04:05.000000Z07:00").
            "@timestamp": datetime.datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="microseconds"),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
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
