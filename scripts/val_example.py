"""Write docs/val_example.png: a CamVid val frame, the model's prediction and the ground truth.

usage: python -m scripts.val_example [--model accurate] [--data ../shared/data/camvid] [--frame 0001TP_008550]
"""
import argparse
from pathlib import Path

import cv2
import numpy as np

from realtime_seg.datasets.classes import CAMVID
from realtime_seg.runtime.models import choose_model, open_model
from realtime_seg.runtime.render import colorize


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="accurate")
    p.add_argument("--data", default="../shared/data/camvid")
    p.add_argument("--frame", default="0016E5_07959")
    p.add_argument("--out", default="docs/val_example.png")
    args = p.parse_args()
    model = open_model(choose_model(args.model, "fp32"))
    frame = cv2.imread(str(Path(args.data) / "val" / f"{args.frame}.png"))
    label = cv2.imread(str(Path(args.data) / "valannot" / f"{args.frame}.png"), cv2.IMREAD_GRAYSCALE)
    h, w = label.shape
    palette = np.vstack([model.palette_bgr, [[0, 0, 0]]]).astype(np.uint8)  # void (11) drawn black
    panels = [frame, colorize(model.predict([frame])[0], palette, (w, h)),
              colorize(np.minimum(label, CAMVID.void), palette, (w, h))]
    for panel, title in zip(panels, ("input", f"prediction ({model.path.stem})", "ground truth")):
        cv2.putText(panel, title, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(panel, title, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.imwrite(args.out, np.hstack(panels))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
