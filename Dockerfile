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
COPY customers ./customers
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
 && mkdir -p /var/lib/tollgate-asterisk/log/cdr-custom \
 && chown -R asterisk:asterisk /var/lib/tollgate-asterisk
# log/cdr-custom exists in the image so the volume shared with tollgate (the outcome log,
# docker-compose.yml) starts owned by asterisk.
# configs/asterisk holds templates (@NAME@ placeholders); the entrypoint renders them from
# the environment (scripts/asterisk/render.sh, the renderer the test rig uses too) into the
# run directory and starts Asterisk. docs/asterisk-integration.md lists the variables.
COPY --chmod=0755 scripts/asterisk/render.sh /usr/local/bin/tollgate-asterisk-render
COPY --chmod=0755 <<'SCRIPT' /usr/local/bin/tollgate-asterisk
#!/bin/bash
set -euo pipefail
: "${ARI_PASSWORD:?ARI_PASSWORD must be set}"
export RUN=${ASTERISK_RUN:-/var/lib/tollgate-asterisk}
export NAME=${ASTERISK_NAME:-$(hostname)}
export SIP_BIND=${SIP_BIND:-0.0.0.0} SIP_PORT=${SIP_PORT:-5060}
export SIP_TCP_PORT=${SIP_TCP_PORT:-$SIP_PORT} SIP_TLS_PORT=${SIP_TLS_PORT:-5061}
export AGI_HOST=${AGI_HOST:-127.0.0.1} AGI_PORT=${AGI_PORT:-4573} AGI_BUDGET=${AGI_BUDGET:-2}
export RING_SECONDS=${RING_SECONDS:-60} ARI_PORT=${ARI_PORT:-8088} AMI_PORT=${AMI_PORT:-5038}
export ARI_USER=${ARI_USER:-tollgate} RTP_START=${RTP_START:-10000} RTP_END=${RTP_END:-10999}
export PG_HOST=${PG_HOST:-postgres} PG_PORT=${PG_PORT:-5432} PG_DB=${PG_DB:-tollgate}
export PG_USER=${PG_USER:-tollgate}
: "${PG_PASSWORD:?PG_PASSWORD must be set (realtime SIP logins)}"
: "${EXTERNAL_ADDRESS:?EXTERNAL_ADDRESS must be set (the address phones and carriers see)}"
: "${LOCAL_NET:?LOCAL_NET must be set (the network not behind NAT)}"
: "${CARRIER_HOST:?CARRIER_HOST must be set (the carrier SIP proxy, host[:port])}"
: "${CARRIER_MATCH:?CARRIER_MATCH must be set (addresses the carrier calls from)}"
mkdir -p "$RUN/etc" "$RUN/db" "$RUN/keys" "$RUN/cache" "$RUN/spool" "$RUN/run" "$RUN/log/cdr-custom"
export TLS_CERT=${TLS_CERT:-/etc/tollgate/tls/fullchain.pem} TLS_KEY=${TLS_KEY:-/etc/tollgate/tls/privkey.pem}
if [ ! -r "$TLS_CERT" ] || [ ! -r "$TLS_KEY" ]; then
  # SIP over TLS needs a certificate; a self-signed one until the operator mounts theirs.
  echo "tollgate-asterisk: no TLS certificate at $TLS_CERT: using a self-signed one" >&2
  TLS_CERT=$RUN/keys/tls.crt TLS_KEY=$RUN/keys/tls.key
  [ -r "$TLS_CERT" ] || openssl req -x509 -newkey rsa:2048 -nodes -days 825 \
    -subj "/CN=$NAME" -keyout "$TLS_KEY" -out "$TLS_CERT" 2>/dev/null
fi
tollgate-asterisk-render "$RUN/etc" /etc/tollgate/asterisk
exec /usr/sbin/asterisk -f -C "$RUN/etc/asterisk.conf"
SCRIPT
# Unprivileged: SIP (5060) and RTP are above 1024; Asterisk needs no root.
USER asterisk
EXPOSE 5060/udp 5060/tcp 5061/tcp
ENTRYPOINT ["/usr/local/bin/tollgate-asterisk"]
