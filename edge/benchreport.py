"""What ``ers bench`` reports: per-stage statistics, the report itself, and the machine it ran on.

``BenchReport.table()`` is the text ``ers bench`` prints; ``to_dict()`` /
``save()`` the JSON that makes two runs comparable (machine, versions and
every setting are recorded with the numbers).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.pipeline import usable_cores


@dataclass(frozen=True)
class StageStats:
    """Milliseconds one stage took per frame (all zero when the stage is off)."""

    name: str
    enabled: bool
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def from_seconds(cls, name: str, seconds: np.ndarray, enabled: bool = True) -> StageStats:
        ms = np.asarray(seconds, np.float64) * 1000.0
        if not enabled or ms.size == 0:
            return cls(name, enabled, 0.0, 0.0, 0.0, 0.0, 0.0)
        p50, p95, p99 = np.percentile(ms, (50, 95, 99)).tolist()
        return cls(name, True, float(ms.mean()), p50, p95, p99, float(ms.max()))

    def to_dict(self) -> dict[str, Any]:
        return {key: round(value, 4) if isinstance(value, float) else value for key, value in vars(self).items()}


def _decoder_threads(count: int | None) -> str:
    return "FFmpeg's own threads" if count is None else f"{count} FFmpeg thread{'s' if count != 1 else ''}"


@dataclass(frozen=True, kw_only=True)
class BenchReport:
    """One benchmark run: per-stage and per-frame times, throughput, and what it ran on."""

    settings: dict[str, Any]
    machine: dict[str, Any]
    versions: dict[str, str]
    stages: tuple[StageStats, ...]
    latency: StageStats  # whole frame, decode to last stage
    other: StageStats  # latency not in any stage: the loop, frame checks, result glue
    frames: int
    elapsed_s: float
    faces_per_frame: float
    face_counts: dict[int, int]  # faces in a frame -> frames
    cpu: dict[str, Any]
    baseline: dict[str, Any] | None = None  # decode + detect alone
    fer: dict[str, Any] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def fps(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def added_percent(self) -> float | None:
        """How much longer the median frame takes than the median decode + detect alone frame, in
        percent (None without baseline). Medians: a busy machine's stalls swing the means."""
        if not self.baseline or not self.baseline.get("frame_ms_p50"):
            return None
        return 100.0 * (self.latency.p50_ms / self.baseline["frame_ms_p50"] - 1.0)

    @property
    def added_percent_mean(self) -> float | None:
        """The same from frames per second (means), None without baseline."""
        if not self.baseline or self.fps <= 0:
            return None
        return 100.0 * (self.baseline["fps"] / self.fps - 1.0)

    @property
    def fer_ratio(self) -> float | None:
        """Our frames per second over fer's, on the same clip (None without fer)."""
        if not self.fer or not self.fer.get("fps"):
            return None
        return self.fps / self.fer["fps"]

    def stage(self, name: str) -> StageStats:
        return next(stage for stage in self.stages if stage.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": dict(self.settings),
            "machine": dict(self.machine),
            "versions": dict(self.versions),
            "frames": self.frames,
            "elapsed_s": round(self.elapsed_s, 4),
            "fps": round(self.fps, 2),
            "latency_ms": self.latency.to_dict(),
            "stages_ms": {stage.name: stage.to_dict() for stage in (*self.stages, self.other)},
            "faces_per_frame": round(self.faces_per_frame, 4),
            "face_counts": {str(count): frames for count, frames in sorted(self.face_counts.items())},
            "cpu": dict(self.cpu),
            "baseline": dict(self.baseline) if self.baseline else None,
            "added_percent": round(self.added_percent, 2) if self.added_percent is not None else None,
            "added_percent_mean": round(self.added_percent_mean, 2) if self.added_percent_mean is not None else None,
            "fer": dict(self.fer) if self.fer else None,
            "fer_ratio": round(self.fer_ratio, 2) if self.fer_ratio is not None else None,
            "notes": list(self.notes),
        }

    def save(self, path: Path | str) -> Path:
        """Write ``to_dict()`` as JSON to ``path`` (its folder is created)."""
        from edge.sinks import write_json  # OpenCV comes with it: only when a report is saved

        return write_json(path, self.to_dict(), "the benchmark report")

    def table(self) -> str:
        """The readable report ``ers bench`` prints."""
        s, m = self.settings, self.machine
        engine = f" on {s['detector_engine']}" if s.get("detector_engine", "mediapipe") != "mediapipe" else ""
        if s.get("trim_letterbox"):
            engine += ", letterbox trimmed"
        lines = [
            f"ers bench: {Path(s['source']).name} ({s['frame_size']})"
            + (f", {s['faces']} tiled faces" if s["faces"] else "")
            + f", {self.frames} frames after {s['warmup_frames']} warm-up",
            f"  model {s['variant']} ({s['variant_file']}), detector {s['detector']}{engine}, "
            f"model threads {s['model_threads']}, "
            f"decode ahead {s['decode_ahead']} frames ({_decoder_threads(s.get('decode_threads'))}), "
            + (f"overlapped, {s.get('workers', 1)} worker(s)" if s.get("overlap") else "sequential"),
            f"  {'stage':<11}{'mean':>8}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}  ms   share",
        ]
        total = self.latency.mean_ms or 1.0
        for stage in (*self.stages, self.other):
            if not stage.enabled:
                lines.append(f"  {stage.name:<11}{'off':>8}")
                continue
            lines.append(
                f"  {stage.name:<11}{stage.mean_ms:8.3f}{stage.p50_ms:8.3f}{stage.p95_ms:8.3f}"
                f"{stage.p99_ms:8.3f}{stage.max_ms:8.3f}     {100.0 * stage.mean_ms / total:5.1f}%"
            )
        lat = self.latency
        load = m["load_average"]  # None where the OS has no load average (Windows)
        load_text = f"load average {load[0]:.2f} at start" if load else "no load average"
        lines += [
            f"  {'frame':<11}{lat.mean_ms:8.3f}{lat.p50_ms:8.3f}{lat.p95_ms:8.3f}{lat.p99_ms:8.3f}{lat.max_ms:8.3f}",
            f"end to end: {self.fps:.1f} FPS ({self.frames} frames in {self.elapsed_s:.3f} s); "
            f"{self.faces_per_frame:.2f} faces per frame",
            f"CPU: {self.cpu['cpu_ms_per_frame']:.3f} ms of CPU per frame, {self.cpu['cores_busy']:.2f} of "
            f"{m['usable_cores']} cores busy; {self.cpu['process_threads']} threads in the process "
            f"(models {s['model_threads']} each, OpenCV {self.cpu['opencv_threads']})",
            f"machine: {describe_cpu(m)}, {m['usable_cores']} usable cores, {load_text}; "
            f"python {self.versions['python']}, mediapipe {self.versions['mediapipe']}, "
            f"ai-edge-litert {self.versions['ai-edge-litert']}, opencv {self.versions['opencv']}",
        ]
        if self.baseline is not None:
            lines.append(
                f"decode + detect alone: {self.baseline['fps']:.1f} FPS, median frame "
                f"{self.baseline['frame_ms_p50']:.3f} ms (decode {self.baseline['decode_ms']:.3f} ms, detect "
                f"{self.baseline['detect_ms']:.3f} ms on average); the rest of the pipeline adds "
                + (f"{self.added_percent_mean:.1f}% to the time per frame (1/FPS; it runs beside the next "
                   "frame's decode + detect)" if self.settings.get("overlap") else
                   f"{self.added_percent:.1f}% to the median frame ({self.added_percent_mean:.1f}% to the mean)")
            )
        if self.fer is not None:
            fer_cpu = self.fer.get("cpu_ms_per_frame")
            lines.append(
                f"fer {self.fer['version']} on the same clip: {self.fer['fps']:.1f} FPS "
                f"({self.fer['faces_per_frame']:.2f} faces per frame, {self.fer['frames']} frames); "
                f"ers is {self.fer_ratio:.1f}x faster"
                + (
                    f"; CPU per frame {self.cpu['cpu_ms_per_frame']:.2f} ms against {fer_cpu:.2f} ms "
                    f"({fer_cpu / self.cpu['cpu_ms_per_frame']:.1f}x less)"
                    if fer_cpu and self.cpu["cpu_ms_per_frame"]
                    else ""
                )
            )
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


