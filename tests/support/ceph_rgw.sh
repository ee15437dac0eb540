#!/usr/bin/env bash
# A single-node Ceph cluster with a RADOS Gateway on 127.0.0.1, from Debian's packages, for the
# tests: one monitor, one OSD on memstore (objects in RAM), radosgw with the beast frontend, and
# an S3 user with the given keys. No systemd, no cephadm; authentication between the daemons is
# off (the gateway then needs `ms mon client mode = crc secure`, or it loops on -13), and
# single-OSD pools need size 1 (`mon allow pool size one`).
#   tests/support/ceph_rgw.sh DIR RGW_PORT ACCESS_KEY SECRET_KEY
#   CEPH_OBJECTSTORE=bluestore ...   the OSD on bluestore in a sparse file DIR/osd/ceph-0/block
#                                    of CEPH_BLOCK_GIB (default 40) instead of RAM: what the
#                                    benchmark uses, as memstore needs ~1.8 bytes of RAM per
#                                    byte. The file grows to the most ever stored (deleted space
#                                    is reused, not given back), so its size bounds the disk used.
# Prints "ready RGW_PORT" once the gateway answers and the user exists; stops every daemon and
# removes DIR when its standard input closes (the test binary exited) or it is sent TERM.
set -euo pipefail
exec 3<&0
d=$1 rgw_port=$2 access=$3 secret=$4
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mon_port=$(free_port)
mkdir -p "$d/run" "$d/log" "$d/mon" "$d/osd" "$d/rgw"
stop() {
  for p in "$d"/run/*.pid; do [ -e "$p" ] && kill "$(cat "$p")" 2>/dev/null; done
  sleep 0.5
  for p in "$d"/run/*.pid; do [ -e "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null; done
  rm -rf "$d"
}
trap stop EXIT
trap 'exit 0' TERM INT
trap 'echo "ceph_rgw.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
fsid=$(python3 -c 'import uuid; print(uuid.uuid4())')
conf=$d/ceph.conf
cat >"$conf" <<CONF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$mon_port
public addr = 127.0.0.1
ms bind ipv4 = true
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
osd objectstore = ${CEPH_OBJECTSTORE:-memstore}
memstore device bytes = 4294967296
bluestore block size = $(( ${CEPH_BLOCK_GIB:-40} << 30 ))
bluestore fsck on mkfs = false
bluestore debug enforce settings = ssd
osd crush chooseleaf type = 0
run dir = $d/run
admin socket = $d/run/\$name.asok
log file = $d/log/\$name.log
pid file = $d/run/\$name.pid
mon data = $d/mon/\$cluster-\$id
osd data = $d/osd/\$cluster-\$id
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw data = $d/rgw
CONF
C=(-c "$conf")
monmaptool --create --add a "v1:127.0.0.1:$mon_port" --fsid "$fsid" "$d/monmap" >/dev/null
ceph-mon "${C[@]}" --mkfs -i a --monmap "$d/monmap" >/dev/null 2>&1
ceph-mon "${C[@]}" -i a
uuid=$(python3 -c 'import uuid; print(uuid.uuid4())')
id=$(timeout 60 ceph "${C[@]}" osd new "$uuid")
mkdir -p "$d/osd/ceph-$id"
ceph-osd "${C[@]}" -i "$id" --mkfs --osd-uuid "$uuid" >/dev/null 2>&1
# The OSD's start can fail on a busy machine (its ports, its init): try it a few times.
for attempt in 1 2 3; do
  ceph-osd "${C[@]}" -i "$id" >/dev/null 2>&1 && break
  [ "$attempt" -eq 3 ] && { tail -20 "$d/log/osd.$id.log" >&2; exit 1; }
  sleep 2
done
radosgw "${C[@]}" -n client.rgw.a
up=false
for _ in $(seq 240); do
  (exec 4<>"/dev/tcp/127.0.0.1/$rgw_port") 2>/dev/null && { up=true; break; }
  sleep 0.5
done
if ! $up; then
  echo "radosgw did not listen on 127.0.0.1:$rgw_port within 120 s" >&2
  tail -20 "$d"/log/*.log >&2
  exit 1
fi
# The gateway may still be setting up its zone: retry the user a few times.
for attempt in $(seq 10); do
  timeout 60 radosgw-admin "${C[@]}" user create --uid=s3ferry --display-name=s3ferry \
    --access-key="$access" --secret="$secret" >/dev/null 2>"$d/log/user.err" && break
  [ "$attempt" -eq 10 ] && { cat "$d/log/user.err" >&2; exit 1; }
  sleep 1
done
echo "ready $rgw_port"
# Until stdin closes, or a TERM: `wait` (unlike a foreground `cat`) lets the trap run at once.
# (A background command's stdin is /dev/null unless given: hand it ours through fd 3.)
cat <&3 >/dev/null &
wait $!
