#!/usr/bin/env bash
# The project's test command (the README's, and the one .ci/run runs): builds the binaries the
# end-to-end tests drive, then runs every test of the workspace with nextest, then the doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --bins
cargo nextest run --workspace --no-fail-fast "$@"
cargo test --workspace --doc
