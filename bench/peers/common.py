"""Shared helpers for the PyTorch peers: parse the JSON argument, set threads, time a callable."""
import json
import sys
import time

import torch


def setup():
    args = json.loads(sys.argv[1])
    torch.set_num_threads(int(args.get("threads", 1)))
    return args


def time_ms(fn, warmup=2, min_runs=5, min_time_ms=400):
    for _ in range(warmup):
        fn()
    runs = []
    start = time.perf_counter()
    while len(runs) < min_runs or (time.perf_counter() - start) * 1e3 < min_time_ms:
        t = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t) * 1e3)
        if len(runs) >= 1000:
            break
    runs.sort()
    return {"minMs": runs[0], "medianMs": runs[len(runs) // 2], "runs": len(runs)}


def emit(obj):
    print(json.dumps(obj))
