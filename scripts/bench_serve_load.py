"""What a crowd of browsers costs a --serve run: the headless viewer on the demo video, looped for N
frames, once with nobody watching and once under load; the FPS of each and their ratio, and the
loaded run's memory and threads.

usage: python -m scripts.bench_serve_load [--frames 2000] [--model accurate] [--streams 16] [--silent 16]
                                          [--max-clients 16] [--video videos/dashcam_highway.mp4]

Both runs serve on 127.0.0.1 with a token (--serve-token), so every request is checked as it would
be beyond loopback. The load, all of it from 127.0.0.1 and on one thread (a selector loop, so that
the clients cost the machine little beyond what the server does):
  * `--streams` viewers read the MJPEG stream as fast as they can; each leaves after 100 to 400
    parts and comes back (clients coming and going);
  * `--silent` clients connect, send half a request and never read; the server closes each after
    its header deadline, and it comes back at once;
  * while every viewer is connected, one more stream request every 0.5 s: beyond the cap, it
    should get 503; and the page every 2 s, which should still get 200.
The viewer's VmRSS and threads are read from /proc every 0.5 s (RSS at 10%, half and the end of the
run), its CPU time per frame from /proc and its rusage (model loading left out), and the clients'
own CPU time. Results: docs/BENCHMARKS.md ("Serving under load").
"""
from __future__ import annotations

import argparse
import os
import random
import re
import resource
import secrets
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUMMARY = re.compile(r"^(\d+) frames in [\d.]+s: ([\d.]+) FPS mean", re.MULTILINE)
PORT = re.compile(r"http://127\.0\.0\.1:(\d+)/")
PART = b"--frame\r\n"


class _Client:
    """One connection of the load: `kind` stream, silent, probe (one more stream) or page."""

    def __init__(self, kind: str, port: int, request: bytes):
        self.kind, self.head, self.status, self.parts = kind, b"", 0, 0
        self.leave_after = random.randint(100, 400)
        self.opened = time.monotonic()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(request)
        self.sock.setblocking(False)


class Load(threading.Thread):
    """The clients of the loaded run, on one thread, until `stop` is set; counts what they got."""

    def __init__(self, port: int, token: str, streams: int, silent: int):
        super().__init__(daemon=True)
        self.port, self.streams, self.silent = port, streams, silent
        stream, page = (f"GET /{path}?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
                        for path in ("stream.mjpg", ""))
        self.requests = {"stream": stream, "probe": stream, "page": page, "silent": stream[:-12]}  # cut in its headers
        self.stop, self.selector = threading.Event(), selectors.DefaultSelector()
        self.open: Counter = Counter()
        self.stats: Counter = Counter()     # parts, bytes, joins, live (viewers in), KIND_STATUS (refused)
        self.statuses = {"probe": Counter(), "page": Counter()}
        self.silent_held: list[tuple[float, float]] = []  # (when, how long) of each closed by the server
        self.drops: list[float] = []                      # when a stream was closed by the server
        self.retry, self.gone = {"stream": 0.0, "silent": 0.0}, float("inf")

    def before_the_end(self, times: list[float]) -> list[float]:
        """Those of `times` more than 2 s before the server stopped (its stop closes every connection)."""
        return [t for t in times if t < self.gone - 2.0]

    def run(self) -> None:
        next_probe = next_page = time.monotonic() + 2.0
        while not self.stop.is_set():
            now = time.monotonic()
            for kind, wanted in (("stream", self.streams), ("silent", self.silent)):
                for _ in range(wanted - self.open[kind] if now >= self.retry[kind] else 0):
                    self._open(kind)
            if now >= next_probe and self.stats["live"] == self.streams:  # every viewer is in: cap reached
                self._open("probe")
                next_probe = now + 0.5
            if now >= next_page:
                self._open("page")
                next_page = now + 2.0
            for key, _ in self.selector.select(timeout=0.05):
                self._read(key.data)
        for key in list(self.selector.get_map().values()):
            self._close(key.data)
        self.cpu_s = time.thread_time()  # what the clients cost this machine

    def _open(self, kind: str) -> None:
        try:
            client = _Client(kind, self.port, self.requests[kind])
        except ConnectionRefusedError:  # the run has ended: its server is closed
            self.gone = min(self.gone, time.monotonic())
            return
        except OSError:
            self.stats[f"{kind}_connect_failed"] += 1
            return
        self.open[kind] += 1
        self.selector.register(client.sock, selectors.EVENT_READ, client)

    def _close(self, client: _Client) -> None:
        self.selector.unregister(client.sock)
        client.sock.close()
        self.open[client.kind] -= 1
        if client.kind == "stream" and client.status == 200:
            self.stats["live"] -= 1

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(1 << 18)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not client.status and data:
            client.head += data
            if b"\r\n" in client.head:
                client.status, data = int(client.head.split()[1]), client.head
                self._answered(client)
        if client.kind == "stream" and client.status == 200:
            client.parts += data.count(PART)
            self.stats["parts"] += data.count(PART)
            self.stats["bytes"] += len(data)
        if not data or client.kind in ("probe", "page") and client.status or client.parts >= client.leave_after:
            if client.kind == "silent" and not data and not client.status:
                self.silent_held.append((time.monotonic(), time.monotonic() - client.opened))
            if client.kind == "stream" and client.status == 200 and not data:
                self.drops.append(time.monotonic())  # by the server: not read for STALL_S, or the run ended
            self._close(client)
            if client.kind in self.retry and client.status not in (0, 200):  # refused: the server has not
                self.retry[client.kind] = time.monotonic() + 0.1             # yet seen its last one end

    def _answered(self, client: _Client) -> None:
        if client.kind in self.statuses:
            self.statuses[client.kind][client.status] += 1
        elif client.kind == "stream" and client.status == 200:
            self.stats["joins"] += 1
            self.stats["live"] += 1
        else:  # a viewer back before the server noticed it left (or a silent client answered)
            self.stats[f"{client.kind}_{client.status}"] += 1


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a live process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_status(pid: int) -> tuple[float, int] | None:
    """(VmRSS in MB, threads) of a live process; None once it is gone."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None
    if "VmRSS" not in fields:
        return None
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])


def run(args: argparse.Namespace, loaded: bool) -> dict:
    """One viewer run: its FPS, RSS samples and threads, and the load's counts when `loaded`."""
    token = secrets.token_urlsafe(16)
    cmd = [sys.executable, "-m", "realtime_seg", "--video", str(args.video), "--model", args.model, "--loop",
           "--max-frames", str(args.frames), "--no-show", "--serve", "127.0.0.1:0", "--serve-token", token,
           "--serve-max-clients", str(args.max_clients)]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = int(PORT.search(proc.stdout.readline()).group(1))
    started = _cpu_s(proc.pid)  # the model is loaded: the rest is the run (and the source's opening)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
    reader.start()
    load = Load(port, token, args.streams, args.silent) if loaded else None
    if load:
        load.start()
    samples = []
    while proc.poll() is None:
        if (s := _proc_status(proc.pid)) is not None:
            samples.append(s)
        time.sleep(0.5)
    if load:
        load.stop.set()
        load.join(10)
    reader.join(10)
    frames, fps = SUMMARY.search("".join(out)).groups()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime - started
    return {"frames": int(frames), "fps": float(fps), "cpu_ms": 1e3 * cpu / int(frames), "samples": samples,
            "load": load}


