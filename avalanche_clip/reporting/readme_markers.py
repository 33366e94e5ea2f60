"""Generated blocks in Markdown files: the text between ``<!-- name:begin -->`` and
``<!-- name:end -->``, rewritten by the scripts that compute it (``experiments/claims.py``,
``experiments/tuning_noise.py``) so that no table of results in a README is typed by hand."""

from __future__ import annotations

import re
from pathlib import Path


class ReadmeMarkerError(ValueError):
    """A file without exactly one pair of the markers a generated block needs."""


def replace_between(text: str, name: str, content: str, where: Path) -> str:
    """``text`` with the lines between ``<!-- name:begin -->`` and ``<!-- name:end -->`` replaced
    by ``content`` after a blank line (so a table ends before the closing comment when ``content``
    ends with a newline); ``where`` names the file in the error."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), flags=re.S)
    if len(pattern.findall(text)) != 1:
        raise ReadmeMarkerError(f"{where} must hold exactly one {begin} ... {end} pair")
    return pattern.sub(lambda _: f"{begin}\n\n{content}\n{end}", text)
