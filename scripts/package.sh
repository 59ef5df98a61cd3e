#!/usr/bin/env bash
# Builds the Debian packages brine-master (the daemon, brine, brine-run, brine-key) and
# brine-minion (the daemon, brine-call) into target/debian, with cargo-deb, from the
# [package.metadata.deb] sections of crates/master/Cargo.toml and crates/minion/Cargo.toml and
# the maintainer scripts in packaging/deb/. tests/packages.sh installs them for real.
#
# 1. The binaries: the master's side in the release profile, the minion's in release-small (built
#    for size, as the README installs it). Each build names its packages; never --workspace,
#    which is what cargo-deb would build here and which would ship the daemons with fail points
#    (the tests crate turns on their `failpoints` feature).
# 2. The files generated from the sources, into <profile dir>/packaging/<package>/: the units
#    with ExecStart= in /usr/bin (systemd/ names /usr/local/bin, for installing by hand), and man
#    pages (gzipped) and bash, zsh and fish completions from `brine manpage` and
#    `brine completions`.
# 3. `cargo deb --no-build` for each package.
#
# Needs a Rust toolchain, a C compiler (the bundled SQLite) and dpkg-shlibdeps (dpkg-dev: the
# packages' Depends on libc6); cargo-deb is installed with `cargo install` when missing, and
# dpkg-dev with apt-get when missing and run as root. Prints the .deb paths, one a line, on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
    echo "package.sh: $*" >&2
    exit 1
}
say() { echo "package.sh: $*" >&2; }

# cargo-deb 3: the metadata uses its `profile` key and its `target/release/` profile mapping.
if ! cargo deb --version >/dev/null 2>&1; then
    say "installing cargo-deb (cargo install cargo-deb --locked)"
    cargo install cargo-deb --locked --version '^3' >&2
fi
version=$(cargo deb --version | sed -n -E 's/^cargo-deb v?([0-9]+)\..*/\1/p')
[ -n "$version" ] && [ "$version" -ge 3 ] ||
    die "cargo-deb 3 or newer is needed (have: $(cargo deb --version)); cargo install cargo-deb --locked --force"

if ! command -v dpkg-shlibdeps >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1 ||
        die "dpkg-shlibdeps is missing: install dpkg-dev (it computes the packages' Depends)"
    say "installing dpkg-dev (for dpkg-shlibdeps)"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dpkg-dev >&2
fi

target_dir=${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')}
[ -n "$target_dir" ] || die "cannot find cargo's target directory"
out=$target_dir/debian
started=$SECONDS

say "building brine-master, brine, brine-run, brine-key (release)"
cargo build --locked --release -p brine-master -p brine-cli \
    --bin brine-master --bin brine --bin brine-run --bin brine-key
say "building brine-minion, brine-call (release-small)"
cargo build --locked --profile release-small -p brine-minion -p brine-cli \
    --bin brine-minion --bin brine-call
built=$SECONDS

brine=$target_dir/release/brine

# generate DIR UNIT COMMAND...: the unit and the man pages and completions of the commands.
generate() {
    local dir=$1 unit=$2 command
    shift 2
    rm -rf "$dir"
    mkdir -p "$dir/man" "$dir/bash" "$dir/zsh" "$dir/fish"
    grep -q '^ExecStart=/usr/local/bin/brine-' "systemd/$unit" ||
        die "systemd/$unit: no ExecStart=/usr/local/bin/brine-... line to point at /usr/bin"
    {
        echo "# Installed by the ${unit%.service} package, with the binary in /usr/bin. Override"
        echo "# settings with \`systemctl edit ${unit%.service}\`; the \"Install:\" note below is for"
        echo "# installing by hand, without the package."
        echo "#"
        sed '/^ExecStart=/s#/usr/local/bin/brine-#/usr/bin/brine-#' "systemd/$unit"
    } >"$dir/$unit"
    for command in "$@"; do
        # Compressed here, as Debian wants man pages: cargo-deb compresses only files it did
        # not find in the profile directory.
        "$brine" manpage "$command" | gzip -9n >"$dir/man/$command.1.gz"
        "$brine" completions bash "$command" >"$dir/bash/$command"
        "$brine" completions zsh "$command" >"$dir/zsh/_$command"
        "$brine" completions fish "$command" >"$dir/fish/$command.fish"
    done
}
generate "$target_dir/release/packaging/brine-master" brine-master.service brine brine-run brine-key
generate "$target_dir/release-small/packaging/brine-minion" brine-minion.service brine-call

mkdir -p "$out"
for package in brine-master brine-minion; do
    say "packaging $package"
    # cargo deb prints the path of the package it wrote.
    deb=$(cargo deb --no-build --locked -p "$package" --output "$out")
    [ -f "$deb" ] || die "cargo deb did not write a package for $package (it printed '$deb')"
    echo "$deb"
done
say "built in $((built - started)) s, packaged in $((SECONDS - built)) s"
