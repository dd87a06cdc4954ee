#!/usr/bin/env bash
# The tollgate Asterisk rig: a real Asterisk 22 from the cached sid chroot, configured from
# configs/asterisk/.
#
#   rig.sh start       render the configs into a fresh run dir, start Asterisk, wait until
#                      fully booted (a running rig of the same name is stopped first)
#   rig.sh stop        "core stop now", then kill whatever of this rig is left
#   rig.sh status      exit 0 when this rig answers on its CLI socket
#   rig.sh cli CMD...  run one CLI command (asterisk -rx)
#   rig.sh paths       print KEY=VALUE lines (root, run dir, logs, CDR file) for tools
#
# Environment (defaults in brackets):
#   TOLLGATE_RIG_NAME [default]        run dir name; rigs with different names and ports
#                                      can run side by side
#   TOLLGATE_SIP_PORT [5060]           Asterisk's UDP SIP port on 127.0.0.1
#   TOLLGATE_SIP_TCP_PORT [SIP port]  TOLLGATE_SIP_TLS_PORT [SIP port + 1]  TCP and TLS
#   TOLLGATE_RIG_OVERLAY [tests/e2e/asterisk]  the rig's configs over the production ones
#   TOLLGATE_CARRIER_PORT [5070]       the carrier (SIPp UAS) on 127.0.0.1
#   TOLLGATE_AGI_HOST [127.0.0.1]      FastAGI server
#   TOLLGATE_AGI_PORT [4573]
#   TOLLGATE_AGI_BUDGET [2]            seconds authorize may take before the call gets 503
#   TOLLGATE_RING_SECONDS [30]         Dial ring timeout towards the carrier
#   TOLLGATE_ARI_PORT [8088]           HTTP/ARI on 127.0.0.1
#   TOLLGATE_AMI_PORT [5038]           AMI on 127.0.0.1 (same user and password as ARI)
#   TOLLGATE_ARI_USER [tollgate]  TOLLGATE_ARI_PASSWORD [tollgate]
#   TOLLGATE_ACCT_A..TOLLGATE_ACCT_F [acct-a..acct-f]  accountcodes of phone-a..phone-f
#   TOLLGATE_RTP_START [derived from the SIP port]  first of 40 RTP ports
#   TOLLGATE_RIG_PG_HOST [127.0.0.1] TOLLGATE_RIG_PG_PORT [5432] TOLLGATE_RIG_PG_DB [tollgate]
#   TOLLGATE_RIG_PG_USER [tollgate]  TOLLGATE_RIG_PG_PASSWORD [tollgate]
#                                      tollgate's database: realtime SIP logins (res_pgsql.conf)
#   TOLLGATE_ASTERISK_ROOT             use this chroot instead of building/reusing the cache
#   TOLLGATE_CACHE [/var/cache/tollgate]  where build-root.sh keeps the chroot
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
conf_src="$repo/configs/asterisk"
overlay=${TOLLGATE_RIG_OVERLAY:-$repo/tests/e2e/asterisk}

name=${TOLLGATE_RIG_NAME:-default}
sip_port=${TOLLGATE_SIP_PORT:-5060}
sip_tcp_port=${TOLLGATE_SIP_TCP_PORT:-$sip_port}
sip_tls_port=${TOLLGATE_SIP_TLS_PORT:-$((sip_port + 1))}
carrier_port=${TOLLGATE_CARRIER_PORT:-5070}
agi_host=${TOLLGATE_AGI_HOST:-127.0.0.1}
agi_port=${TOLLGATE_AGI_PORT:-4573}
agi_budget=${TOLLGATE_AGI_BUDGET:-2}
ring_seconds=${TOLLGATE_RING_SECONDS:-30}
ari_port=${TOLLGATE_ARI_PORT:-8088}
ami_port=${TOLLGATE_AMI_PORT:-5038}
ari_user=${TOLLGATE_ARI_USER:-tollgate}
ari_password=${TOLLGATE_ARI_PASSWORD:-tollgate}
pg_host=${TOLLGATE_RIG_PG_HOST:-127.0.0.1}
pg_port=${TOLLGATE_RIG_PG_PORT:-5432}
pg_db=${TOLLGATE_RIG_PG_DB:-tollgate}
pg_user=${TOLLGATE_RIG_PG_USER:-tollgate}
pg_password=${TOLLGATE_RIG_PG_PASSWORD:-tollgate}
# Derived so rigs on different SIP ports get different RTP ranges by default.
# Each call holds two RTP/RTCP pairs (phone leg and carrier leg): size the range for the
# concurrency a rig must carry; parallel rigs get disjoint ranges from their SIP port.
rtp_ports=${TOLLGATE_RTP_PORTS:-400}
rtp_start=${TOLLGATE_RTP_START:-$((10000 + ((sip_port % 250) * rtp_ports) % (50000 - rtp_ports)))}
rtp_end=$((rtp_start + rtp_ports - 1))

