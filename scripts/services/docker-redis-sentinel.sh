#!/bin/sh
# Entry point of the `redis-sentinel` service in docker-compose.yml: a Redis master on 6380 and
# one sentinel on 26379 monitoring it as `mymaster` with quorum 1.
#
# Both run in one container, so the sentinel reaches the master at 127.0.0.1:6380, and that is
# the address it gives clients, which the host publishes.
set -eu

mkdir -p /data/sentinel
redis-server --port 6380 --bind 0.0.0.0 --protected-mode no --save '' --appendonly no \
  --dir /data --daemonize yes --logfile /data/master.log

tries=0
until [ "$(redis-cli -p 6380 ping 2>/dev/null)" = PONG ]; do
  tries=$((tries + 1))
  if [ "$tries" -gt 300 ]; then
    echo "redis-sentinel: master on 6380 did not start" >&2
    cat /data/master.log >&2
    exit 1
  fi
  sleep 0.1
done

# The sentinel rewrites its configuration file, so it gets a fresh one on every start.
cat > /data/sentinel/sentinel.conf <<CONF
port 26379
bind 0.0.0.0
protected-mode no
dir /data/sentinel
sentinel monitor mymaster 127.0.0.1 6380 1
sentinel down-after-milliseconds mymaster 5000
sentinel failover-timeout mymaster 60000
sentinel parallel-syncs mymaster 1
CONF

exec redis-server /data/sentinel/sentinel.conf --sentinel
