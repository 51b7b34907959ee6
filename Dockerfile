# syntax=docker/dockerfile:1
# Agora in a container: a Rust builder stage, then a small Debian runtime that runs the
# stripped binary as an unprivileged user, with its data directory as a volume.
#
#   docker build -t agora .
#   docker run -p 7070:7070 -v agora-data:/data agora
#
# docs/operations.md ("Running in containers and under systemd") has the details, and
# compose.yaml runs two nodes on one PostgreSQL.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# The registry and the target directory are cache mounts, so a rebuild compiles only what
# changed; the binary is copied out of the cached target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p agora \
    && cp target/release/agora /usr/local/bin/agora

FROM debian:bookworm-slim
# curl is the health check's only tool; the server itself needs no system library beyond
# libc (SQLite is built in, TLS roots are compiled in).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 agora \
    && useradd --system --uid 10001 --gid agora --home-dir /data --shell /usr/sbin/nologin agora \
    && install -d -o agora -g agora -m 0700 /data
COPY --from=builder /usr/local/bin/agora /usr/local/bin/agora

# The user `agora` made above, by number, so the runtime needs no name lookup to drop root.
USER 10001:10001
ENV AGORA_LISTEN=0.0.0.0:7070 \
    AGORA_DATA_DIR=/data \
    AGORA_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 7070
# /healthz answers 200 while the process runs and its database answers a read. The port is
# the one AGORA_LISTEN names above: change both together.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:7070/healthz"]
ENTRYPOINT ["agora"]
CMD ["serve"]
