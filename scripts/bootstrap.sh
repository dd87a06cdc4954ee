#!/usr/bin/env bash
# Brings a fresh Debian bookworm machine (as root) to the state tollgate needs:
# Debian packages, running Redis and PostgreSQL on 127.0.0.1, the database role,
# and a virtualenv in .venv with the package installed. Safe to run again: it only
# does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1; }
have redis-server || need_pkgs+=(redis-server)
have redis-benchmark || need_pkgs+=(redis-tools)
have pg_ctlcluster || need_pkgs+=(postgresql)
have psql || need_pkgs+=(postgresql-client)
have sipp || need_pkgs+=(sip-tester)
have debootstrap || need_pkgs+=(debootstrap)
have curl || need_pkgs+=(curl)
have openssl || need_pkgs+=(openssl)
have pdftotext || need_pkgs+=(poppler-utils)  # tests read the text of invoice PDFs
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_pkgs+=(fonts-dejavu-core)  # PDF font with Polish letters
have chromium || need_pkgs+=(chromium)
have promtool || need_pkgs+=(prometheus)
have nginx || [ -x /usr/sbin/nginx ] || need_pkgs+=(nginx-light)  # to check configs/nginx/nginx.conf (nginx -t)
have docker-compose || docker compose version >/dev/null 2>&1 || need_pkgs+=(docker-compose)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_pkgs+=(python3-venv)
[ -e /usr/include/python3.11/Python.h ] || python3 -c 'import sysconfig,os,sys; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"],"Python.h")) else 1)' || need_pkgs+=(python3-dev)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# Redis: start it when nothing answers on 127.0.0.1:6379.
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "bootstrap: starting redis-server"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --dir /var/lib/redis \
    --logfile /var/log/redis/tollgate.log --appendonly yes
  for _ in $(seq 50); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

# PostgreSQL: start the Debian cluster when nothing answers on 127.0.0.1:5432.
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "bootstrap: starting PostgreSQL"
  ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1 || true)
  if [ -z "$ver" ]; then
    ver=$(ls /usr/lib/postgresql | sort -V | tail -n1)
    pg_createcluster "$ver" main >/dev/null
  fi
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start || pg_ctlcluster "$ver" main start
  for _ in $(seq 100); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.1; done
fi

# The tollgate role and databases. Done through the local socket as the postgres OS user,
# which works under Debian's default peer authentication and under trust alike.
psql_admin() { su postgres -s /bin/sh -c "psql -qAtX -v ON_ERROR_STOP=1 $*"; }
if ! psql_admin "-c \"select 1 from pg_roles where rolname='tollgate'\"" | grep -q 1; then
  psql_admin "-c \"create role tollgate login createdb password 'tollgate'\""
fi
for db in tollgate tollgate_test; do
  if ! psql_admin "-c \"select 1 from pg_database where datname='$db'\"" | grep -q 1; then
    psql_admin "-c \"create database $db owner tollgate\""
  fi
done

# Python virtualenv with the package and its development dependencies.
stamp=.venv/.installed
if [ ! -x .venv/bin/python ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing the Python environment in .venv"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  log=$(mktemp)
  if ! { .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q -e '.[dev]'; } \
      >"$log" 2>&1; then
    cat "$log"; rm -f "$log"
    echo "bootstrap: pip install failed" >&2
    exit 1
  fi
  rm -f "$log"
  touch "$stamp"
fi