die() { echo "rig: $*" >&2; exit 1; }
log() { echo "rig: $*" >&2; }

# Values go into config files through sed: allow only what cannot break the syntax.
check() { # name value regex
  [[ $2 =~ $3 ]] || die "invalid $1: '$2'"
}
check TOLLGATE_RIG_NAME "$name" '^[A-Za-z0-9_-]{1,32}$'
for v in sip_port sip_tcp_port sip_tls_port carrier_port agi_port ari_port ami_port rtp_start rtp_ports; do
  check "$v" "${!v}" '^[0-9]{1,5}$'
done
check TOLLGATE_AGI_HOST "$agi_host" '^[0-9A-Za-z.:-]+$'
check TOLLGATE_RIG_PG_HOST "$pg_host" '^[0-9A-Za-z.:-]+$'
check TOLLGATE_RIG_PG_PORT "$pg_port" '^[0-9]{1,5}$'
for v in pg_db pg_user pg_password; do
  check "$v" "${!v}" '^[A-Za-z0-9_.-]+$'
done
check TOLLGATE_AGI_BUDGET "$agi_budget" '^[0-9]+(\.[0-9]+)?$'
check TOLLGATE_RING_SECONDS "$ring_seconds" '^[0-9]+$'
check TOLLGATE_ARI_USER "$ari_user" '^[A-Za-z0-9_.-]+$'
check TOLLGATE_ARI_PASSWORD "$ari_password" '^[A-Za-z0-9_.-]+$'
# ARI keeps only a crypt(3) hash of its password (ari.conf password_format = crypt).
ari_password_crypt=$(openssl passwd -6 "$ari_password")
declare -A acct
for p in A B C D E F; do
  var="TOLLGATE_ACCT_$p"
  acct[$p]=${!var:-acct-${p,,}}
  check "$var" "${acct[$p]}" '^[A-Za-z0-9_.-]{1,80}$'
done

root_path() {
  if [ -n "${TOLLGATE_ASTERISK_ROOT:-}" ]; then
    echo "$TOLLGATE_ASTERISK_ROOT"
  else
    "$here/build-root.sh"
  fi
}

# Paths that need no build (for stop/status/cli/paths on a machine without a root).
root=${TOLLGATE_ASTERISK_ROOT:-${TOLLGATE_CACHE:-/var/cache/tollgate}/asterisk-root}
run_in="/tollgate-run/$name"        # as Asterisk sees it inside the chroot
run="$root$run_in"
conf_in="$run_in/etc/asterisk.conf"

cli() {
  [ -S "$run/run/asterisk.ctl" ] || return 1
  # -rx can block on a wedged daemon; never let a CLI call hang the caller.
  timeout 15 chroot "$root" /usr/sbin/asterisk -C "$conf_in" -rx "$*"
}

# PIDs of Asterisk processes of this rig: chrooted into $root and started with our config.
rig_pids() {
  local d pid
  local cmdline
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    # -ef: same directory as our root (no fork per process; this runs in tight loops).
    [ "$d/root" -ef "$root" ] || continue
    # The control-socket clients (-r) are ours too; killing them is harmless.
    cmdline=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null) || continue
    [[ $cmdline == *"-C $conf_in "* ]] || continue
    echo "$pid"
  done
}

is_up() {
  cli 'core waitfullybooted' >/dev/null 2>&1
}

do_stop() {
  local pids
  if [ -S "$run/run/asterisk.ctl" ]; then
    # A channel stuck in an AGI to a frozen server makes Asterisk wait 15 s for it at
    # shutdown; a test rig has nothing to save, so cap the graceful part at a few seconds.
    local rc=0
    timeout 4 chroot "$root" /usr/sbin/asterisk -C "$conf_in" -rx 'core stop now' \
      >/dev/null 2>&1 || rc=$?
    if [ "$rc" -ne 124 ]; then
      for _ in $(seq 20); do
        [ -z "$(rig_pids)" ] && break
        sleep 0.1
      done
    fi
  fi
  pids=$(rig_pids)
  if [ -n "$pids" ]; then
    # SIGTERM would take the same slow shutdown path; SIGKILL is what ends it.
    log "killing leftover asterisk processes: $pids"
    kill -KILL $pids 2>/dev/null || true
    for _ in $(seq 50); do
      [ -z "$(rig_pids)" ] && break
      sleep 0.1
    done
  fi
  [ -z "$(rig_pids)" ] || die "could not stop asterisk ($(rig_pids))"
  rm -f "$run/run/asterisk.ctl" "$run/run/asterisk.pid"
}

