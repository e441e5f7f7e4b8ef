"""Generation benchmark: python benchmarks/generate.py [--model NAME] [--threads N] → one JSON line."""
import sys

from t2igan.cli import main

sys.exit(main(["bench", *sys.argv[1:]]))
