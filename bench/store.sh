#!/usr/bin/env bash
# `gate post` overhead with the SQLite store and with the PostgreSQL store, medians in one run:
#   bash bench/store.sh
# Builds gate in release mode, then runs bench/store.py in a fresh kernel-keyring session
# (the fake account's token lives there). Needs python3, keyutils and Debian's postgresql.
# Knobs: RUNS (posts per store, default 40), WARMUP (default 3), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v keyctl >/dev/null || { echo "bench/store.sh: install keyutils" >&2; exit 1; }
cargo build --release -q
target=${CARGO_TARGET_DIR:-target}
GATE="$target/release/gate" exec keyctl session - python3 bench/store.py
