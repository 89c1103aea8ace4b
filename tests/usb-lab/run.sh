#!/usr/bin/env bash
# The USB lab: a QEMU guest (software emulation) with Debian's kernel,
# dummy_hcd and configfs gadgets presenting a HID-POS scanner, a
# keyboard-wedge scanner and a CDC-ACM scanner; the project's own drivers
# read them inside the guest (scanner-drivers/examples/usb-lab-guest.rs).
#
#   tests/usb-lab/run.sh            # build, boot, check; exit 0 on PASS
#
# Needs qemu-system-x86_64, busybox (static), cpio, xz, dpkg-deb and apt-get
# (to download Debian's kernel package once; cached in $YBPOS_USB_LAB_CACHE,
# default target/usb-lab-cache). When QEMU or the kernel cannot be had it
# prints "SKIPPED: usb-lab: <reason>" and exits 0; a guest that boots but
# fails a check exits 1.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
CACHE=${YBPOS_USB_LAB_CACHE:-$TARGET/usb-lab-cache}
WORK=$TARGET/usb-lab
TIMEOUT=${YBPOS_USB_LAB_TIMEOUT:-900}
MODULES="usb-common usbcore udc-core configfs libcomposite u_serial usb_f_acm usb_f_hid dummy_hcd hid usbhid hid-generic cdc-acm evdev"

skip() { echo "SKIPPED: usb-lab: $*"; exit 0; }
t0=$(date +%s)

for tool in qemu-system-x86_64 cpio xz gzip dpkg-deb; do
    command -v "$tool" >/dev/null || skip "$tool is not installed (apt-get install qemu-system-x86 busybox-static cpio xz-utils)"
done
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] || skip "busybox is not installed (apt-get install busybox-static)"
if ldd "$BUSYBOX" >/dev/null 2>&1; then
    skip "$BUSYBOX is dynamically linked (apt-get install busybox-static)"
fi

# 1. Debian's kernel, downloaded once.
mkdir -p "$CACHE"
DEB=$(ls -1 "$CACHE"/linux-image-*-amd64_*.deb 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$DEB" ]; then
    PKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    [ -n "$PKG" ] || PKG=$(apt-cache search --names-only '^linux-image-[0-9.]+-[0-9]+-amd64$' 2>/dev/null | awk '{print $1}' | sort -V | tail -1)
    if [ -z "$PKG" ] && [ "$(id -u)" = 0 ]; then
        apt-get update -qq >/dev/null 2>&1 || true
        PKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    fi
    [ -n "$PKG" ] || skip "no Debian linux-image package known to apt (run apt-get update)"
    echo "usb-lab: downloading $PKG"
    (cd "$CACHE" && apt-get download "$PKG" >/dev/null 2>&1) || skip "apt-get download $PKG failed"
    DEB=$(ls -1 "$CACHE"/linux-image-*-amd64_*.deb | sort -V | tail -1)
fi
KDIR="$CACHE/$(basename "$DEB" .deb)"
if [ ! -f "$KDIR/.extracted" ]; then
    rm -rf "$KDIR"; mkdir -p "$KDIR"
    dpkg-deb -x "$DEB" "$KDIR"
    touch "$KDIR/.extracted"
fi
VMLINUZ=$(ls -1 "$KDIR"/boot/vmlinuz-* | head -1)

# 2. The guest test program, built from the project's drivers.
echo "usb-lab: building the guest program"
(cd "$ROOT" && cargo build --quiet -p scanner-drivers --example usb-lab-guest)
GUEST="$TARGET/debug/examples/usb-lab-guest"

# 3. The initramfs: busybox, modules, init, the program and its libraries.
rm -rf "$WORK"; mkdir -p "$WORK/root"/{bin,lib/modules,proc,sys,dev,tmp,run}
R="$WORK/root"
cp "$BUSYBOX" "$R/bin/busybox"
cp "$ROOT/tests/usb-lab/init" "$R/init"
objcopy --strip-debug "$GUEST" "$R/bin/usb-lab-guest" 2>/dev/null || cp "$GUEST" "$R/bin/usb-lab-guest"
for lib in $(ldd "$GUEST" | grep -o '/[^ ]*'); do
    mkdir -p "$R$(dirname "$lib")"; cp -L "$lib" "$R$lib"
done
for m in $MODULES; do
    ko=$(find "$KDIR/lib/modules" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" | head -1)
    if [ -z "$ko" ]; then echo "usb-lab: module $m not in the package (built in?)"; continue; fi
    case "$ko" in
        *.xz) xz -dc "$ko" > "$R/lib/modules/$m.ko" ;;
        *.zst) zstd -qdc "$ko" > "$R/lib/modules/$m.ko" ;;
        *) cp "$ko" "$R/lib/modules/$m.ko" ;;
    esac
done
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > "$WORK/initrd.gz"

# 4. Boot under TCG (nested KVM hangs on these machines).
echo "usb-lab: booting $(basename "$VMLINUZ") under QEMU TCG (timeout ${TIMEOUT}s)"
boot0=$(date +%s)
set +e
timeout "$TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max -m 768 -smp 1 \
    -kernel "$VMLINUZ" -initrd "$WORK/initrd.gz" \
    -append "console=ttyS0 panic=-1 edd=off loglevel=4 ${YBPOS_USB_LAB_CMDLINE:-}" \
    -display none -monitor none -serial "file:$WORK/console.log" -no-reboot </dev/null \
    > "$WORK/qemu.log" 2>&1
rc=$?
set -e
boot1=$(date +%s)
grep -E '^(LAB|USB-LAB|event)' "$WORK/console.log" || true
if [ ! -s "$WORK/console.log" ]; then
    skip "QEMU did not start a guest (exit $rc): $(head -c 300 "$WORK/qemu.log" | tr '\n' ' ')"
fi
echo "usb-lab: guest ran $((boot1 - boot0))s, whole lab $((boot1 - t0))s (console: $WORK/console.log)"
if grep -q "^USB-LAB: PASS" "$WORK/console.log"; then
    exit 0
fi
[ $rc -eq 124 ] && echo "usb-lab: the guest timed out after ${TIMEOUT}s"
echo "usb-lab: FAILED (last console lines follow)"
tail -n 40 "$WORK/console.log"
exit 1
