"""Generation latency in the same process while a TrainingJob runs (the app's situation) → one JSON line.

python benchmarks/generate_while_training.py [--train-threads 1] [--gen-threads 1]
"""
import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from t2igan.bench import _synthetic_dataset
from t2igan.device import cpu_name, keep_freed_memory
from t2igan.job import TrainingJob
from t2igan.training import TrainConfig
from t2igan.weights import load_pipeline

parser = argparse.ArgumentParser()
parser.add_argument("--model", default=None)
parser.add_argument("--train-threads", type=int, default=1)
parser.add_argument("--gen-threads", type=int, default=1)
parser.add_argument("--requests", type=int, default=30)
args = parser.parse_args()
keep_freed_memory()  # as the CLI and the app run

pipe = load_pipeline(args.model)
torch.set_num_threads(args.gen_threads)


def latencies(n):
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        pipe("a red apple", num_images_per_prompt=4, seed=i)
        out.append(1000 * (time.perf_counter() - t0))
    return out


idle = latencies(args.requests)
with tempfile.TemporaryDirectory() as tmp:
    data = _synthetic_dataset(Path(tmp) / "d", n=64, size=64)
    job = TrainingJob(TrainConfig(data=str(data), out=f"{tmp}/m", run_dir=f"{tmp}/r", steps=100000, batch_size=32,
                                  log_every=5, sample_every=10**6, checkpoint_every=10**6), threads=args.train_threads)
    job.start()
    while job.status()["step"] < 10 and job.is_alive():
        time.sleep(0.2)
    busy = latencies(args.requests)
    rate = job.status()["it_s"]
    job.stop()
    job.wait(120)
print(json.dumps({"bench": "generate_while_training", "cpu": cpu_name(), "images_per_request": 4,
                  "gen_threads": args.gen_threads,
                  "train_threads": args.train_threads, "idle_p50_ms": round(statistics.median(idle), 1),
                  "training_p50_ms": round(statistics.median(busy), 1),
                  "training_p95_ms": round(sorted(busy)[int(0.95 * len(busy)) - 1], 1),
                  "train_it_s_during": round(rate or 0, 3)}))
