"""Faces: the face_recognition (dlib) adapter, photo decoding and the enrolment photo checks.

The gate and the gateway's enrolment both use it, so a face is found, encoded and judged the
same way on both sides. It imports contracts/ and libraries only, never edge/, gateway/ or
dormguard/ (docs/decisions/0009, tests/unit/test_import_boundaries.py).
"""
