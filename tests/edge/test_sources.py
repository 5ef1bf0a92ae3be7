from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_testing import synthetic_frames, write_video
from edge.errors import SourceError
from edge.sources import CameraSource, ImageSource, Source, VideoFileSource, open_source
from edge.types import Frame, SourceKind


def _images_dir(tmp_path: Path, count: int = 3) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for index, image in enumerate(synthetic_frames(count)):
        cv2.imwrite(str(folder / f"img_{index}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture(params=["video", "image", "folder", "stream"])
def any_source(request, tmp_path, five_frame_video) -> Source:
    if request.param == "video":
        return VideoFileSource(five_frame_video)
    if request.param == "image":
        return ImageSource.from_file(next(iter(sorted(_images_dir(tmp_path).iterdir()))))
    if request.param == "folder":
        return ImageSource.from_dir(_images_dir(tmp_path))
    return CameraSource(str(five_frame_video))  # a file opened as a live stream


def test_every_source_honours_the_contract(any_source):
    with any_source as source:
        assert isinstance(source, Source)
        assert source.kind in set(SourceKind)
        assert source.fps > 0
        frames = list(source)
    assert frames
    timestamps = [frame.timestamp_ms for frame in frames]
    assert timestamps == sorted(set(timestamps))  # strictly increasing
    indices = [frame.index for frame in frames]
    assert indices == sorted(set(indices))
    for frame in frames:
        assert isinstance(frame, Frame)
        assert frame.image_rgb.dtype == np.uint8 and frame.image_rgb.ndim == 3 and frame.image_rgb.shape[2] == 3
    any_source.close()  # idempotent


def test_video_file_gives_every_frame_in_rgb_with_timestamps_from_fps(five_frame_video):
    with VideoFileSource(five_frame_video) as source:
        assert source.kind is SourceKind.VIDEO
        assert source.fps == pytest.approx(10.0)
        assert source.frame_size == (64, 48)
        frames = list(source)
    assert [frame.index for frame in frames] == [0, 1, 2, 3, 4]
    assert [frame.timestamp_ms for frame in frames] == [0, 100, 200, 300, 400]
    # the marker square is red in RGB (the source converts from OpenCV's BGR)
    red, green, blue = frames[0].image_rgb[6:10, 6:10].reshape(-1, 3).mean(axis=0)
    assert red > 200 and green < 60 and blue < 60


def test_video_skips_and_counts_undecodable_frames(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(20)]
    path = write_video(tmp_path / "noisy.mp4", frames, fps=10.0)
    data = bytearray(path.read_bytes())
    start, length = int(len(data) * 0.4), int(len(data) * 0.1)
    data[start : start + length] = np.random.default_rng(1).integers(0, 256, length, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    with VideoFileSource(damaged) as source:
        decoded = list(source)
        skipped = source.skipped_frames
    assert skipped >= 1
    assert len(decoded) + skipped <= 20
    assert len(decoded) >= 10
    assert decoded[-1].index > decoded[len(decoded) // 2].index  # the stream went on past the damage
    assert [f.timestamp_ms for f in decoded] == sorted({f.timestamp_ms for f in decoded})


def test_a_video_cut_short_says_so_and_counts_the_frames_it_lost(tmp_path, caplog):
    rng = np.random.default_rng(0)
    path = write_video(tmp_path / "noisy.mp4", [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
                                                for _ in range(30)], fps=10.0)
    data = bytearray(path.read_bytes())
    index = data.find(b"moov")  # OpenCV writes the index last: blank the frames' data before it
    data[index // 2 : index - 8] = bytes(index - 8 - index // 2)
    damaged = tmp_path / "cut.mp4"
    damaged.write_bytes(bytes(data))
    with VideoFileSource(damaged, max_consecutive_failures=3) as source:
        decoded = list(source)
    assert 0 < len(decoded) < 30 and len(decoded) + source.skipped_frames == 30
    assert f"no frame decodes from frame {len(decoded)} on" in caplog.text and "of the 30 it states" in caplog.text


def test_image_folder_is_sorted_and_skips_unreadable_files(tmp_path, caplog):
    folder = _images_dir(tmp_path)
    (folder / "img_1b.jpg").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("ignored")
    with ImageSource.from_dir(folder) as source:
        frames = list(source)
    assert [frame.name for frame in frames] == ["img_0.png", "img_1.png", "img_2.png"]
    assert source.skipped_frames == 1
    assert "img_1b.jpg" in caplog.text


def test_a_folder_of_images_none_of_which_reads_is_an_error(tmp_path, caplog):
    folder = tmp_path / "broken"
    folder.mkdir()
    for name in ("a.jpg", "b.png"):
        (folder / name).write_bytes(b"not an image")
    with ImageSource.from_dir(folder) as source, pytest.raises(SourceError, match="none of the 2 images in"):
        list(source)


def test_stream_source_drops_stale_frames_for_a_slow_consumer(tmp_path):
    path = write_video(tmp_path / "long.mp4", synthetic_frames(5) * 40, fps=30.0)  # 200 frames
    with CameraSource(str(path)) as source:
        assert source.kind is SourceKind.LIVE
        frames = []
        for frame in source:
            frames.append(frame)
            time.sleep(0.02)  # slower than the decoder
    assert source.dropped_frames > 0
    assert len(frames) < 200
    assert [f.index for f in frames] == sorted(set(f.index for f in frames))


@pytest.mark.parametrize(
    ("arg", "kind", "cls"),
    [
        ("video", SourceKind.VIDEO, VideoFileSource),
        ("image", SourceKind.IMAGES, ImageSource),
        ("folder", SourceKind.IMAGES, ImageSource),
    ],
)
def test_open_source_picks_the_source(tmp_path, five_frame_video, arg, kind, cls):
    folder = _images_dir(tmp_path)
    target = {"video": five_frame_video, "image": folder / "img_0.png", "folder": folder}[arg]
    with open_source(str(target)) as source:
        assert isinstance(source, cls)
        assert source.kind is kind


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: str(tmp / "missing.mp4"), "does not exist"),
        (lambda tmp: _write(tmp / "text.mp4", b"this is not a video" * 50), "cannot be opened as a video"),
        (lambda tmp: _write(tmp / "empty.avi", b""), "video"),
        (lambda tmp: _write(tmp / "broken.jpg", b"\xff\xd8 not really"), "cannot be read as an image"),
        (lambda tmp: str((tmp / "empty_dir").mkdir() or tmp / "empty_dir"), "no images in"),
        (lambda tmp: "97", "no camera at index 97"),
        (lambda tmp: "", "the source is an empty name"),
        (lambda tmp: -1, "camera index must be 0 or more; got -1"),
        (lambda tmp: "  ", "the source is an empty name"),
    ],
)
def test_bad_sources_raise_clear_source_errors(tmp_path, make, message):
    with pytest.raises(SourceError, match=message):
        open_source(make(tmp_path))


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("decode_ahead", [1, 3])
def test_decoding_ahead_gives_the_same_frames_in_order(tmp_path, decode_ahead):
    video = write_video(tmp_path / "clip.mp4", synthetic_frames(6), fps=10.0)
    with VideoFileSource(video, decode_ahead=0) as source:
        inline = list(source)
    with VideoFileSource(video, decode_ahead=decode_ahead) as source:
        ahead = list(source)
        assert source._decoder is not None and not source._decoder.is_alive()
    assert [(f.index, f.timestamp_ms) for f in ahead] == [(f.index, f.timestamp_ms) for f in inline]
    for a, b in zip(ahead, inline):
        np.testing.assert_array_equal(a.image_rgb, b.image_rgb)


def test_closing_a_source_that_decodes_ahead_stops_its_thread(tmp_path):
    video = write_video(tmp_path / "clip.mp4", synthetic_frames(5) * 4, fps=10.0)
    source = VideoFileSource(video, decode_ahead=2)
    frames = iter(source)
    assert next(frames).index == 0
    time.sleep(0.05)  # the decoder fills its queue and waits
    source.close()
    assert not source._decoder.is_alive()
    source.close()


def test_a_source_that_decodes_ahead_ends_instead_of_hanging(tmp_path):
    video = write_video(tmp_path / "clip.mp4", synthetic_frames(5) * 4, fps=10.0)
    with VideoFileSource(video, decode_ahead=2) as source:
        assert len(list(source)) == 20
        assert list(source) == []  # a second pass: the file is used up
    source = VideoFileSource(video, decode_ahead=2)
    frames = iter(source)
    next(frames)
    source.close()
    assert len(list(frames)) <= 2  # at most what was already queued


def test_decode_ahead_is_validated(five_frame_video):
    from edge.errors import ConfigError

    with pytest.raises(ConfigError, match="decode_ahead"):
        VideoFileSource(five_frame_video, decode_ahead=-1)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_decode_threads_is_validated(five_frame_video, threads):
    from edge.errors import ConfigError

    with pytest.raises(ConfigError, match="decode_threads"):
        VideoFileSource(five_frame_video, decode_threads=threads)


def test_ffmpeg_decodes_with_the_threads_asked_for_and_the_same_frames(tmp_path):
    import cv2

    from edge.sources import DECODE_THREADS

    video = write_video(tmp_path / "clip.mp4", synthetic_frames(6), fps=10.0)
    decoded = {}
    for threads in (None, 1, 3):
        with VideoFileSource(video, decode_ahead=0, decode_threads=threads) as source:
            if threads is not None:
                assert source._capture.get(cv2.CAP_PROP_N_THREADS) == threads
            decoded[threads] = list(source)
    with VideoFileSource(video) as source:
        assert source.decode_threads == DECODE_THREADS == 1
        assert source._capture.get(cv2.CAP_PROP_N_THREADS) == 1
    for threads in (1, 3):
        assert [f.index for f in decoded[threads]] == [f.index for f in decoded[None]]
        for a, b in zip(decoded[threads], decoded[None]):
            np.testing.assert_array_equal(a.image_rgb, b.image_rgb)


def test_opencv_threads_is_set_for_the_block_and_restored():
    import cv2

    from edge.sources import opencv_threads

    before = cv2.getNumThreads()
    with opencv_threads(1):
        assert cv2.getNumThreads() == 1
    assert cv2.getNumThreads() == before


def test_a_video_that_states_no_frame_count_ends_without_a_warning(tmp_path, caplog, monkeypatch):
    path = write_video(tmp_path / "clip.mp4", synthetic_frames(5), fps=10.0)
    with VideoFileSource(path, max_consecutive_failures=3) as source:
        source.frame_count = None  # as raw streams (MJPEG, some .ts) state none
        frames = list(source)
    assert len(frames) == 5 and source.skipped_frames == 0 and "no frame decodes" not in caplog.text
