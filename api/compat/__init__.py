"""The compatibility APIs: Judge0 CE 1.13 (judge0.py) and Piston v2 (piston.py), thin translations onto
Monaco's own submission path (api/routes.accept). Each module holds pure translation functions (a client's
request dict -> a Monaco submit body; a Monaco result dict -> the client's answer) and the routes that call
them; zipfiles.py unpacks Judge0's `additional_files`."""

from __future__ import annotations

from typing import Any

from monaco.api import routes


def unsupported_keys(body: dict[str, Any]) -> list[str]:
    """The keys of a translated submit body that this Monaco does not read: a client's field that needs
    them is refused, not dropped, until Monaco learns them."""
    known = routes.submit_fields()
    return [key for key in body if key not in known]
