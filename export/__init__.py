"""A shim for `python -m export` in a checkout: the exporter is `realtime_seg.export`.

Not installed by `pip install .` (a top-level package named `export` would collide with others);
installed, run `realtime-seg export`.
"""
