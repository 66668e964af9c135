#!/usr/bin/env bash
# What travels to a lent device machine: at most 64 MiB of the checkout (tracked files,
# untracked files git does not ignore, carried paths). The bundled weights alone are
# ~65 MiB (old models stay so that their files keep decoding), so a device call from a
# full checkout is refused before any machine starts.
#
#     benchmarks/device_tree.sh slim [KEEP...]   # before the device calls
#     benchmarks/device_tree.sh size [CARRY...]  # MiB that would travel
#     benchmarks/device_tree.sh restore          # after them, before any commit
#
# `slim` untracks every bundled .safetensors file but the KEEP paths (e.g. the default
# models' weights, which gpu_smoke.sh codes with) and ignores them in .git/info/exclude,
# so that they stay on disk here but do not travel (`slim` again starts afresh). Nothing
# else may be staged meanwhile: `restore` puts the index back as HEAD has it and drops
# the exclusions. `size` fails when a call would be refused.
# A slimmed index shows the weights as deleted in `git status`; never commit it.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
EXCLUDE=$(git rev-parse --git-path info/exclude)
BEGIN="# benchmarks/device_tree.sh slim: begin"
END="# benchmarks/device_tree.sh slim: end"

travelling_bytes() {  # travelling_bytes [CARRY...]: bytes of what a device call sends
    {
        git ls-files -z --cached --others --exclude-standard
        [ $# -eq 0 ] || find "$@" -type f -print0
    } | xargs -0 -r stat -c %s -- 2>/dev/null | awk '{ total += $1 } END { print total + 0 }'
}

report() {  # report [CARRY...]: fails when a device call would refuse that much
    local bytes
    bytes=$(travelling_bytes "$@")
    awk -v b="$bytes" 'BEGIN { printf "%.1f MiB would travel (the limit is 64 MiB)\n", b / 1048576 }'
    [ "$bytes" -le $((64 * 1048576)) ]
}

restore() {
    git reset -q HEAD -- unicomp/weights
    if [ -f "$EXCLUDE" ]; then
        sed -i "\|^$BEGIN\$|,\|^$END\$|d" "$EXCLUDE"
    fi
}

case "${1:-}" in
slim)
    shift
    if grep -qxF "$BEGIN" "$EXCLUDE" 2>/dev/null; then
        restore  # slimmed before: slim afresh, with this call's KEEP
    fi
    if ! git diff --cached --quiet; then
        echo "the index holds staged changes: commit or unstage them first" >&2
        exit 1
    fi
    mapfile -t weights < <(git ls-files 'unicomp/weights/*.safetensors')
    dropped=()
    for path in "${weights[@]}"; do
        keep=false
        for kept in "$@"; do [ "$path" = "$kept" ] && keep=true; done
        $keep || dropped+=("$path")
    done
    mkdir -p "$(dirname "$EXCLUDE")"
    { echo "$BEGIN"; printf '/%s\n' "${dropped[@]}"; echo "$END"; } >>"$EXCLUDE"
    git rm -q --cached -- "${dropped[@]}"
    echo "untracked ${#dropped[@]} weight files (still on disk); '$0 restore' tracks them again"
    report
    ;;
restore)
    restore
    git status --short -- unicomp/weights
    report || true  # the full checkout is over the limit: that is why slim exists
    ;;
size)
    shift
    report "$@"
    ;;
*)
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 2
    ;;
esac
