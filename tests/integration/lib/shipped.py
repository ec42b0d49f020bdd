"""The shipped channel files (channels/*.yaml) as the integration tests run
them: in a temporary engine folder, with their port moved to a free one,
their script path made absolute, enabled, and their vars pointed at the test's
peers."""
import os
import re

SRC = os.environ.get("JUNCTION_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../.."))


def shipped(name, port=None, vars=None, replace=()):
    """`replace`: (old, new) pairs, each replacing the first `old` left (a
    text found twice is listed twice)."""
    text = open(f"{SRC}/channels/{name}.yaml").read()
    if port is not None:
        text = re.sub(r"port: \d+", f"port: {port}", text, count=1)
    text = text.replace("script: transforms/", f"script: {SRC}/transforms/")
    text = text.replace("\nenabled: false\n", "\n")
    for key, value in (vars or {}).items():
        text, n = re.subn(rf"^(  {re.escape(key)}):.*$", lambda m: f"{m.group(1)}: {value}", text, flags=re.M)
        if n != 1:
            raise ValueError(f"channels/{name}.yaml has no var {key}")
    for old, new in replace:
        if old not in text:
            raise ValueError(f"channels/{name}.yaml has no {old!r}")
        text = text.replace(old, new, 1)
    return text
