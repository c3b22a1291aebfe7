#!/bin/sh
# Start a Sentinel watching the master set; it rewrites its config file, so the file is
# written fresh into a writable emptyDir on every start.
set -eu
SELF="$(hostname).${HEADLESS}"
master=""
for i in 0 1 2; do
  master="$(redis-cli -h "redis-${i}.${HEADLESS}" -p 26379 --raw \
    sentinel get-master-addr-by-name "${MASTER_SET}" 2>/dev/null | head -n 1 || true)"
  [ -n "${master}" ] && break
done
[ -n "${master}" ] || master="redis-0.${HEADLESS}"
cat > /sentinel/sentinel.conf <<CONF
port 26379
dir /sentinel
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip ${SELF}
sentinel monitor ${MASTER_SET} ${master} 6379 2
sentinel down-after-milliseconds ${MASTER_SET} 5000
sentinel failover-timeout ${MASTER_SET} 60000
sentinel parallel-syncs ${MASTER_SET} 1
CONF
exec redis-sentinel /sentinel/sentinel.conf
