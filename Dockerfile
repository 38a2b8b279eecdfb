# syntax=docker/dockerfile:1
#
# genesys-proxy container image: both binaries (genesys-proxy and genesys-sim) on a small,
# non-root runtime image. See docs/deployment.md.
#
#   docker build -t genesys-proxy:local .
#   docker build --build-arg DEMO=false -t genesys-proxy:prod .      # production: no simulator
#   docker run --rm -p 8080:8080 genesys-proxy:local                 # demo mode (the default CMD)
#   docker run --rm -p 8080:8080 --env-file .env \
#     -v "$PWD/proxy.toml:/etc/genesys-proxy/proxy.toml:ro" \
#     genesys-proxy:local --config /etc/genesys-proxy/proxy.toml     # real mode
#
# scripts/check-deploy lints this file and runs its builder stage's COPY and RUN steps
# directly (no container engine on the project's machines), so keep the builder's RUN
# steps relative to WORKDIR.

############################ builder ############################
FROM rust:1.95-bookworm AS builder

# Keep debug line tables in the binaries (larger image, file:line in backtraces).
ARG KEEP_DEBUGINFO=false
# true: genesys-proxy with its `demo` feature (the default CMD is the demo) and the
# genesys-sim binary (compose runs its simulator and demo services from this image).
# false: a production image, genesys-proxy built without the simulator (`--demo` then says
# so) and no genesys-sim.
ARG DEMO=true

WORKDIR /build
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0

# 1. Dependencies only: the manifests and the lock file, with stub sources in place of the
#    real ones. This layer is rebuilt only when a manifest or Cargo.lock changes.
COPY Cargo.toml Cargo.lock ./
COPY genesys-sim/Cargo.toml genesys-sim/Cargo.toml
RUN mkdir -p src genesys-sim/src \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > genesys-sim/src/main.rs \
    && touch src/lib.rs genesys-sim/src/lib.rs \
    && if [ "$DEMO" = true ]; then set -- --bins --workspace; \
       else set -- --bin genesys-proxy --no-default-features; fi \
    && cargo build --release --locked "$@" \
    && cargo clean --release -p genesys-proxy -p genesys-sim \
    && rm -r src genesys-sim/src

# 2. The real sources: only the two workspace crates are compiled here.
COPY genesys-sim/src genesys-sim/src
COPY src src
RUN if [ "$DEMO" = true ]; then set -- --bins --workspace; \
    else set -- --bin genesys-proxy --no-default-features; fi \
    && cargo build --release --locked "$@" \
    && mkdir -p out \
    && cp target/release/genesys-proxy out/ \
    && if [ "$DEMO" = true ]; then cp target/release/genesys-sim out/; fi \
    && for binary in out/*; do \
         if [ "$KEEP_DEBUGINFO" != "true" ]; then objcopy --strip-debug "$binary"; fi; \
         "$binary" --version; \
       done

############################ runtime ############################
# glibc + libgcc + CA certificates (the proxy's TLS, rustls with the platform verifier, reads
# /etc/ssl/certs), no shell, no package manager; user 65532 "nonroot".
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime

LABEL org.opencontainers.image.title="genesys-proxy" \
      org.opencontainers.image.description="Caching, coalescing, rate-pacing proxy in front of the Genesys Cloud conversation APIs; includes the genesys-sim simulator unless built with DEMO=false" \
      org.opencontainers.image.licenses="Apache-2.0"

# genesys-proxy, and genesys-sim unless DEMO=false.
COPY --from=builder /build/out/ /usr/local/bin/

# No ENV for the listen address: a variable would override the mounted settings file's
# server.listen without a word. The default CMD (demo) passes --listen 0.0.0.0:8080; in
# real mode the settings file says where to listen (the shipped ones: 0.0.0.0:8080, and
# server.ops_listen 0.0.0.0:8090 for probes and metrics), and the start-up log says which
# source the address came from.

# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
# The API (and /healthz, which the HEALTHCHECK below asks). The operations port (8090 in
# the shipped settings) exists only when server.ops_listen is set.
EXPOSE 8080

# Liveness only (no I/O); no curl in the image, the proxy checks itself.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/genesys-proxy", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]

ENTRYPOINT ["/usr/local/bin/genesys-proxy"]
# Demo mode: the simulated org in-process, a demo API key printed to stdout (with
# DEMO=false, a message that this build has no demo, and exit 2).
# Real mode: replace the arguments, e.g. `--config /etc/genesys-proxy/proxy.toml`.
# The simulator alone: `--entrypoint /usr/local/bin/genesys-sim` with `--listen 0.0.0.0:9090`.
CMD ["--demo", "--listen", "0.0.0.0:8080"]
