#!/usr/bin/env bash
# The whole-drill tests (pytest -m drill), in two halves at once, apart from the rest of the
# suite. A drill mostly waits out its fault windows (under one core busy), so two share the
# machine with room to spare; the rest's timing-sensitive tests would crowd them.
#
# Two pytest processes rather than xdist: each half's files share nothing, and xdist's
# `loadgroup` does not group under pytest 9 (it renames items through an attribute pytest
# no longer reads), while `loadfile` may put the two longest drills on one worker.
# Each half prints with its own prefix; the exit code is the first failing half's.
set -uo pipefail
cd "$(dirname "$0")/.."
D=tests/gameday/drill
FIRST=("$D/test_drill_safe.py" "$D/test_drill_abort.py" "$D/test_drill_profile.py")
SECOND=("$D/test_drill_unsafe.py" "$D/test_drill_broken.py")
for file in "$D"/test_drill_*.py; do  # a new drill file must be put in a half
    case " ${FIRST[*]} ${SECOND[*]} " in
        *" $file "*) ;;
        *) echo "scripts/drill_tests.sh: $file is in neither half" >&2; exit 2 ;;
    esac
done
# Each half's temporary files (drill journals, histories, database snapshots) in a place of
# its own (0700), removed when both halves pass and kept as evidence when one fails.
base=$(mktemp -d -t gameday-drill-tests.XXXXXX)
half() {  # name, files...
    local name=$1
    shift
    .venv/bin/pytest -m drill -p no:cacheprovider --basetemp="$base/$name" \
        --durations=5 "$@" 2>&1 | sed -u "s/^/[$name] /"
}
half drills-1 "${FIRST[@]}" &
first=$!
half drills-2 "${SECOND[@]}" &
second=$!
wait "$first"
a=$?
wait "$second"
b=$?
if [ "$a" -ne 0 ] || [ "$b" -ne 0 ]; then
    echo "scripts/drill_tests.sh: the drills' journals and histories are kept in $base" >&2
    if [ "$a" -ne 0 ]; then exit "$a"; fi
    exit "$b"
fi
rm -rf "$base"
