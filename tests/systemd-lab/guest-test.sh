#!/bin/bash
# Runs inside the systemd lab's guest (systemd is PID 1), as the unit
# ybpos-lab.service: installs the .deb, runs ybposd against the gateway
# simulator and checks what a person would check. Every check prints
# "CHECK ok|FAIL: …" on the console; the last line is
# "SYSTEMD-LAB: PASS" or "SYSTEMD-LAB: FAIL (n)". Then powers off.
set -u
exec > /dev/ttyS0 2>&1
fails=0
t0=$(cut -d' ' -f1 /proc/uptime)
up() { cut -d' ' -f1 /proc/uptime; }
ok() { echo "CHECK ok: $*"; }
bad() { echo "CHECK FAIL: $*"; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
# Waits up to $1 seconds for a command to succeed.
until_ok() { local n=$(( $1 * 5 )); shift; while [ $n -gt 0 ]; do "$@" && return 0; sleep 0.2; n=$((n - 1)); done; return 1; }
logs() { journalctl -u ybposd --no-pager -o cat; }
status_text() { systemctl show -p StatusText --value ybposd; }
CFG=/etc/ybpos/ybpos.toml

echo "LAB: systemd $(systemctl --version | head -1 | cut -d' ' -f2) is PID 1 ($(cat /proc/1/comm)); boot took ${t0}s"

# 1. Install: sysusers, tmpfiles, udev trigger; not started (no terminal yet).
out=$(dpkg -i /lab/ybpos.deb 2>&1); rc=$?
echo "$out" | sed 's/^/  dpkg: /'
check "dpkg -i ybpos.deb" [ $rc = 0 ]
check "user ybpos made by sysusers (groups: $(id -nG ybpos 2>/dev/null))" bash -c 'id -nG ybpos | grep -qw dialout'
check "/etc/ybpos is 750 root:ybpos ($(stat -c '%a %U:%G' /etc/ybpos))" [ "$(stat -c '%a %U:%G' /etc/ybpos)" = "750 root:ybpos" ]
check "the service is neither enabled nor started before a terminal is configured" \
    bash -c '! systemctl is-enabled --quiet ybposd && ! systemctl is-active --quiet ybposd'
check "postinst says what to do" bash -c "echo \"\$1\" | grep -q 'ybposd --check-config'" _ "$out"
msg=$(ybposd --check-config 2>&1); rc=$?
check "ybposd --check-config names the missing sections (exit $rc)" \
    bash -c "[ $rc = 78 ] && echo \"\$1\" | grep -q 'terminal' && echo \"\$1\" | grep -q 'gateway'" _ "$msg"
# (no man(1) in the guest: the page is checked as a file)
check "systemd-analyze verify ybposd.service" systemd-analyze verify --man=no ybposd.service
check "man pages installed: $(ls /usr/share/man/man1 | grep ybpos | tr '\n' ' ')" \
    bash -c 'zcat /usr/share/man/man1/ybposd.1.gz | grep -q "terminal daemon" && zcat /usr/share/man/man1/ybpos.1.gz | grep -q "local API"'
check "example config kept as a conffile" bash -c 'dpkg-query -W -f="\${Conffiles}" ybpos | grep -q /etc/ybpos/ybpos.toml'
score=$(systemd-analyze security ybposd 2>/dev/null | sed -n 's/.*Overall exposure level for ybposd.service: \([0-9.]*\).*/\1/p')
check "exposure score $score ≤ 1.9 (installed unit)" awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 1.9) }'

# 2. The simulator, and a real config.
systemd-run --quiet --unit=gwsim /lab/ybpos-gateway-sim --listen 127.0.0.1:17490
cat > "$CFG" <<TOML
[terminal]
fixmedins_code  = "P42130200001"
fixmedins_name  = "实验药房"
mdtrtarea_admvs = "421381"
opter           = "lab-01"

