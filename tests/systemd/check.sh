#!/bin/bash
# Runs INSIDE the booted Debian 12 container (tests/systemd/run.sh starts it as a oneshot unit
# once the system is up): installs the .deb and drives mini-torrust.service as an operator
# would, with systemctl, journalctl, dpkg and curl (minbase has no procps: no ps, no /bin/kill).
# One line per check ("ok - ..." or "FAIL - ..."), then "N passed, M failed", into
# /root/results; run.sh reads it from the host. The container powers off when this ends.
#
# Inputs from run.sh: /root/mini-torrust.deb, /root/low-port.conf (the drop-in the README gives
# for a port below 1024, cut from README.md).
set -u
exec >/root/results.partial 2>&1

pass=0
fail=0
ok() { echo "ok - $1"; pass=$((pass + 1)); }
bad() { echo "FAIL - $1"; fail=$((fail + 1)); }
# check NAME COMMAND...: ok when COMMAND exits 0; else FAIL with the last lines it printed.
check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then ok "$name"; else bad "$name: $(tail -n 5 <<<"$out" | tr '\n' '|')"; fi
}
# expect NAME WANTED ACTUAL
expect() {
	if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: wanted '$2', got '$3'"; fi
}
prop() { systemctl show -p "$1" --value mini-torrust; }
journal() { journalctl -u mini-torrust -o cat --no-pager; }
# wait_for SECONDS COMMAND...: polls COMMAND every 0.2 s until it succeeds (0) or time runs out (1).
wait_for() {
	local until=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$until" ] || return 1
		sleep 0.2
	done
}

CONF=/etc/mini-torrust/config.toml
DROPINS=/etc/systemd/system/mini-torrust.service.d
STATE=/var/lib/private/mini-torrust
# Two torrents: A (allowed from the start) and B (allowed by the reload); 20-byte info hashes.
A=AAAAAAAAAAAAAAAAAAAA
A_HEX=4141414141414141414141414141414141414141
B=BBBBBBBBBBBBBBBBBBBB
B_HEX=4242424242424242424242424242424242424242
PORT=6969
announce() { # HASH PEER_ID PEER_PORT LEFT
	curl -sS --max-time 5 "http://127.0.0.1:$PORT/announce?info_hash=$1&peer_id=$2&port=$3&uploaded=0&downloaded=0&left=$4&compact=1"
}
scrape() { curl -sS --max-time 5 "http://127.0.0.1:$PORT/scrape?info_hash=$1"; }
# An accepted announce: a bencoded reply with an interval and no failure reason.
accepted() { local r; r=$(announce "$@") && [[ $r == *8:interval* && $r != *failure* ]] || { echo "$r"; return 1; }; }
refused() { local r; r=$(announce "$@"); [[ $r == *"failure reason"* ]] || { echo "$r"; return 1; }; }
# The swarm of HASH holds SEEDERS seeders and LEECHERS leechers.
swarm_is() { local r; r=$(scrape "$1") && [[ $r == *"8:completei$2e"* && $r == *"10:incompletei$3e"* ]] || { echo "$r"; return 1; }; }
proc_field() { awk -v k="$2:" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "/proc/$1/status"; }
not_root() { local uids; uids=$(proc_field "$1" Uid); [ -n "$uids" ] && ! grep -qw 0 <<<"$uids" || { echo "Uid: $uids"; return 1; }; }
journal_has() { journal | grep -qE -- "$1"; }
journal_count() { journal | grep -c -- "$1"; }
# The last "config reloaded" line is a new one and names log.filter and the access lists.
reload_logged() {
	[ "$(journal_count 'config reloaded')" -gt "$reloads" ] &&
		journal | grep 'config reloaded' | tail -n 1 | grep 'log.filter' | grep -q 'access lists'
}
debug_sweeps() { journal | grep -E '^ *DEBUG' | grep -q sweep; }
no_debug() { ! journal | grep -qE '^ *DEBUG'; }
refused_connection() { ! curl -sS --max-time 2 "http://127.0.0.1:$PORT/announce" 2>&1; }
status_ok() { [[ $status == *torrents* && $status == *peers* ]]; }
is_active() { [ "$(systemctl is-active mini-torrust)" = active ]; }

# --- The package: installed, nothing enabled or started. -------------------------------------
check "dpkg -i installs the .deb" dpkg -i /root/mini-torrust.deb
check "the binary is /usr/bin/mini-torrust" test -x /usr/bin/mini-torrust
check "the unit is /usr/lib/systemd/system/mini-torrust.service" test -f /usr/lib/systemd/system/mini-torrust.service
check "the unit's ExecStart= and ExecReload= run the installed binary" \
	bash -c '[[ $(systemctl show -p ExecStart --value mini-torrust) == *"path=/usr/bin/mini-torrust "* && $(systemctl show -p ExecReload --value mini-torrust) == *"path=/usr/bin/mini-torrust "* ]]'
