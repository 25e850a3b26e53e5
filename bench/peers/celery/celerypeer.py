"""Celery peer for modpipe's benchmark: the same no-op tasks as the
asynq peer, Redis broker and result backend on loopback.

Worker:   python3 -m celery -A celerypeer worker -c 4 (run by the benchmark)
Producer: python3 celerypeer.py sparse|throughput N
prints one JSON object: latencies_ms (enqueue -> task start) or per_second.
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
    mode, n = sys.argv[1], int(sys.argv[2])
    # Wait until a worker answers, so start-up is not measured.
    deadline = time.time() + 60
    while not app.control.ping(timeout=0.5):
        if time.time() > deadline:
            sys.exit("celerypeer: no worker answered")
    noop.delay().get(timeout=30)
    if mode == "sparse":
        lat = []
        for _ in range(n):
            t = time.time()
            r = noop.delay()
            started = r.get(timeout=30)
            lat.append((started - t) * 1000)
            time.sleep(0.02)
        print(json.dumps({"latencies_ms": lat}))
    else:
        t = time.time()
        rs = [noop.delay() for _ in range(n)]
        for r in rs:
            r.get(timeout=120)
        print(json.dumps({"per_second": n / (time.time() - t)}))


if __name__ == "__main__":
    main()
