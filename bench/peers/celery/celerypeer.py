"""Celery peer for modpipe's benchmark: the same no-op tasks as the
asynq peer, Redis broker and result backend on loopback.

Worker:   python3 -m celery -A celerypeer worker -c 4 (run by the benchmark)
Producer: python3 celerypeer.py SPARSE THROUGHPUT
SPARSE tasks sent 20 ms apart, then THROUGHPUT tasks at once, in one
process so its start-up is paid once (either count may be 0); prints one
JSON object: latencies_ms (enqueue -> task start) and per_second.
"""
import json
import os
import sys
import time

from celery import Celery

REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/2")
app = Celery("celerypeer", broker=REDIS, backend=REDIS)
app.conf.worker_hijack_root_logger = False


@app.task(name="noop")
def noop():
    return time.time()


def main():
    sparse_n, thr_n = int(sys.argv[1]), int(sys.argv[2])
    # Wait until a worker answers, so start-up is not measured; limit=1
    # returns at the first answer instead of waiting out the timeout.
    deadline = time.time() + 60
    while not app.control.ping(timeout=0.5, limit=1):
        if time.time() > deadline:
            sys.exit("celerypeer: no worker answered")
    noop.delay().get(timeout=30)
    out = {}
    if sparse_n > 0:
        lat = []
        for _ in range(sparse_n):
            t = time.time()
            r = noop.delay()
            started = r.get(timeout=30)
            lat.append((started - t) * 1000)
            time.sleep(0.02)
        out["latencies_ms"] = lat
    if thr_n > 0:
        t = time.time()
        rs = [noop.delay() for _ in range(thr_n)]
        for r in rs:
            r.get(timeout=120)
        out["per_second"] = thr_n / (time.time() - t)
    print(json.dumps(out))

if __name__ == "__main__":
    main()
