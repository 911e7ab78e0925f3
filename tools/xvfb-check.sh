#!/usr/bin/env bash
# Start the app on a virtual X server, time its window, take a screenshot, quit with Ctrl+Q, report the exit.
# usage: tools/xvfb-check.sh SHOT.png SECONDS_BEFORE_SHOT COMMAND...
# needs: apt-get install -y xvfb xdotool imagemagick bc libxcb-cursor0
set -u
shot=$1; wait_s=$2; shift 2
export DISPLAY=${DISPLAY_FOR_CHECK:-:99}
pgrep -x Xvfb >/dev/null || { Xvfb "$DISPLAY" -screen 0 1400x900x24 >/dev/null 2>&1 & sleep 1; }
err=$(mktemp)
start=$(date +%s.%N)
"$@" >/dev/null 2>"$err" &
pid=$!
wid=""
for _ in $(seq 1 500); do
  wid=$(xdotool search --onlyvisible --name "ResNeXt" 2>/dev/null | head -1)
  [ -n "$wid" ] && break
  sleep 0.02
done
echo "window after $(echo "$(date +%s.%N) - $start" | bc) s"
sleep "$wait_s"
import -window root "$shot"
xdotool windowfocus --sync "$wid" 2>/dev/null
xdotool key ctrl+q
t0=$(date +%s.%N)
wait "$pid"; rc=$?
echo "exit status $rc, $(echo "$(date +%s.%N) - $t0" | bc) s after Ctrl+Q"
echo "--- stderr:"; cat "$err"; rm -f "$err"