[gateway]
url  = "http://127.0.0.1:17490/fsi/api"
auth = "none"
request_timeout_ms = 5000

[[scanner]]
id        = "counter"
transport = "serial"
path      = "/dev/ttyS1"
suffix    = "\r"

[api]
socket       = "/run/ybpos/api.sock"
socket_group = "ybpos"
http_listen  = "127.0.0.1:17480"
TOML
check "ybposd --check-config accepts it" ybposd --check-config
until_ok 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/17490' 2>/dev/null

# 3. Start: READY, STATUS, socket.
s=$(up)
systemctl enable --now ybposd 2>&1 | sed 's/^/  systemctl: /'
e=$(up)
check "systemctl enable --now returned with the unit active (READY=1) in $(awk -v a=$s -v b=$e 'BEGIN{printf "%.1f", b-a}')s" systemctl is-active --quiet ybposd
until_ok 20 bash -c '[[ "$(systemctl show -p StatusText --value ybposd)" == "ready: 1 scanner connected, gateway online, 0 unresolved" ]]'
check "STATUS: \"$(status_text)\"" [ "$(status_text)" = "ready: 1 scanner connected, gateway online, 0 unresolved" ]
systemctl status ybposd --no-pager 2>&1 | head -8 | sed 's/^/  status: /'
check "socket mode and group: $(stat -c '%a %G' /run/ybpos/api.sock)" [ "$(stat -c '%a %G' /run/ybpos/api.sock)" = "660 ybpos" ]
check "token file 640 root:ybpos ($(stat -c '%a %U:%G' /etc/ybpos/api-token))" [ "$(stat -c '%a %U:%G' /etc/ybpos/api-token)" = "640 root:ybpos" ]
check "ybpos info answers over the socket" bash -c 'ybpos info | grep -q online'
check "watchdog armed: WatchdogUSec=$(systemctl show -p WatchdogUSec --value ybposd)" [ "$(systemctl show -p WatchdogUSec --value ybposd)" = "30s" ]

# 4. Reload: a wait and a connection stay; the change applies.
ybpos --json wait 02121 > /tmp/wait.out 2>&1 &
waiter=$!
until_ok 10 bash -c 'ybpos --json scanners | grep -q "\"armed\": true"'
check "a scan.wait is armed on counter" bash -c 'ybpos --json scanners | grep -q "\"armed\": true"'
cp "$CFG" /tmp/good.toml
sed -i 's/^http_listen .*/&\nallowed_origins = ["http:\/\/his.lab"]/' "$CFG"
printf '\n[log]\nfilter = "debug"\n' >> "$CFG"
systemctl reload ybposd
until_ok 10 bash -c 'journalctl -u ybposd -o cat | grep -q "Reloaded: applied"'
check "reload applied: $(logs | grep 'Reloaded: applied' | tail -1 | cut -c1-160)" \
    bash -c 'journalctl -u ybposd -o cat | grep "Reloaded: applied" | grep -q "api.allowed_origins" '
check "the new log filter is on (debug lines appear)" until_ok 10 bash -c 'ybpos scanners >/dev/null; journalctl -u ybposd -o cat | grep -q "DEBUG"'
check "the wait survived the reload (still armed, client still waiting)" \
    bash -c "kill -0 $waiter && ybpos --json scanners | grep -q '\"armed\": true'"
echo "LAB-SCAN-NOW"
until_ok 30 bash -c "! kill -0 $waiter 2>/dev/null"
check "the wait armed before the reload got the scan: $(tr -d '\n' < /tmp/wait.out | cut -c1-120)" grep -q 'not_medical_code' /tmp/wait.out
# A bad file: refused, old config stays, daemon serves on.
printf '\n[journal]\npaht = "/x"\n' >> "$CFG"
systemctl reload ybposd
until_ok 10 bash -c 'journalctl -u ybposd -o cat | grep -q "Reload refused"'
check "a bad config is refused: $(logs | grep -E 'Reload refused|Config problem' | head -2 | tr '\n' ' ' | cut -c1-200)" \
    bash -c 'journalctl -u ybposd -o cat | grep "Config problem" | grep -q "journal.paht"'
