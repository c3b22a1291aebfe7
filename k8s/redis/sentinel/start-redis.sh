#!/bin/sh
# Start Redis as master or replica. A Sentinel that knows the master decides (so a restarted
# pod rejoins as a replica of whoever was promoted); with no Sentinel answering (first start),
# pod 0 is the master.
set -eu
SELF="$(hostname).${HEADLESS}"
master=""
for i in 0 1 2; do
  master="$(redis-cli -h "redis-${i}.${HEADLESS}" -p 26379 --raw \
    sentinel get-master-addr-by-name "${MASTER_SET}" 2>/dev/null | head -n 1 || true)"
  [ -n "${master}" ] && break
done
[ -n "${master}" ] || master="redis-0.${HEADLESS}"
set -- --appendonly yes --save "" --dir /data --replica-announce-ip "${SELF}" \
  --maxmemory "${MAXMEMORY}" --maxmemory-policy volatile-lru
if [ "${master}" != "${SELF}" ]; then
  set -- "$@" --replicaof "${master}" 6379
fi
exec redis-server "$@"
