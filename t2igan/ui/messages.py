"""What the app says back to a visitor: files named relative to the app's folders, refusals logged as one line.

Library messages name absolute paths (useful in a terminal). Everything a handler returns to the browser or the API
goes through `public`, so the server's disk layout stays in the server log.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

from ..weights import weights_dir
from .state import outputs_dir

log = logging.getLogger("t2igan.app")
# an absolute POSIX or Windows path of two or more parts ('/srv/x/y', 'C:\\x\\y'); not a URL, not 'a/b' or '10 / 300'
_ABSOLUTE = re.compile(r"(?<![\w.~:/\\-])(?:[A-Za-z]:)?[\\/](?:[^\s\\/'\"`()<>|,;]+[\\/])+[^\s\\/'\"`()<>|,;]*")


def _roots() -> list[tuple[str, str]]:
    from gradio.utils import get_upload_folder

    roots = [(weights_dir(), "weights"), (outputs_dir(), "outputs"), (Path(get_upload_folder()).resolve(), "uploads"),
             (weights_dir().parent / "data", "data")]  # built datasets (the Train tab's emoji set)
    return sorted(((str(p), label) for p, label in roots), key=lambda r: -len(r[0]))  # the deepest folder first


def public(text: str) -> str:
    """`text` with a visitor's staged upload named as they uploaded it ('shapes.zip', not its staging folder), the
    app's folders written as 'weights/…', 'outputs/…', 'uploads/…', 'data/…' and any other absolute path cut to its
    last part."""
    staged = re.escape(str(outputs_dir() / "uploads"))
    text = re.sub(staged + r"[\\/][^\\/\s]+[\\/]", "", text)  # outputs/uploads/<one upload>/name → name
    for root, label in _roots():
        text = text.replace(root, label)
    return _ABSOLUTE.sub(lambda m: "…/" + re.split(r"[\\/]", m.group(0).rstrip("\\/"))[-1], text)


def refusal(action: str, error: BaseException | str) -> str:
    """The status line for a request the app refuses (bad input, a missing model): logged as one line, with the
    server's own paths, and returned without them."""
    log.info("%s refused: %s", action, error)
    return f"⚠️ {public(str(error))}"
