#!/usr/bin/env bash
# The gate benchmark, in one command:  bash bench/run.sh
#
# Builds gate and the floor in release mode, generates the data set if it is missing or
# bench/gen.py changed, then times on the same data in the same run, for 100, 1,000 and
# 10,000 deny terms:
#   gate check --jsonl   rg -F -i -w -c -f   grep -F -i -w -c -f (100 and 1,000 only)
#   the floor (benches/floor.rs: bare aho-corasick over the raw bytes)
# plus peak RSS (/usr/bin/time -v) and the cold start of one `gate check` (with the 100- and
# the 10,000-term policy) beside /bin/true.
# Writes bench-data/results.md (and the raw hyperfine JSON under bench-data/results/).
#
# Knobs (environment):
#   DATA=bench-data   data folder
#   RUNS=5            timed runs per command (hyperfine --runs)
#   COLD_RUNS=300     timed runs for the cold start
#   POSTS=            use only the first POSTS posts (default: all 100,000)
#   CARGO_TARGET_DIR, CARGO_BUILD_JOBS are honoured by cargo as usual.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
DATA=${DATA:-bench-data}
RUNS=${RUNS:-5}
COLD_RUNS=${COLD_RUNS:-300}
POSTS=${POSTS:-}
TERM_COUNTS=(100 1000 10000)
GREP_MAX_TERMS=1000
OUT="$DATA/results"
NOW=2026-11-23T10:00:00Z

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'bench/run.sh: error: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------------------
missing=()
command -v rg >/dev/null || missing+=(ripgrep)
command -v hyperfine >/dev/null || missing+=(hyperfine)
[ -x /usr/bin/time ] || missing+=(time)
command -v python3 >/dev/null || missing+=(python3)
command -v grep >/dev/null || missing+=(grep)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    if ! command -v apt-get >/dev/null; then
        die "missing ${missing[*]} and no apt-get here: install them (Debian packages: ${missing[*]}) and re-run"
    fi
    sudo=()
    if [ "$(id -u)" != 0 ]; then
        sudo -n true 2>/dev/null || die "missing ${missing[*]}: run \`sudo apt-get install -y ${missing[*]}\` and re-run"
        sudo=(sudo -n)
    fi
    "${sudo[@]}" apt-get install -y "${missing[@]}" >&2 \
        || { "${sudo[@]}" apt-get update >&2 && "${sudo[@]}" apt-get install -y "${missing[@]}" >&2; } \
        || die "could not install ${missing[*]} with apt-get"
fi
grep --version | head -n1 | grep -q GNU || die "grep is not GNU grep; the comparison is with GNU grep"
command -v cargo >/dev/null || die "cargo not found"

# --- build -------------------------------------------------------------------------------
say "building gate and the floor (release)"
artifact() { # cargo JSON messages on stdin -> the executable of target $1
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[1] and m.get("executable"):
        print(m["executable"])' "$1" | tail -n1
}
GATE=$(cargo build --release --bin gate --message-format=json | artifact gate)
FLOOR=$(cargo bench --no-run --bench floor --message-format=json | artifact floor)
[ -x "$GATE" ] || die "could not find the gate binary"
[ -x "$FLOOR" ] || die "could not find the floor binary"

# --- data --------------------------------------------------------------------------------
gen_hash=$(sha256sum bench/gen.py | cut -d' ' -f1)
if [ ! -f "$DATA/posts.jsonl" ] || [ "$(cat "$DATA/gen.sha256" 2>/dev/null)" != "$gen_hash" ]; then
    say "generating the data set into $DATA/"
    python3 bench/gen.py "$DATA" >&2
    echo "$gen_hash" > "$DATA/gen.sha256"
fi
JSONL="$DATA/posts.jsonl"
TXT="$DATA/posts.txt"
if [ -n "$POSTS" ]; then
    sub="$DATA/first-$POSTS"
    mkdir -p "$sub"
    head -n "$POSTS" "$DATA/posts.jsonl" > "$sub/posts.jsonl"
    head -n "$POSTS" "$DATA/posts.txt" > "$sub/posts.txt"
    JSONL="$sub/posts.jsonl"
    TXT="$sub/posts.txt"
fi
n_posts=$(wc -l < "$JSONL")

rm -rf "$OUT"
mkdir -p "$OUT"
q() { printf "'%s'" "$1"; } # quote one word for hyperfine -N (shell-words)

gate_cmd() { echo "$(q "$GATE") --policy $(q "$DATA/policy-$1.toml") --json check --jsonl $(q "$JSONL")"; }
rg_cmd() { echo "rg -F -i -w -c -f $(q "$DATA/terms-$1.txt") $(q "$TXT")"; }
grep_cmd() { echo "grep -F -i -w -c -f $(q "$DATA/terms-$1.txt") $(q "$TXT")"; }
floor_cmd() { echo "$(q "$FLOOR") $(q "$DATA/terms-$1.txt") $(q "$TXT")"; }

