#!/usr/bin/env bash
# Regenerates what the docs take from the settings declarations (the config
# maps of the channel file and of every connector): docs/channel.schema.json
# (junction schema) and the settings tables of docs/channels.md between their
# marker comments (junction schema --markdown). Tests fail while either is stale.
# Usage: scripts/docs.sh [JUNCTION_BINARY] (default build/engine/app/junction).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${1:-$ROOT/build/engine/app/junction}"
"$BIN" schema > "$ROOT/docs/channel.schema.json"
"$BIN" schema --markdown | /usr/bin/python3 -c '
import re, sys
doc_path = sys.argv[1]
generated = sys.stdin.read()
doc = open(doc_path).read()
blocks = re.findall(r"(<!-- generated: (.+?) \(junction schema --markdown\) -->\n.*?<!-- end of generated \2 -->\n)",
                    generated, re.S)
for block, name in blocks:
    pattern = re.compile(r"<!-- generated: " + re.escape(name) + r" \(junction schema --markdown\) -->\n.*?"
                         r"<!-- end of generated " + re.escape(name) + r" -->\n", re.S)
    if not pattern.search(doc):
        sys.exit(f"docs.sh: no block \"{name}\" in {doc_path}: add its two marker comments where it belongs")
    doc = pattern.sub(lambda m: block, doc)
open(doc_path, "w").write(doc)
' "$ROOT/docs/channels.md"
echo "docs.sh: docs/channel.schema.json and the settings tables of docs/channels.md regenerated"