check "config.toml is a conffile" bash -c "dpkg-query -W -f='\${Conffiles}' mini-torrust | grep -q '^ /etc/mini-torrust/config.toml '"
check "the sysctl file is /usr/lib/sysctl.d/60-mini-torrust.conf" grep -q '^net.core.rmem_max' /usr/lib/sysctl.d/60-mini-torrust.conf
check "the README is /usr/share/doc/mini-torrust/README.md" grep -q 'mini-torrust' /usr/share/doc/mini-torrust/README.md
expect "installing enables nothing" disabled "$(systemctl is-enabled mini-torrust)"
expect "installing starts nothing" inactive "$(systemctl is-active mini-torrust)"

# --- The operator's config: an allow list, a 1 s sweep (logged at debug), a 3 s watchdog. ----
echo "$A_HEX" >/etc/mini-torrust/allow.txt
sed -i -e 's/^mode = "open"$/mode = "whitelist"/' \
	-e 's|^allow_file = ""$|allow_file = "/etc/mini-torrust/allow.txt"|' \
	-e 's/^sweep_interval = 60$/sweep_interval = 1/' "$CONF"
check "the config edits applied" bash -c "grep -q '^mode = \"whitelist\"' $CONF && grep -q '^allow_file = \"/etc' $CONF && grep -q '^sweep_interval = 1$' $CONF"
mkdir -p "$DROPINS"
printf '[Service]\nWatchdogSec=3s\n' >"$DROPINS/watchdog.conf"
systemctl daemon-reload

# --- Start: active only after READY. -------------------------------------------------------
# The allow list is a FIFO at first: start-up blocks reading it, before any socket is bound and
# before READY=1. While it blocks the unit must stay "activating" (a unit that went active at
# exec, not at READY, fails here); fed, the daemon binds, sends READY and the unit goes active.
rm -f /etc/mini-torrust/allow.txt
mkfifo /etc/mini-torrust/allow.txt
check "systemctl start --no-block exits 0" systemctl start --no-block mini-torrust
sleep 2
expect "activating while start-up is blocked before READY" activating "$(systemctl is-active mini-torrust)"
check "not answering before READY" refused_connection
# Feed the FIFO (the config check and the tracker each read it once) until the unit leaves
# "activating"; each write gives up after 1 s when no reader comes.
feed() {
	until [ "$(systemctl is-active mini-torrust)" != activating ] || [ "$SECONDS" -gt "$1" ]; do
		timeout 1 bash -c "echo $A_HEX >/etc/mini-torrust/allow.txt" 2>/dev/null
	done
}
feed $((SECONDS + 60))
expect "active after READY" active "$(systemctl is-active mini-torrust)"
rm -f /etc/mini-torrust/allow.txt
echo "$A_HEX" >/etc/mini-torrust/allow.txt
# No retry: READY=1 comes after every bind.
check "answers an announce as soon as it is active" accepted "$A" -AA0001-000000000001 6881 0
expect "the watchdog drop-in is in effect" 3s "$(prop WatchdogUSec)"
check "the daemon feeds the watchdog every 1.5 s" journal_has 'watchdog enabled every_ms=1500'
status=$(prop StatusText)
check "STATUS= came with READY and shows torrents and peers: $status" status_ok
check "a torrent not on the allow list is refused" refused "$B" -AA0001-000000000002 6882 10
check "a second peer joins A" accepted "$A" -AA0001-000000000003 6883 10
check "A has 1 seeder and 1 leecher" swarm_is "$A" 1 1

# --- Who runs it: not root, NoNewPrivs, seccomp. ---------------------------------------------
pid=$(prop MainPID)
check "the daemon is not root (pid $pid)" not_root "$pid"
expect "NoNewPrivs is set" 1 "$(proc_field "$pid" NoNewPrivs)"
expect "a seccomp filter is on (Seccomp: 2)" 2 "$(proc_field "$pid" Seccomp)"

# --- Reload: a changed log.filter and allow list applied, swarms kept. -----------------------
check "no debug lines before the reload" no_debug
echo "$B_HEX" >>/etc/mini-torrust/allow.txt
sed -i 's/^filter = "info"$/filter = "info,mini_torrust=debug"/' "$CONF"
reloads=$(journal_count 'config reloaded')
check "systemctl reload exits 0" timeout 30 systemctl reload mini-torrust
check "the reload is logged, with log.filter and the access lists applied" wait_for 10 reload_logged
check "the new log filter is in force (debug sweep lines)" wait_for 10 debug_sweeps
expect "reload keeps the process" "$pid" "$(prop MainPID)"
check "the new allow list is in force (B accepted)" accepted "$B" -AA0001-000000000002 6882 10
check "reload keeps A's swarm" swarm_is "$A" 1 1

# --- Watchdog: fed while healthy. ------------------------------------------------------------
sleep 10
check "still active 10 s later with WatchdogSec=3s" is_active
expect "same process 10 s later" "$pid" "$(prop MainPID)"
expect "no restart 10 s later" 0 "$(prop NRestarts)"

