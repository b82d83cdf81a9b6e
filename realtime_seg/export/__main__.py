"""usage: python -m realtime_seg.export CHECKPOINT.keras -o models/NAME.onnx [--fp16] [--head argmax|logits]"""
import sys

from realtime_seg.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
