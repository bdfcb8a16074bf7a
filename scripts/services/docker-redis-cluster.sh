#!/bin/sh
# Entry point of the `redis-cluster` service in docker-compose.yml: three Redis Cluster masters
# on 7000-7002 in one container, all 16384 slots assigned, no replicas.
#
# The nodes bind every container interface (published ports arrive on the container's own
# address) and announce 127.0.0.1, so the slot map handed to clients points at the ports the
# host publishes. The cluster is created from empty nodes on every start: it holds test data only.
set -eu

ports="7000 7001 7002"
for port in $ports; do
  rm -rf "/data/$port"
  mkdir -p "/data/$port"
  redis-server --port "$port" --bind 0.0.0.0 --protected-mode no \
    --cluster-enabled yes --cluster-config-file "/data/$port/nodes.conf" \
    --cluster-node-timeout 5000 --cluster-require-full-coverage no \
    --cluster-announce-ip 127.0.0.1 \
    --save '' --appendonly no --dir "/data/$port" \
    --daemonize yes --logfile "/data/$port/redis.log"
done

for port in $ports; do
  tries=0
  until [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; do
    tries=$((tries + 1))
    if [ "$tries" -gt 300 ]; then
      echo "redis-cluster: node $port did not start" >&2
      cat "/data/$port/redis.log" >&2
      exit 1
    fi
    sleep 0.1
  done
done

redis-cli --cluster create 127.0.0.1:7000 127.0.0.1:7001 127.0.0.1:7002 \
  --cluster-replicas 0 --cluster-yes

# Stay in the foreground with the first node's log; `init: true` forwards stop signals.
exec tail -F /data/7000/redis.log
