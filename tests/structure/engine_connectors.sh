#!/usr/bin/env bash
# The engine and the connectors stay apart (docs/connectors.md):
#  - no file under engine/ includes a connectors/ header (engine/app, which
#    registers the connector types, aside);
#  - no connector includes the engine itself (engine/core/engine.h or
#    channel.h): a factory gets what it needs from its BuildContext;
#  - every folder under connectors/ is a library with its own CMakeLists.txt,
#    added from connectors/CMakeLists.txt.
# Usage: engine_connectors.sh [SOURCE_DIR]   (default: the repository root)
set -u
src=${1:-${JUNCTION_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}}
cd "$src" || exit 2
problems=0
bad() {
    echo "structure: $*" >&2
    problems=$((problems + 1))
}

include='^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]'
sources() { find "$@" -type f \( -name '*.h' -o -name '*.hpp' -o -name '*.cpp' -o -name '*.cc' \) | sort; }

while IFS= read -r hit; do
    bad "$hit: the engine includes a connector (only engine/app may; give the engine an interface in engine/core instead)"
done < <(sources engine -not -path 'engine/app/*' | xargs -r grep -nE "${include}connectors/")

while IFS= read -r hit; do
    bad "$hit: a connector includes the engine (use what BuildContext offers, engine/core/connector.h)"
done < <(sources connectors | xargs -r grep -nE "${include}engine/core/(engine|channel)\.h")

for dir in connectors/*/; do
    dir=${dir%/}
    name=${dir#connectors/}
    if [[ ! -f $dir/CMakeLists.txt ]]; then
        bad "$dir has no CMakeLists.txt (each connector type is a library of its own)"
    elif ! grep -qE "^[[:space:]]*add_subdirectory\([[:space:]]*$name[[:space:]]*\)" connectors/CMakeLists.txt; then
        bad "$dir is not added in connectors/CMakeLists.txt (add_subdirectory($name))"
    fi
done

if ((problems)); then
    echo "structure: $problems problem(s); see docs/connectors.md" >&2
    exit 1
fi
echo "structure: engine and connectors apart ($(ls -d connectors/*/ | wc -l) connector folders)"
