#!/usr/bin/env bash
# Builds the ybpos .deb with dpkg-deb (no cargo-deb: nothing to install or
# compile before packaging, and the maintainer scripts are plain files here).
#
#   packaging/build-deb.sh            # → $CARGO_TARGET_DIR/debian/ybpos_<version>_<arch>.deb
#
# Contents: /usr/bin/ybposd (release, --no-default-features: no simulator,
# no test code) and /usr/bin/ybpos; the unit, sysusers.d, tmpfiles.d and
# udev rules from systemd/; /etc/ybpos/ybpos.toml (a conffile: a changed
# one is never overwritten); man pages made from the clap definitions
# (daemon/examples/manpages.rs, clap_mangen); the README and the full
# example config under /usr/share/doc/ybpos; the OpenRPC document when
# docs/openrpc.json exists (hook: YBPOS_OPENRPC=path).
# Prints the path of the .deb on its last line.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$TARGET/debian
STAGE=$OUT/stage
cd "$ROOT"

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
ARCH=$(dpkg --print-architecture)

echo "build-deb: cargo build --release --no-default-features -p ybpos-daemon" >&2
cargo build --quiet --release --no-default-features -p ybpos-daemon
echo "build-deb: man pages from the clap definitions" >&2
rm -rf "$STAGE"
mkdir -p "$STAGE"/{DEBIAN,usr/bin,lib/systemd/system,lib/udev/rules.d,usr/lib/sysusers.d,usr/lib/tmpfiles.d,etc/ybpos,usr/share/man/man1,usr/share/doc/ybpos}
cargo run --quiet -p ybpos-daemon --example manpages -- "$STAGE/usr/share/man/man1" >/dev/null
gzip -9n "$STAGE"/usr/share/man/man1/*.1

for b in ybposd ybpos; do
    install -m 0755 "$TARGET/release/$b" "$STAGE/usr/bin/$b"
    strip --strip-debug "$STAGE/usr/bin/$b" 2>/dev/null || true
done
install -m 0644 systemd/ybposd.service "$STAGE/lib/systemd/system/ybposd.service"
install -m 0644 systemd/60-ybpos-scanners.rules "$STAGE/lib/udev/rules.d/60-ybpos-scanners.rules"
install -m 0644 systemd/ybpos.sysusers.conf "$STAGE/usr/lib/sysusers.d/ybpos.conf"
install -m 0644 systemd/ybpos.tmpfiles.conf "$STAGE/usr/lib/tmpfiles.d/ybpos.conf"
install -m 0644 packaging/ybpos.toml "$STAGE/etc/ybpos/ybpos.toml"
install -m 0644 README.md "$STAGE/usr/share/doc/ybpos/README.md"
install -m 0644 config/examples/ybpos.toml "$STAGE/usr/share/doc/ybpos/ybpos.toml.example"
OPENRPC=${YBPOS_OPENRPC:-docs/openrpc.json}
if [ -f "$OPENRPC" ]; then
    install -m 0644 "$OPENRPC" "$STAGE/usr/share/doc/ybpos/openrpc.json"
fi
cat > "$STAGE/usr/share/doc/ybpos/copyright" <<'COPY'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: ybpos
Files: *
License: MIT or Apache-2.0
COPY

for s in postinst prerm postrm; do
    install -m 0755 "packaging/debian/$s" "$STAGE/DEBIAN/$s"
done
echo /etc/ybpos/ybpos.toml > "$STAGE/DEBIAN/conffiles"

# Depends: the binaries link libc and libgcc_s only (everything else is
# Rust or vendored); the libc version is the newest GLIBC_ symbol they use.
glibc=$(objdump -T "$STAGE/usr/bin/ybposd" "$STAGE/usr/bin/ybpos" 2>/dev/null \
    | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
for b in ybposd ybpos; do
    extra=$(ldd "$STAGE/usr/bin/$b" | awk '{print $1}' \
        | grep -vE '^(linux-vdso|/lib64/ld-linux|libc\.so|libm\.so|libgcc_s\.so|libpthread|libdl|librt)' || true)
    if [ -n "$extra" ]; then
        echo "build-deb: $b links $extra: add its package to Depends" >&2
        exit 1
    fi
done
size=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
cat > "$STAGE/DEBIAN/control" <<CONTROL
Package: ybpos
Version: $VERSION
Architecture: $ARCH
Maintainer: ybpos developers <dev@ybpos.invalid>
Installed-Size: $size
Depends: libc6 (>= ${glibc:-2.17}), libgcc-s1, systemd (>= 232), udev
Recommends: sqlite3
Section: misc
Priority: optional
Homepage: https://example.invalid/ybpos
Description: 医保码 terminal daemon for cashier PCs
 ybposd reads patients' dynamic 医保码 (medical-insurance QR codes) from
 barcode scanners (serial, HID-POS, keyboard wedge), tells them apart from
 payment codes, decodes them at the provincial settlement gateway, journals
 and settles transactions exactly once, and serves HIS/POS software over a
 local JSON-RPC API (Unix socket, loopback HTTP and WebSocket).
 .
 After installing, edit /etc/ybpos/ybpos.toml (ybposd --check-config says
 what is missing), then: systemctl enable --now ybposd
CONTROL

DEB="$OUT/ybpos_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$DEB" >/dev/null
echo "build-deb: $(du -h "$DEB" | cut -f1) $DEB" >&2
echo "$DEB"
