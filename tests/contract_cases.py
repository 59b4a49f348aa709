"""Contract cases shared by the local back end's tests and the e2e suite on a real cluster."""

from __future__ import annotations

# A body POST /submit must refuse with 400, and a fragment of the message that says what to change.
BAD_REQUESTS: list[tuple[str, str]] = [
    ('{"language": "python", "code": ', "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"language": "python"}', "'code' is required"),
    ('{"language": "python", "code": "   "}', "'code' is empty"),
    ('{"language": "python", "code": 42}', "'code'"),
    ('{"language": 7, "code": "x"}', "'language'"),
    ('{"language": "python", "code": "x", "input": ["a"]}', "'input'"),
    ('{"language": "cobol", "code": "x"}', "choose one of: c, cpp, java"),
    ('{"language": "python", "code": "x", "timeoutSeconds": 9999}', "maximum for python is 30"),
    ('{"language": "python", "code": "x", "memoryMb": 99999}', "maximum for python is 512"),
    ('{"language": "python", "code": "x", "memoryMb": "lots"}', "'memoryMb'"),
    ('{"language": "python", "code": "x", "timeoutSeconds": -1}', "'timeoutSeconds'"),
    ('{"language": "python", "code": "x", "timeoutSeconds": 0.0001}', "the minimum is 0.1"),
    ('{"language": "python", "code": "x", "timeoutSeconds": "5"}', "'timeoutSeconds'"),
    ('{"language": "python", "code": "x", "timeoutSeconds": true}', "'timeoutSeconds'"),
    ('{"language": "python", "code": "x", "memoryMb": true}', "'memoryMb'"),
    ('{"language": "python", "code": "\\ud800"}', "lone surrogate"),
    ('{"language": "python", "code": "x", "input": "\\udfff"}', "lone surrogate"),
    ('{"language": "python", "code": "x", "memoryMb": ' + "7" * 5000 + "}", "5000 digits"),
    ("[" * 100_000 + "]" * 100_000, "too deeply"),
    ('{"language": "python", "code": "x", "timeoutSeconds": NaN}', "NaN"),
    ('{"language": "python", "code": "x", "code": "y"}', "twice"),
]
