"""usage: python -m export CHECKPOINT.keras -o models/NAME.onnx (in a checkout; = python -m realtime_seg export)"""
import sys

from realtime_seg.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
