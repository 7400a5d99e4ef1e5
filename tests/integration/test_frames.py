"""Frame sources against real OpenCV: generated image folders, MJPG video files, absent devices."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.gate.capture import CaptureSource, FolderSource, open_source
from edge.gate.frames import Frame, FrameSource, SourceSpec, SourceStatus

BACKOFF_S = 0.02
MAX_BACKOFF_S = 0.05
# Grey levels far enough apart that JPEG rounding never confuses two frames.
LEVELS = (10, 70, 130, 190, 250)
SIZE = (48, 64)  # rows, columns


@pytest.fixture
def stop_later() -> Iterator[Callable[[FrameSource], FrameSource]]:
    """Start a source and make sure it is stopped when the test ends, pass or fail."""
    started: list[FrameSource] = []

    def start(source: FrameSource) -> FrameSource:
        started.append(source)
        source.start()
        return source

    yield start
    for source in started:
        source.stop()


def wait_for_status(
    source: FrameSource, predicate: Callable[[SourceStatus], bool], timeout: float = 3.0
) -> SourceStatus:
    deadline = time.monotonic() + timeout
    status = source.status()
    while not predicate(status):
        if time.monotonic() > deadline:
            pytest.fail(f"status never matched, last: {status}")
        time.sleep(0.01)
        status = source.status()
    return status


def level_index(frame: Frame) -> int:
    """Which of LEVELS a uniform grey frame shows."""
    mean = float(frame.image.mean())
    return min(range(len(LEVELS)), key=lambda i: abs(LEVELS[i] - mean))


def write_grey(path: Path, level: int) -> None:
    assert cv2.imwrite(str(path), np.full((*SIZE, 3), level, np.uint8)), path


def write_corrupt(path: Path) -> None:
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 4096, np.uint8).tobytes())


def write_video(path: Path, frames: int, fps: float = 25.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, SIZE[::-1])
    assert writer.isOpened(), "OpenCV cannot write MJPG .avi here"
    for i in range(frames):
        writer.write(np.full((*SIZE, 3), LEVELS[i % len(LEVELS)], np.uint8))
    writer.release()
    check = cv2.VideoCapture(str(path))
    readable = 0
    while check.read()[0]:
        readable += 1
    check.release()
    assert readable == frames, f"wrote {frames} frames, read back {readable}"
    return path


def frames_thread_names() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("frames ")]


# --- image folders --------------------------------------------------------------------------


def test_folder_images_arrive_in_name_order_and_loop(
    tmp_path: Path, stop_later: Callable[[FrameSource], FrameSource]
) -> None:
    """Every delivered frame is the image its sequence number points at, across passes."""
    for i, suffix in enumerate((".png", ".jpg", ".bmp", ".jpeg")):
        write_grey(tmp_path / f"frame_{i:03d}{suffix}", LEVELS[i])
    (tmp_path / "notes.txt").write_text("not an image")
    source = stop_later(FolderSource(tmp_path, fps=60.0))

    seen: list[Frame] = []
    while len(seen) < 10:
        frame = source.latest(timeout=1.0)
        assert frame is not None
        seen.append(frame)

    assert [level_index(f) for f in seen] == [(f.seq - 1) % 4 for f in seen]
    assert seen[-1].seq > 4, "the folder should have looped"
    assert [f.seq for f in seen] == sorted({f.seq for f in seen}), "no frame is handed out twice"
    assert seen[0].image.dtype == np.uint8
    assert seen[0].image.shape == (*SIZE, 3)
    status = source.status()
    assert status.healthy
    assert status.skipped_bad == 0
    assert status.frames >= seen[-1].seq
    assert status.last_frame_age_s is not None
    assert status.last_frame_age_s < 1.0


def test_folder_skips_undecodable_image_counts_and_logs_it(
    tmp_path: Path,
    stop_later: Callable[[FrameSource], FrameSource],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A corrupt .jpg is skipped every pass and counted; the source stays healthy."""
    caplog.set_level(logging.WARNING, logger="edge.gate.capture")
    for i in range(3):
        write_grey(tmp_path / f"frame_{i:03d}.png", LEVELS[i])
    corrupt = tmp_path / "frame_001_corrupt.jpg"
    write_corrupt(corrupt)
    assert cv2.imread(str(corrupt)) is None
    source = stop_later(FolderSource(tmp_path, fps=60.0))

    seen: list[Frame] = []
    while not seen or seen[-1].seq < 7:
        frame = source.latest(timeout=1.0)
        assert frame is not None
        seen.append(frame)

    assert [level_index(f) for f in seen] == [(f.seq - 1) % 3 for f in seen]
    status = source.status()
    assert status.healthy
    assert status.skipped_bad >= 2, "skipped once in each of at least two passes"
    warnings = [r.getMessage() for r in caplog.records if str(corrupt) in r.getMessage()]
    assert len(warnings) == 1, "warned about once, not once per pass"


