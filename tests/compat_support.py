"""What the compatibility API tests share: probes of the Monaco features that arrive with the `judge` branch
(expectedOutput, args, files, compilerOptions, redirectStderrToStdout, signal), so that the tests needing
one skip until Monaco has it and run by themselves once it does; and small zip archives."""

from __future__ import annotations

import base64
import io
import zipfile

import pytest

from monaco.api import routes
from monaco.core.models import Outcome


def reads(*keys: str) -> bool:
    """Whether POST /submit reads every one of these keys."""
    return set(keys) <= routes.submit_fields()


def needs(*keys: str) -> pytest.MarkDecorator:
    """Skip until Monaco's POST /submit reads `keys` (the `judge` branch adds them)."""
    return pytest.mark.skipif(not reads(*keys), reason=f"Monaco does not read {', '.join(keys)} yet (branch judge)")


def lacks(*keys: str) -> pytest.MarkDecorator:
    """Run only while Monaco does not read `keys`: the compat APIs must refuse what would need them."""
    return pytest.mark.skipif(reads(*keys), reason=f"Monaco reads {', '.join(keys)} now")


HAS_SIGNAL = "signal" in Outcome.model_fields
needs_signal = pytest.mark.skipif(not HAS_SIGNAL, reason="Monaco's results have no `signal` yet (branch judge)")


def zip_of(files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()
