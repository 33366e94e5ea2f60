"""Checks that a file is a real PNG or SVG image, not just a file with the right name."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path}: not a PNG"
    assert data[12:16] == b"IHDR", f"{path}: no IHDR chunk"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 100 and height > 100, f"{path}: {width}x{height}"
    assert data.endswith(b"IEND\xaeB`\x82"), f"{path}: truncated"


def assert_svg(path: Path) -> None:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg", f"{path}: not an SVG"
    assert len(list(root.iter())) > 20, f"{path}: an empty canvas"
