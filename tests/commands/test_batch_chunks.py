"""Chunks of `batch --ray` without a cluster: exact frame ranges, stored maps replayed, and Ray
staying optional (a one-line install hint; never imported without --ray)."""
from __future__ import annotations

import contextlib

import numpy as np
from conftest import assert_one_line_error, run_python
from test_batch import FULL, SHORT, TINY, frames_of

from realtime_seg.commands.batch.chunks import (Chunk, RangeSource, RecordingModel, ReplayModel,
                                                chunk_path, split, stored_chunks)
from realtime_seg.commands.batch.plan import Job
from realtime_seg.runtime.engine import RunOptions, load_model, preprocess
from realtime_seg.runtime.pipeline import segment_stream


def read_all(source) -> list[np.ndarray]:
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    source.close()
    return frames


def test_split_covers_every_frame_once():
    assert split(40, 16) == [Chunk(0, 16), Chunk(16, 32), Chunk(32, 40)]
    assert split(32, 16) == [Chunk(0, 16), Chunk(16, 32)]


def test_a_range_is_exactly_those_frames_of_the_sequential_decode():
    for video, chunk in ((SHORT, Chunk(13, 29)), (FULL, Chunk(150, 170))):
        every = frames_of(video)
        got = read_all(RangeSource(video, chunk))
        assert len(got) == chunk.end - chunk.start
        assert all(np.array_equal(a, b) for a, b in zip(got, every[chunk.start:chunk.end])), video


def _store_chunks(job: Job, model, chunks: list[Chunk]) -> None:
    for chunk in chunks:
        recorder = RecordingModel(model)
        with contextlib.closing(segment_stream(RangeSource(job.source, chunk), recorder)) as stream:
            for _ in stream:
                pass
        recorder.save(chunk_path(job, chunk), model.input_size)


def test_replay_returns_the_stored_maps_and_recomputes_a_frame_that_differs(tmp_path):
    model = load_model(TINY, RunOptions("cpu", 1))
    job = Job(SHORT, str(SHORT), tmp_path / "dashcam_short_seg.webm")
    chunks = split(40, 16)
    _store_chunks(job, model, chunks)
    assert stored_chunks(job, chunks) == set(chunks)
    frames = frames_of(SHORT)
    expected = [model.predict([f])[0] for f in frames]

    replay = ReplayModel(model, job, chunks)
    got = [replay.infer(preprocess([f], model.input_size))[0] for f in frames]
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))
    assert replay.recomputed == 0

    # A stored chunk whose inputs are not these frames (a seek that landed elsewhere) is redone.
    with np.load(chunk_path(job, chunks[1])) as data:
        maps, crcs = data["maps"], data["crcs"]
    with open(chunk_path(job, chunks[1]), "wb") as f:
        np.savez_compressed(f, maps=np.zeros_like(maps), crcs=crcs + 1)
    replay = ReplayModel(model, job, chunks)
    got = [replay.infer(preprocess([f], model.input_size))[0] for f in frames]
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))
    assert replay.recomputed == 16


def test_ray_not_installed_says_how_to_install_it(tmp_path):
    code = ("import sys, runpy; sys.modules['ray'] = None; "  # `import ray` raises ImportError
            f"sys.argv = ['realtime_seg', 'batch', {str(SHORT)!r}, '--out', {str(tmp_path / 'o')!r}, '--ray']; "
            "runpy.run_module('realtime_seg', run_name='__main__')")
    proc = run_python(code)
    line = assert_one_line_error(proc, 1)
    assert "pip install -r requirements-cluster.txt" in line
    assert not (tmp_path / "o").exists()


def test_batch_without_ray_never_imports_it(tmp_path):
    code = ("import sys, runpy\n"
            f"sys.argv = ['realtime_seg', 'batch', {str(SHORT)!r}, '--out', {str(tmp_path / 'o')!r}, "
            f"'--model', {str(TINY)!r}, '--ext', 'mp4']\n"
            "try:\n    runpy.run_module('realtime_seg', run_name='__main__')\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print('ray imported' if 'ray' in sys.modules else 'no ray')\n")
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("no ray"), proc.stdout
    assert (tmp_path / "o" / "dashcam_short_seg.mp4").exists()


def test_the_storage_probe_names_what_a_node_cannot_reach(tmp_path):
    from realtime_seg.commands.batch.cluster import check_node
    out = tmp_path / "out"
    out.mkdir()
    assert check_node([str(SHORT)], str(out), ".probe") == []
    assert (out / ".probe").exists()  # the driver looks for it: same storage as the node's
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    problems = check_node([str(SHORT), str(tmp_path / "gone.mp4")], str(not_a_folder), ".probe")
    assert problems[0] == f"cannot read {tmp_path / 'gone.mp4'}"
    assert problems[1].startswith(f"cannot write the output folder {not_a_folder}")
