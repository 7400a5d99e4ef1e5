"""Real face photos for tests (see edge.samples): the face-recognition 1.3.0 sdist's images."""

from __future__ import annotations

from edge.samples import NAMES, gate_frame, noise_frame, sample_photos_dir

__all__ = ["NAMES", "gate_frame", "noise_frame", "sample_photos_dir"]

if __name__ == "__main__":
    print(sample_photos_dir())
