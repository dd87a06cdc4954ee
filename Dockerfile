# syntax=docker/dockerfile:1.6
# Images of the tollgate stack (docker-compose.yml builds both targets):
#   tollgate  - the Python package: `tollgate serve | cdr-writer | abuse run | panel | db upgrade`
#   asterisk  - Debian sid's Asterisk (bookworm ships none), configs rendered at start

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core ./core
COPY rating ./rating
COPY runtime ./runtime
COPY switch ./switch
COPY cdr ./cdr
COPY billing ./billing
COPY abuse ./abuse
COPY panel_api ./panel_api
COPY tollgate ./tollgate
RUN python -m venv /opt/tollgate \
 && /opt/tollgate/bin/pip install --no-cache-dir . \
 # package-data lists *.lua and *.sql only: the panel's page is copied alongside
 && cp -r panel_api/static /opt/tollgate/lib/python3.11/site-packages/panel_api/static \
 && /opt/tollgate/bin/python -c "import panel_api.page as p; assert (p.STATIC / 'index.html').is_file()"

FROM python:3.11-slim-bookworm AS tollgate
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin tollgate
COPY --from=build /opt/tollgate /opt/tollgate
ENV PATH=/opt/tollgate/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER tollgate
# FastAGI, metrics of serve/cdr-writer/abuse, panel API, panel metrics
EXPOSE 4573 9464 8080 9465
ENTRYPOINT ["tollgate"]
CMD ["serve"]

FROM debian:sid-slim AS asterisk
RUN apt-get update \
 && apt-get install -y --no-install-recommends asterisk asterisk-modules ca-certificates openssl \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/tollgate-asterisk \
 && chown asterisk:asterisk /var/lib/tollgate-asterisk
# configs/asterisk holds templates (@NAME@ placeholders, as the test rig renders them); the
# entrypoint renders them from the environment into the run directory and starts Asterisk.
COPY --chmod=0755 <<'SCRIPT' /usr/local/bin/tollgate-asterisk
#!/bin/sh
set -eu
: "${ARI_PASSWORD:?ARI_PASSWORD must be set}"
run=${ASTERISK_RUN:-/var/lib/tollgate-asterisk}
# ARI keeps only a crypt(3) hash of its password (ari.conf password_format = crypt).
ari_crypt=$(openssl passwd -6 "$ARI_PASSWORD")
mkdir -p "$run/etc" "$run/db" "$run/cache" "$run/spool" "$run/run" "$run/log/cdr-custom"
for f in /etc/tollgate/asterisk/*.conf; do
  sed -e "s|@RUN@|$run|g" \
      -e "s|@NAME@|${ASTERISK_NAME:-$(hostname)}|g" \
      -e "s|@SIP_PORT@|${SIP_PORT:-5060}|g" \
      -e "s|@CARRIER_PORT@|${CARRIER_PORT:-5080}|g" \
      -e "s|@AGI_HOST@|${AGI_HOST:-127.0.0.1}|g" \
      -e "s|@AGI_PORT@|${AGI_PORT:-4573}|g" \
      -e "s|@AGI_BUDGET@|${AGI_BUDGET:-2}|g" \
      -e "s|@RING_SECONDS@|${RING_SECONDS:-60}|g" \
      -e "s|@ARI_PORT@|${ARI_PORT:-8088}|g" \
      -e "s|@AMI_PORT@|${AMI_PORT:-5038}|g" \
      -e "s|@ARI_USER@|${ARI_USER:-tollgate}|g" \
      -e "s|@ARI_PASSWORD_CRYPT@|$ari_crypt|g" \
      -e "s|@ARI_PASSWORD@|$ARI_PASSWORD|g" \
      -e "s|@RTP_START@|${RTP_START:-10000}|g" \
      -e "s|@RTP_END@|${RTP_END:-10100}|g" \
      -e "s|@ACCT_\([A-F]\)@|phone-\1|g" \
      "$f" >"$run/etc/$(basename "$f")"
done
# The shipped configs listen on loopback (test rig); in a container SIP faces the compose
# network and the published ports instead. ARI and AMI stay on loopback: only the tollgate
# next to Asterisk (same network namespace) controls calls and collects parked outcomes.
sed -i -e "s|^bind = 127.0.0.1:|bind = ${SIP_BIND:-0.0.0.0}:|" "$run/etc/pjsip.conf"
exec /usr/sbin/asterisk -f -C "$run/etc/asterisk.conf"
SCRIPT
# Unprivileged: SIP (5060) and RTP are above 1024; Asterisk needs no root.
USER asterisk
EXPOSE 5060/udp
ENTRYPOINT ["/usr/local/bin/tollgate-asterisk"]
