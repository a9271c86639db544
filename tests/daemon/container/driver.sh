#!/bin/sh
# Runs inside the test container (systemd as PID 1), as sensortest.service:
# drives sensord.service through start, traffic, a watchdog restart and a
# stop, writing what it observes to /test/results, then powers off.
R=/test/results
mkdir -p $R
show() { systemctl show sensord -p ActiveState -p SubState -p MainPID -p NRestarts -p Result -p ExecMainStatus > "$R/$1"; }

ip link set lo up

# The interface does not exist yet: the start must fail, READY=1 never sent.
systemctl start sensord
echo $? > $R/start_missing_rc
systemctl stop sensord
journalctl -o cat --no-pager -u sensord > $R/journal_missing 2>&1
systemctl reset-failed sensord

ip link add tx0 type veth peer name cap0
for d in tx0 cap0; do
    echo 1 > /proc/sys/net/ipv6/conf/$d/disable_ipv6
    ip link set $d up
done

# Start: Type=notify, so this returns once READY=1 came (or start failed).
systemctl start sensord
echo $? > $R/start_rc
show after_start
ip -o link show cap0 > $R/cap0_link

# Traffic: a UDP exchange between two documentation addresses, sent as
# raw frames on the peer of the capture interface.
$SENSOR_PYTHON /test/frames.py tx0
sleep 1

# Hang the main loop; the watchdog (WatchdogSec in the drop-in) must
# restart the service.
systemctl kill -s USR2 --kill-whom=main sensord
i=0
while [ $i -lt 40 ]; do
    n=$(systemctl show sensord -p NRestarts --value)
    s=$(systemctl show sensord -p SubState --value)
    [ "$n" -ge 1 ] && [ "$s" = running ] && break
    sleep 0.5; i=$((i+1))
done
show after_watchdog

# Clean stop.
$SENSOR_PYTHON /test/frames.py tx0
sleep 1
systemctl stop sensord
echo $? > $R/stop_rc
show after_stop
journalctl -o short-monotonic --no-pager -u sensord > $R/journal 2>&1
cp -rL /var/log/sensor $R/logs 2>/dev/null
ls -l /var/log/ > $R/varlog
touch $R/done
systemctl poweroff --no-block