def test_folder_without_decodable_images_is_degraded(
    tmp_path: Path, stop_later: Callable[[FrameSource], FrameSource]
) -> None:
    write_corrupt(tmp_path / "broken.jpg")
    source = stop_later(
        FolderSource(tmp_path, fps=60.0, initial_backoff_s=BACKOFF_S, max_backoff_s=MAX_BACKOFF_S)
    )

    status = wait_for_status(source, lambda s: s.reconnects >= 2)
    assert not status.healthy
    assert str(tmp_path) in status.detail
    assert "could be decoded" in status.detail
    assert status.skipped_bad >= 2
    assert source.latest(timeout=0.05) is None


def test_empty_folder_is_degraded(
    tmp_path: Path, stop_later: Callable[[FrameSource], FrameSource]
) -> None:
    source = stop_later(
        FolderSource(tmp_path, initial_backoff_s=BACKOFF_S, max_backoff_s=MAX_BACKOFF_S)
    )

    status = wait_for_status(source, lambda s: s.reconnects >= 1)
    assert not status.healthy
    assert status.detail.startswith(f"folder {tmp_path}: no images")


def test_missing_folder_is_degraded_and_retried(
    tmp_path: Path, stop_later: Callable[[FrameSource], FrameSource]
) -> None:
    missing = tmp_path / "nowhere"
    source = stop_later(
        open_source(
            SourceSpec(
                "folder",
                str(missing),
                fps=None,
                loop=True,
                initial_backoff_s=BACKOFF_S,
                max_backoff_s=MAX_BACKOFF_S,
            )
        )
    )

    status = wait_for_status(source, lambda s: s.reconnects >= 3)
    assert not status.healthy
    assert status.detail == f"folder {missing} does not exist"
    assert status.frames == 0
    assert status.last_frame_age_s is None


def test_folder_recovers_when_images_appear(
    tmp_path: Path, stop_later: Callable[[FrameSource], FrameSource]
) -> None:
    source = stop_later(
        FolderSource(tmp_path, fps=60.0, initial_backoff_s=BACKOFF_S, max_backoff_s=MAX_BACKOFF_S)
    )
    wait_for_status(source, lambda s: s.reconnects >= 1)

    write_grey(tmp_path / "late.png", LEVELS[2])
    frame = source.latest(timeout=1.0)

    assert frame is not None
    assert level_index(frame) == 2
    assert source.status().healthy


# --- video files ----------------------------------------------------------------------------


def test_slow_consumer_gets_the_newest_video_frame(
    tmp_path: Path, stop_later: Callable[[FrameSource], FrameSource]
) -> None:
    """After a slow step the consumer skips to a fresh frame instead of working off a backlog."""
    video = write_video(tmp_path / "clip.avi", frames=30)
    source = stop_later(CaptureSource("file", str(video), loop=True, fps_limit=100.0))

    first = source.latest(timeout=2.0)
    assert first is not None
    time.sleep(0.4)  # a slow recognition step
    after_sleep = source.latest(timeout=1.0)
    assert after_sleep is not None
    age = time.monotonic() - after_sleep.captured_at
    following = source.latest(timeout=1.0)

    assert after_sleep.seq >= first.seq + 10, "frames produced meanwhile were dropped"
    assert age < 0.15, f"the frame after sleeping is {age:.3f} s old"
    assert following is not None
    assert following.seq > after_sleep.seq
    assert after_sleep.image.shape == (*SIZE, 3)
    assert after_sleep.image.dtype == np.uint8
    status = source.status()
    assert status.healthy, status.detail
    assert status.frames > 30, "the 30-frame file should have looped"
    assert status.reconnects == 0, "rewinding at the end is not a reconnect"