# --- Restart: swarms kept through the snapshot. ----------------------------------------------
check "systemctl restart exits 0" timeout 60 systemctl restart mini-torrust
new=$(prop MainPID)
check "restart runs a new process" test "$new" != "$pid" -a "$new" != 0
check "restart keeps A's swarm" swarm_is "$A" 1 1
check "restart keeps B's swarm" swarm_is "$B" 0 1
check "the final snapshot before the restart is logged" journal_has 'snapshot written.*why="?final'
check "the snapshot is loaded at the restart" journal_has 'snapshot loaded'

# --- Watchdog: a hung (SIGSTOPped) daemon is restarted. --------------------------------------
pid=$new
kill -STOP "$pid" # bash's builtin: minbase has no /bin/kill
restarted() { [ "$(prop NRestarts)" -ge 1 ] && [ "$(prop MainPID)" != "$pid" ] && is_active; }
check "a SIGSTOPped daemon is restarted by the watchdog" wait_for 40 restarted
check "the journal names the watchdog" bash -c "journalctl -u mini-torrust --no-pager | grep -qi watchdog"
check "after the watchdog restart A's swarm is back" swarm_is "$A" 1 1

# --- A port below 1024: refused without the README's drop-in, served with it. ----------------
sed -i '/^\[http\]$/,/^\[/ s/^bind = .*/bind = ["127.0.0.1:80"]/' "$CONF"
check "the config now binds HTTP to port 80" bash -c "sed -n '/^\[http\]/,/^\[/p' $CONF | grep -q '^bind = \[\"127.0.0.1:80\"\]'"
if timeout 60 systemctl restart mini-torrust >/dev/null 2>&1; then
	bad "port 80 without the drop-in: the start should have failed"
else
	ok "port 80 without the drop-in: the start fails"
fi
systemctl stop mini-torrust
systemctl reset-failed mini-torrust 2>/dev/null
cp /root/low-port.conf "$DROPINS/low-port.conf"
systemctl daemon-reload
PORT=80
check "port 80 with the README's drop-in: systemctl start exits 0" timeout 60 systemctl start mini-torrust
check "port 80 answers an announce" accepted "$A" -AA0001-000000000004 6884 10
pid=$(prop MainPID)
check "with the drop-in the daemon is still not root" not_root "$pid"
expect "with the drop-in NoNewPrivs is still set" 1 "$(proc_field "$pid" NoNewPrivs)"
expect "with the drop-in seccomp is still on" 2 "$(proc_field "$pid" Seccomp)"

# --- Stop: exit 0, final snapshot written. ---------------------------------------------------
before=$(stat -c %Y "$STATE/mini-torrust.snapshot.json" 2>/dev/null || echo 0)
sleep 1
check "systemctl stop exits 0" timeout 60 systemctl stop mini-torrust
expect "the daemon exited 0" 0 "$(prop ExecMainStatus)"
expect "the unit's result is success" success "$(prop Result)"
after=$(stat -c %Y "$STATE/mini-torrust.snapshot.json" 2>/dev/null || echo 0)
check "the final snapshot was written at stop" test "$after" -gt "$before"
check "the snapshot holds both torrents" bash -c "grep -q $A_HEX $STATE/mini-torrust.snapshot.json && grep -q $B_HEX $STATE/mini-torrust.snapshot.json"
check "the journal has the start line" journal_has 'mini-torrust started'
check "the journal has a snapshot line" journal_has 'snapshot written'
check "the journal has the stop line, with the final snapshot" journal_has 'mini-torrust stopped.*final_snapshot="?2 torrents'

# --- Remove keeps the state; purge removes it. -----------------------------------------------
check "start again before removing the package" timeout 60 systemctl start mini-torrust
check "dpkg -r removes the package" dpkg -r mini-torrust
expect "removing stops the service" inactive "$(systemctl is-active mini-torrust)"
check "removing removes the binary" test ! -e /usr/bin/mini-torrust
check "removing keeps the state (/var/lib/private/mini-torrust)" test -s "$STATE/mini-torrust.snapshot.json"
check "removing keeps /var/lib/mini-torrust" test -s /var/lib/mini-torrust/mini-torrust.snapshot.json
check "removing keeps the conffile" test -f "$CONF"
check "dpkg -P purges the package" dpkg -P mini-torrust
check "purging removes /var/lib/private/mini-torrust" test ! -e "$STATE"
check "purging removes /var/lib/mini-torrust" test ! -e /var/lib/mini-torrust -a ! -L /var/lib/mini-torrust
check "purging removes the conffile" test ! -e "$CONF"

echo "$pass passed, $fail failed"
if [ "$fail" -gt 0 ]; then
	echo "--- journalctl -u mini-torrust (last 60 lines)"
	journalctl -u mini-torrust --no-pager | tail -n 60
fi
mv /root/results.partial /root/results
[ "$fail" -eq 0 ]
