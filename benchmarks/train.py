"""Training benchmark (64-px default models, batch 32): python benchmarks/train.py [--precision fp32] → one JSON line."""
import sys

from t2igan.cli import main

sys.exit(main(["bench", "--train", *sys.argv[1:]]))
