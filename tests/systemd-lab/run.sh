#!/usr/bin/env bash
# The systemd lab: a minimal Debian guest built from Debian's packages
# (mmdebstrap), booted under QEMU (TCG) with Debian's kernel and systemd as
# PID 1, installs the project's .deb and checks, under a real systemd:
# install (sysusers, tmpfiles, not started unconfigured), READY, the STATUS
# line, the socket's mode and group, reload (applied; a wait and a
# connection kept; a bad file refused; restart-only keys named), a scan
# through a serial port after the reload, a clean stop with sign-out, and
# a watchdog restart of a daemon whose journal thread is frozen (the test
# build `ybposd-under-test`, feature crash-points), plus `systemd-analyze
# verify` and the exposure score of the installed unit.
#
#   tests/systemd-lab/run.sh [DEB]    # default: build it (packaging/build-deb.sh)
#
# Needs root (mmdebstrap), mmdebstrap, qemu-system-x86_64, cpio and
# apt-get; prints "SKIPPED: systemd-lab: <reason>" and exits 0 when those
# cannot be had or QEMU cannot start; a guest that boots but fails a check
# exits 1. Nothing is cached between CI runs but Debian's kernel package,
# shared with the USB lab within one run ($TARGET/usb-lab-cache).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
CACHE=${YBPOS_USB_LAB_CACHE:-$TARGET/usb-lab-cache}
WORK=$TARGET/systemd-lab
TIMEOUT=${YBPOS_SYSTEMD_LAB_TIMEOUT:-900}
SUITE=${YBPOS_SYSTEMD_LAB_SUITE:-bookworm}
MIRROR=${YBPOS_SYSTEMD_LAB_MIRROR:-http://deb.debian.org/debian}

skip() { echo "SKIPPED: systemd-lab: $*"; exit 0; }
t0=$(date +%s)

[ "$(id -u)" = 0 ] || skip "mmdebstrap needs root here"
for tool in mmdebstrap qemu-system-x86_64 cpio dpkg-deb apt-get; do
    command -v "$tool" >/dev/null || skip "$tool is not installed (apt-get install mmdebstrap qemu-system-x86 cpio)"
done

# 1. Debian's kernel (the USB lab's download, when it ran first).
mkdir -p "$CACHE"
KDEB=$(ls -1 "$CACHE"/linux-image-*-amd64_*.deb 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$KDEB" ]; then
    PKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    if [ -z "$PKG" ]; then
        apt-get update -qq >/dev/null 2>&1 || true
        PKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    fi
    [ -n "$PKG" ] || skip "no Debian linux-image package known to apt (run apt-get update)"
    (cd "$CACHE" && apt-get download "$PKG" >/dev/null 2>&1) || skip "apt-get download $PKG failed"
    KDEB=$(ls -1 "$CACHE"/linux-image-*-amd64_*.deb | sort -V | tail -1)
fi
KDIR="$CACHE/$(basename "$KDEB" .deb)"
if [ ! -f "$KDIR/.extracted" ]; then
    rm -rf "$KDIR"; mkdir -p "$KDIR"
    dpkg-deb -x "$KDEB" "$KDIR"
    touch "$KDIR/.extracted"
fi
VMLINUZ=$(ls -1 "$KDIR"/boot/vmlinuz-* | head -1)

# 2. What goes in: the .deb, the simulator, the test build of the daemon.
DEB=${1:-}
if [ -z "$DEB" ]; then
    DEB=$("$ROOT/packaging/build-deb.sh" | tail -1)
fi
echo "systemd-lab: building the simulator and the test daemon"
(cd "$ROOT" && cargo build --quiet -p settlement-sim --bin ybpos-gateway-sim \
    && cargo build --quiet -p ybpos-e2e --bin ybposd-under-test)

# 3. The guest: minbase + systemd + udev, as an initramfs (no disk, no modules).
rm -rf "$WORK"; mkdir -p "$WORK"
R=$WORK/root
echo "systemd-lab: mmdebstrap $SUITE (minbase, systemd, udev)"
m0=$(date +%s)
if ! mmdebstrap --quiet --variant=minbase --include=systemd,systemd-sysv,udev,procps \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    "$SUITE" "$R" "$MIRROR" > "$WORK/mmdebstrap.log" 2>&1; then
    tail -5 "$WORK/mmdebstrap.log"
    skip "mmdebstrap failed (no Debian mirror reachable?)"
fi
m1=$(date +%s)
rm -rf "$R"/var/cache/apt/* "$R"/var/lib/apt/lists/*
# The doc/man exclusions were for the image; the package under test keeps its man pages.
rm -f "$R"/etc/dpkg/dpkg.cfg.d/99mmdebstrap
echo lab > "$R/etc/hostname"
: > "$R/etc/fstab"
mkdir -p "$R/lab" "$R/etc/systemd/system/multi-user.target.wants"
cp "$DEB" "$R/lab/ybpos.deb"
install -m 0755 "$ROOT/tests/systemd-lab/guest-test.sh" "$R/lab/guest-test.sh"
for b in ybpos-gateway-sim ybposd-under-test; do
    objcopy --strip-debug "$TARGET/debug/$b" "$R/lab/$b" 2>/dev/null || cp "$TARGET/debug/$b" "$R/lab/$b"
done
cat > "$R/etc/systemd/system/ybpos-lab.service" <<'UNIT'
[Unit]
Description=ybpos systemd lab checks
After=basic.target
[Service]
Type=simple
ExecStart=/lab/guest-test.sh
StandardOutput=tty
TTYPath=/dev/ttyS0
[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/ybpos-lab.service "$R/etc/systemd/system/multi-user.target.wants/"
# Quiet, quick boot: no logins on the consoles, no timers.
for u in getty@tty1.service serial-getty@ttyS0.service apt-daily.timer apt-daily-upgrade.timer \
         dpkg-db-backup.timer e2scrub_all.timer fstrim.timer systemd-tmpfiles-clean.timer; do
    ln -sf /dev/null "$R/etc/systemd/system/$u"
done
(cd "$R" && find . | cpio -o -H newc --quiet) > "$WORK/initrd.cpio"
echo "systemd-lab: guest image $(du -m "$WORK/initrd.cpio" | cut -f1) MiB, mmdebstrap took $((m1 - m0))s"

# 4. Boot under TCG; ttyS0 is the console, ttyS1 a serial scanner fed
# through a FIFO when the guest says LAB-SCAN-NOW.
mkfifo "$WORK/scan.in" "$WORK/scan.out"
: > "$WORK/console.log"
echo "systemd-lab: booting $(basename "$VMLINUZ") with systemd as PID 1 (timeout ${TIMEOUT}s)"
b0=$(date +%s)
set +e
timeout "$TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max -m 2048 -smp 2 \
    -kernel "$VMLINUZ" -initrd "$WORK/initrd.cpio" \
    -append "console=ttyS0 rdinit=/sbin/init panic=-1 quiet loglevel=3 systemd.show_status=0 ${YBPOS_SYSTEMD_LAB_CMDLINE:-}" \
    -display none -monitor none -no-reboot \
    -serial "file:$WORK/console.log" -chardev "pipe,id=scan,path=$WORK/scan" -serial chardev:scan \
    -nic none </dev/null > "$WORK/qemu.log" 2>&1 &
qemu=$!
fed=0
while kill -0 $qemu 2>/dev/null; do
    if [ $fed = 0 ] && grep -q '^LAB-SCAN-NOW' "$WORK/console.log" 2>/dev/null; then
        printf '134567890123456789\r' > "$WORK/scan.in" && fed=1
    fi
    sleep 0.5
done
wait $qemu; rc=$?
set -e
b1=$(date +%s)
grep -E '^(LAB|CHECK|SYSTEMD-LAB|  )' "$WORK/console.log" || true
if ! grep -q '^LAB: systemd' "$WORK/console.log"; then
    if [ ! -s "$WORK/console.log" ]; then
        skip "QEMU did not start a guest (exit $rc): $(head -c 300 "$WORK/qemu.log" | tr '\n' ' ')"
    fi
    echo "systemd-lab: the guest did not reach the lab unit (last console lines follow)"
    tail -n 40 "$WORK/console.log"
    exit 1
fi
echo "systemd-lab: mmdebstrap $((m1 - m0))s, guest ran $((b1 - b0))s, whole lab $((b1 - t0))s"
if grep -q '^SYSTEMD-LAB: PASS' "$WORK/console.log"; then
    exit 0
fi
[ $rc -eq 124 ] && echo "systemd-lab: the guest timed out after ${TIMEOUT}s"
echo "systemd-lab: FAILED (console: $WORK/console.log)"
exit 1