check "still active and serving after the refused reload" bash -c 'systemctl is-active --quiet ybposd && ybpos info >/dev/null'
until_ok 20 bash -c '[[ "$(systemctl show -p StatusText --value ybposd)" == "ready: 1 scanner connected, gateway online, 0 unresolved" ]]'
check "STATUS back to the ready line after the reloads: \"$(status_text)\"" [ "$(status_text)" = "ready: 1 scanner connected, gateway online, 0 unresolved" ]
# A restart-only key: named.
sed 's/lab-01/lab-02/' /tmp/good.toml > "$CFG"
systemctl reload ybposd
until_ok 10 bash -c 'journalctl -u ybposd -o cat | grep -q "only after a restart"'
check "a restart-only key is named: $(logs | grep 'only after a restart' | tail -1 | cut -c1-160)" \
    bash -c 'journalctl -u ybposd -o cat | grep "only after a restart" | grep -q "terminal.opter"'

# 5. Clean stop: signs out, exit 0.
systemctl stop ybposd
check "systemctl stop: signed out at the gateway" bash -c 'journalctl -u ybposd -o cat | grep -q "Signed out at the gateway"'
check "exit status 0 ($(systemctl show -p ExecMainStatus --value ybposd))" [ "$(systemctl show -p ExecMainStatus --value ybposd)" = 0 ]
check "socket removed" [ ! -e /run/ybpos/api.sock ]

# 5b. Upgrade (the same .deb again): the edited config stays, the enabled
# and configured service is restarted.
dpkg -i /lab/ybpos.deb >/dev/null 2>&1
check "reinstalling keeps the edited config (conffile)" grep -q 'lab-02' "$CFG"
check "reinstalling restarts the enabled, configured service" until_ok 10 systemctl is-active --quiet ybposd
systemctl stop ybposd

# 6. A frozen journal thread: the watchdog restarts the daemon.
mkdir -p /etc/systemd/system/ybposd.service.d
cat > /etc/systemd/system/ybposd.service.d/lab-freeze.conf <<UNIT
[Service]
ExecStart=
ExecStart=/lab/ybposd-under-test --config $CFG
Environment=YBPOS_TEST_FREEZE_JOURNAL_AFTER_MS=2000
WatchdogSec=6
UNIT
systemctl daemon-reload
journalctl --rotate >/dev/null 2>&1; since=$(date '+%Y-%m-%d %H:%M:%S')
systemctl start ybposd
check "the test build (frozen journal after 2 s) reaches READY" systemctl is-active --quiet ybposd
until_ok 60 bash -c '[ "$(systemctl show -p NRestarts --value ybposd)" -ge 1 ]'
check "the watchdog restarted it (NRestarts=$(systemctl show -p NRestarts --value ybposd))" \
    bash -c '[ "$(systemctl show -p NRestarts --value ybposd)" -ge 1 ]'
journalctl --no-pager -o cat --since "$since" | grep -E 'Watchdog timeout|watchdog|Health check failed|freezing' | head -4 | sed 's/^/  journal: /'
check "systemd logged a watchdog timeout" bash -c "journalctl --no-pager -o cat --since '$since' | grep -qi 'watchdog timeout'"
check "the daemon named the frozen part" bash -c "journalctl --no-pager -o cat --since '$since' | grep 'Health check failed' | grep -q 'journal thread'"
systemctl stop ybposd

echo "LAB: checks took $(awk -v a=$t0 -v b=$(up) 'BEGIN{printf "%.0f", b-a}')s"
if [ $fails = 0 ]; then echo "SYSTEMD-LAB: PASS"; else echo "SYSTEMD-LAB: FAIL ($fails)"; fi
sync
systemctl poweroff --force