render() {
  local f
  rm -rf "$run"
  mkdir -p "$run"/{etc,db,keys,cache,spool,run,log/cdr-custom}
  # The TLS transport of the production pjsip.conf needs a certificate: a throwaway one.
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=tollgate-rig-$name" \
    -keyout "$run/keys/tls.key" -out "$run/keys/tls.crt" >/dev/null 2>&1 \
    || die "openssl could not make the rig's TLS certificate"
  # The production configuration (configs/asterisk), then the rig's overlay (loopback
  # phones: tests/e2e/asterisk), then TOLLGATE_RIG_EXTRA (benchmarks, pyVoIP phones), all
  # through the renderer the Docker image uses.
  local dirs=("$conf_src" "$overlay")
  if [ -n "${TOLLGATE_RIG_EXTRA:-}" ]; then
    [ -d "$TOLLGATE_RIG_EXTRA" ] || die "TOLLGATE_RIG_EXTRA is not a directory: $TOLLGATE_RIG_EXTRA"
    dirs+=("$TOLLGATE_RIG_EXTRA")
  fi
  (
    export RUN=$run_in NAME=$name SIP_BIND=127.0.0.1 SIP_PORT=$sip_port \
      SIP_TCP_PORT=$sip_tcp_port SIP_TLS_PORT=$sip_tls_port \
      TLS_CERT=$run_in/keys/tls.crt TLS_KEY=$run_in/keys/tls.key \
      EXTERNAL_ADDRESS=127.0.0.1 LOCAL_NET=127.0.0.0/8 \
      CARRIER_PORT=$carrier_port CARRIER_HOST=127.0.0.1:$carrier_port CARRIER_MATCH=127.0.0.10 \
      AGI_HOST=$agi_host AGI_PORT=$agi_port AGI_BUDGET=$agi_budget RING_SECONDS=$ring_seconds \
      ARI_PORT=$ari_port AMI_PORT=$ami_port ARI_USER=$ari_user ARI_PASSWORD=$ari_password \
      ARI_PASSWORD_CRYPT=$ari_password_crypt RTP_START=$rtp_start RTP_END=$rtp_end \
      PG_HOST=$pg_host PG_PORT=$pg_port PG_DB=$pg_db PG_USER=$pg_user PG_PASSWORD=$pg_password \
      ACCT_A=${acct[A]} ACCT_B=${acct[B]} ACCT_C=${acct[C]} ACCT_D=${acct[D]} \
      ACCT_E=${acct[E]} ACCT_F=${acct[F]}
    "$here/render.sh" "$run/etc" "${dirs[@]}"
  ) || die "rendering the configs failed"
  # Configs the rig does not customise: the package's defaults, except AMI and CEL, which
  # stay off (empty files).
  for f in ccss.conf features.conf indications.conf pjproject.conf udptl.conf acl.conf; do
    [ -e "$run/etc/$f" ] || cp "$root/etc/asterisk/$f" "$run/etc/$f"
  done
  for f in manager.conf cel.conf websocket_client.conf; do
    [ -e "$run/etc/$f" ] || : >"$run/etc/$f"
  done
}

do_start() {
  root=$(root_path)
  run="$root$run_in"
  do_stop
  render
  # Device nodes live in the root (build-root.sh). /proc is not needed by Asterisk here
  # (tests/e2e/README.md), so nothing is mounted and nothing can be left mounted.
  log "starting asterisk '$name' (SIP 127.0.0.1:$sip_port, carrier :$carrier_port, AGI $agi_host:$agi_port, ARI :$ari_port, AMI :$ami_port)"
  # setsid: the daemon must not die with the caller's terminal or process group.
  setsid chroot "$root" /usr/sbin/asterisk -C "$conf_in" -f -n -g \
    </dev/null >"$run/log/stdout.log" 2>&1 &
  echo $! >"$run/rig.pid"
  for _ in $(seq 300); do
    if is_up; then
      log "up: $(cli 'core show version' | head -n1)"
      return 0
    fi
    if ! kill -0 "$(cat "$run/rig.pid")" 2>/dev/null; then
      tail -n 30 "$run/log/stdout.log" >&2 || true
      die "asterisk exited during start"
    fi
    sleep 0.1
  done
  tail -n 30 "$run/log/stdout.log" >&2 || true
  do_stop
  die "asterisk did not finish booting within 30 s"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  start) do_start ;;
  stop) do_stop ;;
  status)
    if is_up; then echo "running ($run)"; else echo "stopped"; exit 1; fi
    ;;
  cli)
    [ $# -gt 0 ] || die "usage: rig.sh cli COMMAND..."
    [ -S "$run/run/asterisk.ctl" ] || die "asterisk '$name' is not running"
    cli "$@"
    ;;
  paths)
    echo "ROOT=$root"
    echo "RUN=$run"
    echo "LOG=$run/log/full"
    echo "CDR_CSV=$run/log/cdr-custom/tollgate-cdr.csv"
    ;;
  *)
    # The header comment is the usage text.
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 2
    ;;
esac