def _memory(samples: list[tuple[float, int]]) -> str:
    """RSS at 10%, half and the end of the run (median of 3 samples each), growth over the second half
    (the first holds the viewer's own warm-up: arenas, buffers), and threads."""
    rss = [s[0] for s in samples]
    at = [statistics.median(rss[i:i + 3]) for i in (len(rss) // 10, len(rss) // 2, len(rss) - 3)]
    return (f"RSS {at[0]:.1f} / {at[1]:.1f} / {at[2]:.1f} MB at 10% / half / end ({100 * (at[2] - at[1]) / at[1]:+.1f}% "
            f"over the second half), peak {max(rss):.1f} MB; threads {samples[len(rss) // 10][1]} -> max "
            f"{max(s[1] for s in samples)}")


def _load_line(load: Load, frames: int) -> str:
    s = load.stats
    held = [h for when, h in load.silent_held if when in load.before_the_end([when])]
    probes, pages = load.statuses["probe"], load.statuses["page"]
    others = dict(probes - Counter({503: probes[503]}))
    return (f"  {load.streams} viewers: {s['joins']} connections, {s['parts']} parts ({s['bytes'] / 1e9:.2f} GB; "
            f"{s['parts'] / max(1, load.streams * frames):.0%} of {load.streams} x {frames} frames); "
            f"refused while coming back: {s['stream_503']}; dropped by the server: {len(load.before_the_end(load.drops))}\n"
            f"  {load.silent} silent clients: {len(held)} closed by the server after "
            f"{statistics.median(held) if held else float('nan'):.1f} s (median); refused: {s['silent_503']}\n"
            f"  one more stream at the cap: {probes[503]} of {sum(probes.values())} answered 503"
            f"{f' (others: {others})' if others else ''}; "
            f"the page: {pages[200]} of {sum(pages.values())} answered 200")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", type=Path, default=ROOT / "videos" / "dashcam_highway.mp4")
    p.add_argument("--model", default="accurate")
    p.add_argument("--frames", type=int, default=2000)
    p.add_argument("--streams", type=int, default=16)
    p.add_argument("--silent", type=int, default=16)
    p.add_argument("--max-clients", type=int, default=16)
    args = p.parse_args()
    random.seed(0)
    alone = run(args, loaded=False)
    print(f"no clients: {alone['frames']} frames, {alone['fps']:.1f} FPS, viewer CPU {alone['cpu_ms']:.1f} ms "
          f"a frame; {_memory(alone['samples'])}", flush=True)
    busy = run(args, loaded=True)
    clients_ms = 1e3 * busy["load"].cpu_s / busy["frames"]
    print(f"{args.streams} viewers + {args.silent} silent: {busy['frames']} frames, {busy['fps']:.1f} FPS = "
          f"{busy['fps'] / alone['fps']:.1%} of no clients, viewer CPU {busy['cpu_ms']:.1f} ms a frame "
          f"({busy['cpu_ms'] - alone['cpu_ms']:+.1f}), the clients' {clients_ms:.1f}; {_memory(busy['samples'])}")
    print(_load_line(busy["load"], busy["frames"]))
    print(f"  CPU-bound (the viewer using every core, as on a quiet machine): "
          f"{alone['cpu_ms'] / (busy['cpu_ms'] + clients_ms):.1%} of no clients expected")


if __name__ == "__main__":
    main()
