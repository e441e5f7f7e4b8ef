"""Our generator as users get it against DF-GAN's 64-px generator (nf 32), batch 16, interleaved medians:
python benchmarks/vs_peer.py [--threads 2] [--model NAME] → one JSON line with both ratios and the CPU."""
import sys

from t2igan.cli import main

sys.exit(main(["bench", "--peer", "--batch-size", "16", "--repeats", "30", *sys.argv[1:]]))