# Instruction sets that decide how fast LiteRT (XNNPACK) and mediapipe run on a CPU, as /proc/cpuinfo
# names them (x86 "flags", Arm "Features"): two machines that report the same model name can differ
# in them (a 256-bit or a 512-bit vector unit, int8 dot products, AMX), and so run at different speeds.
SPEED_FEATURES = (
    "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16",
    "asimd", "asimddp", "i8mm", "bf16", "sve", "sve2",
)
CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo(path: Path) -> dict[str, str]:
    """Each field of a /proc/cpuinfo at its first value: the first processor's, plus fields such as
    Arm's ``Hardware`` that come once after all processors (empty where there is no file)."""
    fields: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return fields
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key and value:
            fields.setdefault(key, value)
    return fields


def describe_cpu(machine: dict[str, Any]) -> str:
    """'AMD EPYC (family 25 model 17 stepping 1; avx2 fma avx512f)': the name, then what tells CPUs apart."""
    details = "; ".join(part for part in (machine.get("cpu_id"), " ".join(machine.get("cpu_features") or ())) if part)
    return f"{machine['cpu_model']} ({details})" if details else machine["cpu_model"]


def machine_info(cpuinfo: Path = CPUINFO) -> dict[str, Any]:
    """The CPU (name, family/model/stepping, vector instruction sets), cores and load of this machine.

    Recorded with every run, so that two runs can be compared: the model name alone ("AMD EPYC" on
    a cloud machine) does not tell one CPU generation from the next.
    """
    info = _cpuinfo(cpuinfo)
    cpu_model = next((info[key] for key in ("model name", "Hardware", "Model") if key in info),
                     platform.processor() or platform.machine())
    cpu_id = " ".join(f"{key.split()[-1]} {info[key]}" for key in ("cpu family", "model", "stepping") if key in info)
    flags = set((info.get("flags") or info.get("Features") or "").split())
    return {
        "cpu_model": cpu_model,
        "cpu_id": cpu_id or None,
        "cpu_features": [name for name in SPEED_FEATURES if name in flags],
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "load_average": [round(value, 2) for value in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
    }


def versions() -> dict[str, str]:
    """Versions of Python and of every package the runtime's speed depends on."""
    import cv2

    found = {"python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__}
    for name in ("mediapipe", "ai-edge-litert", "ers"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def process_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()