# One untimed run of a command under /usr/bin/time -v: checks that it did its job (so a
# broken command cannot pass for a fast one under hyperfine -i), records its peak RSS and
# what it found, and warms the page cache.
#   verify TOOL N OK_CODES COMMAND...
verify() {
    local tool=$1 n=$2 ok=$3
    shift 3
    local code=0
    /usr/bin/time -v -o "$OUT/time-$tool-$n.txt" "$@" > "$OUT/out-$tool-$n.txt" 2> "$OUT/err-$tool-$n.txt" || code=$?
    if [[ " $ok " != *" $code "* ]]; then
        cat "$OUT/err-$tool-$n.txt" >&2
        die "$tool with $n terms exited with $code (expected one of: $ok)"
    fi
    local kb found
    kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$OUT/time-$tool-$n.txt")
    case $tool in
        gate)
            [ "$(wc -l < "$OUT/out-$tool-$n.txt")" = "$n_posts" ] || die "gate printed $(wc -l < "$OUT/out-$tool-$n.txt") results for $n_posts posts"
            found=$(grep -c '"verdict":"deny"' "$OUT/out-$tool-$n.txt" || true)
            cp "$OUT/out-$tool-$n.txt" "$OUT/out-gate-$n.all-threads" ;;
        gate-j1)
            # One thread must write byte for byte what every thread wrote.
            cmp -s "$OUT/out-$tool-$n.txt" "$OUT/out-gate-$n.all-threads" || die "gate -j 1 wrote other results than gate with $n terms"
            rm -f "$OUT/out-gate-$n.all-threads"
            found=$(grep -c '"verdict":"deny"' "$OUT/out-$tool-$n.txt" || true) ;;
        floor) found=$(awk '{print $1}' "$OUT/out-$tool-$n.txt") ;;
        *) found=$(cat "$OUT/out-$tool-$n.txt") ;;
    esac
    printf '%s\t%s\t%s\t%s\n' "$tool" "$n" "$kb" "$found" >> "$OUT/runs.tsv"
    rm -f "$OUT/out-$tool-$n.txt"
}

# gate exits 4 when a post is denied; rg and grep exit 1 when nothing matches.
for n in "${TERM_COUNTS[@]}"; do
    say "$n terms: checking each command once (peak RSS, findings)"
    verify gate "$n" "0 4 5 6" "$GATE" --policy "$DATA/policy-$n.toml" --json check --jsonl "$JSONL"
    verify gate-j1 "$n" "0 4 5 6" "$GATE" --policy "$DATA/policy-$n.toml" --json check --jsonl "$JSONL" -j 1
    verify rg "$n" "0 1" rg -F -i -w -c -f "$DATA/terms-$n.txt" "$TXT"
    if [ "$n" -le "$GREP_MAX_TERMS" ]; then
        verify grep "$n" "0 1" grep -F -i -w -c -f "$DATA/terms-$n.txt" "$TXT"
    fi
    verify floor "$n" "0" "$FLOOR" "$DATA/terms-$n.txt" "$TXT"

    cmds=(-n gate "$(gate_cmd "$n")" -n "gate -j 1" "$(gate_cmd "$n") -j 1" -n rg "$(rg_cmd "$n")")
    if [ "$n" -le "$GREP_MAX_TERMS" ]; then
        cmds+=(-n grep "$(grep_cmd "$n")")
    else
        say "skipping GNU grep at $n terms: it is impractically slow with more than $GREP_MAX_TERMS -F -i -w patterns (minutes per run)"
    fi
    cmds+=(-n floor "$(floor_cmd "$n")")
    say "$n terms: timing ($RUNS runs each)"
    # --output=pipe: GNU grep (and others) stop at the first match when stdout is /dev/null.
    hyperfine -N -i --output=pipe --runs "$RUNS" --export-json "$OUT/hf-$n.json" "${cmds[@]}" >&2
done

say "cold start: one \`gate check\` beside /bin/true ($COLD_RUNS runs)"
cold_gate=("$GATE" --policy "$DATA/policy-100.toml" check "hello world" --now "$NOW")
"${cold_gate[@]}" > /dev/null || die "\`gate check \"hello world\"\` failed (exit $?)"
hyperfine -N --output=pipe --warmup 20 --runs "$COLD_RUNS" --export-json "$OUT/hf-cold.json" \
    -n "gate check" "$(q "$GATE") --policy $(q "$DATA/policy-100.toml") check 'hello world' --now $NOW" \
    -n "gate check (10,000 terms)" "$(q "$GATE") --policy $(q "$DATA/policy-10000.toml") check 'hello world' --now $NOW" \
    -n /bin/true /bin/true >&2
/usr/bin/time -v -o "$OUT/time-cold.txt" "${cold_gate[@]}" > /dev/null
printf 'cold\t1\t%s\t-\n' "$(awk -F': ' '/Maximum resident set size/ {print $2}' "$OUT/time-cold.txt")" >> "$OUT/runs.tsv"

# --- report ------------------------------------------------------------------------------
{
    echo "{"
    echo "  \"posts\": $n_posts, \"runs\": $RUNS, \"cold_runs\": $COLD_RUNS, \"grep_max_terms\": $GREP_MAX_TERMS,"
    echo "  \"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
    echo "  \"nproc\": $(nproc),"
    echo "  \"cpu\": $(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"),"
    echo "  \"commit\": \"$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\","
    echo "  \"dirty\": $(python3 -c 'import json,sys; print(json.dumps(sys.argv[1].split()))' "$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null | awk '{print $2}' | tr '\n' ' ')"),"
    echo "  \"rg\": \"$(rg --version | head -n1)\", \"grep\": \"$(grep --version | head -n1)\", \"hyperfine\": \"$(hyperfine --version)\""
    echo "}"
} > "$OUT/meta.json"
python3 bench/report.py "$OUT" > "$DATA/results.md"
cat "$DATA/results.md"
say "written to $DATA/results.md"