def test_video_file_is_paced_at_its_own_fps_by_default(
    tmp_path: Path, stop_later: Callable[[FrameSource], FrameSource]
) -> None:
    video = write_video(tmp_path / "clip.avi", frames=60, fps=25.0)
    source = stop_later(CaptureSource("file", str(video)))
    first = source.latest(timeout=2.0)
    assert first is not None

    time.sleep(0.4)
    produced = source.status().frames - first.seq

    assert 5 <= produced <= 14, f"{produced} frames in 0.4 s, expected about 10 at 25 fps"


def test_video_file_without_loop_ends(
    tmp_path: Path, stop_later: Callable[[FrameSource], FrameSource]
) -> None:
    video = write_video(tmp_path / "clip.avi", frames=10)
    source = stop_later(CaptureSource("file", str(video), loop=False, fps_limit=200.0))

    status = wait_for_status(source, lambda s: s.detail.endswith("ended"))
    assert not status.healthy
    assert status.frames == 10
    assert str(video) in status.detail
    source.latest(timeout=0.0)  # the last frame, if not yet taken
    started = time.monotonic()
    assert source.latest(timeout=2.0) is None
    assert time.monotonic() - started < 0.5, "an ended source does not make callers wait"


def test_missing_video_file_is_degraded_and_retried(
    tmp_path: Path, stop_later: Callable[[FrameSource], FrameSource]
) -> None:
    missing = tmp_path / "absent.avi"
    spec = SourceSpec(
        "file",
        str(missing),
        fps=None,
        loop=True,
        initial_backoff_s=BACKOFF_S,
        max_backoff_s=MAX_BACKOFF_S,
    )
    source = stop_later(open_source(spec))

    first = wait_for_status(source, lambda s: s.reconnects >= 1)
    later = wait_for_status(source, lambda s: s.reconnects > first.reconnects + 1)
    assert not later.healthy
    assert later.detail == f"file {missing}: does not exist"
    assert source.latest(timeout=0.05) is None


# --- cameras and streams --------------------------------------------------------------------


def test_missing_camera_is_degraded_and_retried(
    stop_later: Callable[[FrameSource], FrameSource],
) -> None:
    if Path("/dev/video57").exists():
        pytest.skip("this machine has a /dev/video57")
    spec = SourceSpec(
        "camera",
        "/dev/video57",
        fps=None,
        loop=True,
        initial_backoff_s=BACKOFF_S,
        max_backoff_s=MAX_BACKOFF_S,
    )
    source = stop_later(open_source(spec))

    first = wait_for_status(source, lambda s: s.reconnects >= 1)
    later = wait_for_status(source, lambda s: s.reconnects > first.reconnects + 1)
    assert not later.healthy
    assert later.detail == "camera 57: cannot open"
    assert later.frames == 0
    assert source.latest(timeout=0.05) is None


def test_unreachable_stream_is_degraded_without_leaking_credentials(
    stop_later: Callable[[FrameSource], FrameSource],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="edge.gate.grabber")
    caplog.set_level(logging.DEBUG, logger="edge.gate.capture")
    url = "rtsp://admin:hunter2@127.0.0.1:9/live"  # discard port: connection refused at once
    source = stop_later(
        open_source(
            SourceSpec(
                "stream",
                url,
                fps=None,
                loop=True,
                initial_backoff_s=BACKOFF_S,
                max_backoff_s=MAX_BACKOFF_S,
            )
        )
    )

    status = wait_for_status(source, lambda s: s.reconnects >= 1, timeout=5.0)
    assert not status.healthy
    assert status.detail == "stream rtsp://***@127.0.0.1:9/live: cannot open"
    assert "hunter2" not in caplog.text


# --- lifecycle ------------------------------------------------------------------------------


