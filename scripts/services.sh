#!/usr/bin/env bash
# Bring up the local services mash-broker needs (RabbitMQ with the shovel plugins,
# PostgreSQL) when they are not answering. Idempotent; safe to run on every `make`.
set -euo pipefail

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
wait_for() {  # port, name
  for _ in $(seq 1 60); do answers "$1" && return 0; sleep 1; done
  echo "services: $2 did not come up on 127.0.0.1:$1" >&2; return 1
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# RabbitMQ
if ! command -v rabbitmq-server >/dev/null 2>&1 && [ ! -x /usr/sbin/rabbitmq-server ]; then
  apt_install rabbitmq-server
fi
export PATH="$PATH:/usr/sbin"
if ! answers 5672; then
  as_root rabbitmq-server -detached || true
  wait_for 5672 RabbitMQ
fi
# The shovel plugins carry cross-border links; management serves the HTTP API.
if ! as_root rabbitmq-plugins list -e -m 2>/dev/null | grep -qx rabbitmq_shovel_management; then
  as_root rabbitmq-plugins enable --quiet rabbitmq_management rabbitmq_shovel rabbitmq_shovel_management >/dev/null
fi
as_root rabbitmqctl await_startup --timeout 60 >/dev/null 2>&1 || true

# PostgreSQL
if ! answers 5432; then
  if [ -d /etc/postgresql ]; then
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  else
    apt_install postgresql
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  fi
  wait_for 5432 PostgreSQL
fi
if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='mash_test'" 2>/dev/null | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE mash_test" >/dev/null 2>&1 || true
fi

# Chromium for the browser tests (Debian's package; no browser download).
if [ "${MASH_SKIP_CHROMIUM:-0}" != 1 ] && ! command -v chromium >/dev/null 2>&1; then
  apt_install chromium chromium-driver || echo "services: chromium not installed; browser tests will be skipped" >&2
fi
