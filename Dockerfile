# syntax=docker/dockerfile:1
#
# toxcli in a small Debian image, optionally with one Detoxify model baked in.
#
#   docker build -t registry.example/toxscore:latest .
#   docker build --build-arg MODEL=original -t registry.example/toxscore:latest .
#
# Needs BuildKit (the default builder since Docker 23) for the cache mounts.
# See docs/scale-out.md, "Building the image".

# ---------------------------------------------------------------------------
# build: the release binary. The workspace needs Rust >= 1.95 (edition 2024).
# The C parts (bundled SQLite, Oniguruma, ring, zstd, bzip2) need only a C
# compiler and libc headers, which the slim Rust image already has (gcc,
# libc6-dev); no C++, protoc, libclang or system libraries are needed.
FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
# .dockerignore keeps the context to the manifests, Cargo.lock, crates/,
# xtask/ (a workspace member: its manifest must exist) and sql/ (embedded with
# include_str!).
COPY . .
# target/ lives in a cache mount, so the binary is copied out in the same step.
RUN --mount=type=cache,id=toxscore-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=toxscore-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=toxscore-target,target=/src/target,sharing=locked \
    cargo build --release --locked -p toxcli \
    && install -D -m 0755 target/release/toxcli /out/toxcli

# ---------------------------------------------------------------------------
# base: the runtime system, without the binary. ca-certificates for HTTPS
# (BigQuery, Google's OAuth endpoint, model downloads); a fixed numeric UID so
# that Kubernetes' runAsNonRoot can check it; the model cache, and /data for
# the default SQLite store (toxscore.db in the working directory).
FROM debian:bookworm-slim AS base
# DL3008: Debian removes superseded package versions from its mirrors, so a
# pinned ca-certificates version would break the build at the next point
# release; the base image tag fixes the release instead.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 toxscore \
    && useradd --system --uid 10001 --gid toxscore --home-dir /data --shell /usr/sbin/nologin toxscore \
    && install -d -o toxscore -g toxscore -m 0755 /var/cache/toxscore /data
ENV TOXSCORE_CACHE_DIR=/var/cache/toxscore

# ---------------------------------------------------------------------------
# model: `toxcli models download $MODEL` when MODEL is set (original,
# unbiased, multilingual, original-small, unbiased-small), else nothing. The
# download goes to a cache mount first, so rebuilding after a code change does
# not fetch the checkpoint again; `models download` checks its SHA-256, and
# the copy in the image is verified once more.
FROM base AS model
ARG MODEL=""
COPY --from=build /out/toxcli /usr/local/bin/toxcli
RUN --mount=type=cache,id=toxscore-models,target=/tmp/toxscore-models,sharing=locked \
    if [ -n "$MODEL" ]; then \
        find /tmp/toxscore-models -name '.*.part-*' -delete \
        && { TOXSCORE_CACHE_DIR=/tmp/toxscore-models toxcli models verify "$MODEL" 2>/dev/null \
             || TOXSCORE_CACHE_DIR=/tmp/toxscore-models toxcli models download "$MODEL"; } \
        && cp -R "/tmp/toxscore-models/$MODEL" /var/cache/toxscore/ \
        && toxcli models verify "$MODEL"; \
    fi

# ---------------------------------------------------------------------------
# The image: base + the cached model (empty without MODEL) + the binary. The
# model layer comes before the binary, so a new binary leaves it unchanged.
FROM base
ARG MODEL=""
ARG VERSION=0.1.0
ARG REVISION=""
LABEL org.opencontainers.image.title="toxscore" \
      org.opencontainers.image.description="toxcli: score tweets with the Detoxify toxicity classifiers, store the scores in SQLite or BigQuery" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/toxscore" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim" \
      toxscore.model="${MODEL}"
COPY --from=model --chown=10001:10001 /var/cache/toxscore/ /var/cache/toxscore/
COPY --from=build /out/toxcli /usr/local/bin/toxcli
USER 10001:10001
WORKDIR /data
# toxcli stops cleanly on SIGINT (commits what is scored, exits 130) but has
# no SIGTERM handler; runtimes that honour STOPSIGNAL (docker stop,
# containerd under Kubernetes) send SIGINT instead.
STOPSIGNAL SIGINT
ENTRYPOINT ["toxcli"]
CMD ["--help"]