def playing_file(tmp_path: Path) -> FrameSource:
    return CaptureSource("file", str(write_video(tmp_path / "clip.avi", frames=10)), loop=True)


def waiting_in_long_backoff(tmp_path: Path) -> FrameSource:
    return FolderSource(tmp_path / "nowhere", initial_backoff_s=30.0, max_backoff_s=30.0)


@pytest.mark.parametrize("make", [playing_file, waiting_in_long_backoff])
def test_stop_joins_the_grabber_quickly(
    tmp_path: Path, make: Callable[[Path], FrameSource]
) -> None:
    source = make(tmp_path)
    source.start()
    wait_for_status(source, lambda s: s.frames > 0 or "does not exist" in s.detail)

    started = time.monotonic()
    source.stop()
    took = time.monotonic() - started

    assert took < 0.5, f"stop() took {took:.2f} s"
    assert frames_thread_names() == []
    status = source.status()
    assert not status.healthy
    assert status.detail.endswith("stopped")
    source.latest(timeout=0.0)  # a frame published before stop(), if any
    assert source.latest(timeout=2.0) is None
    assert time.monotonic() - started < 1.0, "latest() after stop() returns at once"


def test_constructing_a_source_opens_nothing(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", frames=3)
    spec = SourceSpec("file", str(video), fps=None, loop=True)

    source = open_source(spec)

    assert isinstance(source, CaptureSource)
    assert frames_thread_names() == []
    assert source.status() == SourceStatus(
        healthy=False,
        detail=f"file {video}: not started",
        reconnects=0,
        frames=0,
        skipped_bad=0,
        last_frame_age_s=None,
    )
    assert source.latest(timeout=1.0) is None


# --- spec validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (SourceSpec("camera", "front", None, True, None, None), "camera index"),
        (SourceSpec("camera", "-1", None, True, None, None), "camera index"),
        (SourceSpec("camera", "/dev/video", None, True, None, None), "/dev/videoN"),
        (SourceSpec("camera", "/dev/sda", None, True, None, None), "/dev/videoN"),
        (SourceSpec("stream", "ftp://cam/live", None, True, None, None), "rtsp://"),
        (SourceSpec("stream", "cam.local:554", None, True, None, None), "rtsp://"),
        (SourceSpec("stream", "rtsp://", None, True, None, None), "no host"),
        (SourceSpec("file", "  ", None, True, None, None), "empty"),
        (SourceSpec("folder", "imgs", 0.0, True, None, None), "fps"),
        (SourceSpec("file", "a.avi", float("nan"), True, None, None), "fps"),
        (SourceSpec("camera", "0", None, True, 0, None), "width"),
        (SourceSpec("file", "a.avi", None, True, 640, 480), "only to camera"),
        (SourceSpec("camera", "0", None, True, None, None, 0.0, 1.0), "initial_backoff_s"),
        (SourceSpec("camera", "0", None, True, None, None, 2.0, 1.0), "max_backoff_s"),
        (SourceSpec("webcam", "0", None, True, None, None), "kind"),  # type: ignore[arg-type]
    ],
)
def test_invalid_spec_raises_value_error_saying_what_is_wrong(
    spec: SourceSpec, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        open_source(spec)


def test_stream_validation_error_hides_credentials() -> None:
    with pytest.raises(ValueError, match=r"\*\*\*@cam") as caught:
        open_source(SourceSpec("stream", "ftp://admin:hunter2@cam/live", None, True, None, None))
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        (SourceSpec("camera", "2", 15.0, True, 640, 480), CaptureSource),
        (SourceSpec("camera", "/dev/video2", None, True, None, None), CaptureSource),
        (SourceSpec("stream", "RTSP://cam.local:554/live", None, True, None, None), CaptureSource),
        (SourceSpec("stream", "https://cam.local/mjpg", None, True, None, None), CaptureSource),
        (SourceSpec("file", "demo.avi", 10.0, False, None, None), CaptureSource),
        (SourceSpec("folder", "imgs", None, True, None, None), FolderSource),
    ],
)
def test_valid_spec_builds_the_matching_source(spec: SourceSpec, kind: type) -> None:
    assert isinstance(open_source(spec), kind)
