"""Is the face inside a screen or a sheet? A convex four-sided outline around the face box.

A phone or a tablet held up to the camera frames the face with its bezel: a closed, convex
quadrilateral of strong edges that contains the whole face and is a few times its size. A
living face has its own outline, hair and shoulders around it, and a door frame or a poster
behind the head is broken up by the head itself, so no closed quadrilateral contains the face.
This is the image cue behind ``LivenessRule.screen_frames``; the decision stays in
``edge.gate.liveness.assess``.
"""

from __future__ import annotations

import cv2
import numpy as np

from faces.box import Box

MIN_AREA, MAX_AREA = 1.5, 20.0  # the outline's area, in face-box areas
CORNERS_TOLERANCE = 0.03  # of the outline's perimeter, when it is simplified to a polygon


def screen_around(frame_bgr: np.ndarray, box: Box) -> bool:
    """Whether a convex quadrilateral outline in the frame encloses the whole face box."""
    gray = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
    edges = cv2.Canny(cv2.GaussianBlur(gray, (5, 5), 0), 40, 120)
    edges = cv2.dilate(edges, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    face_area = max(1, box.width * box.height)
    corners = [
        (float(box.left), float(box.top)),
        (float(box.right), float(box.top)),
        (float(box.right), float(box.bottom)),
        (float(box.left), float(box.bottom)),
    ]
    for contour in contours:
        area = cv2.contourArea(contour)
        if not MIN_AREA * face_area <= area <= MAX_AREA * face_area:
            continue
        outline = cv2.approxPolyDP(contour, CORNERS_TOLERANCE * cv2.arcLength(contour, True), True)
        if len(outline) != 4 or not cv2.isContourConvex(outline):
            continue
        if all(cv2.pointPolygonTest(outline, point, False) >= 0 for point in corners):
            return True
    return False
