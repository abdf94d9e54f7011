# syntax=docker/dockerfile:1
#
# cutover's container images. Three stages:
#   build    - compiles the release binary (Rust toolchain image, cached registry/target)
#   apps     - the demo stack's Python apps (deploy/kernia-app, deploy/legacy-app) with
#              the cutover binary for the Clerk stand-in's `hash verify`; used by
#              deploy/compose.yaml only, never in production
#   runtime  - the production image: distroless cc (glibc, CA certificates, no shell),
#              the binary only, user 65532 (nonroot); the default target
#
#   docker build -t cutover:0.1.0 .                     # runtime
#   docker build --target apps -t cutover-demo-apps .   # demo apps
#
# Not exercised on the machines this project is developed on: no container
# registry is reachable there, so the base images cannot be pulled (docs/DEPLOY.md
# says what was and was not tested).

ARG RUST_VERSION=1.90
ARG DEBIAN=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN} AS build
WORKDIR /src
# aws-lc-rs (TLS, JWT) builds its C code with cmake and clang.
RUN apt-get update && apt-get install -y --no-install-recommends cmake clang \
    && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin cutover \
    && install -D -m 0755 target/release/cutover /out/cutover

FROM python:3.11-slim-${DEBIAN} AS apps
RUN useradd --system --uid 10001 --home /app app
WORKDIR /app
COPY deploy/kernia-app/requirements.lock.txt /app/requirements.lock.txt
RUN pip install --no-cache-dir --no-deps -r /app/requirements.lock.txt
COPY deploy/kernia-app /app/deploy/kernia-app
COPY deploy/legacy-app /app/deploy/legacy-app
COPY deploy/demo /app/deploy/demo
RUN mkdir -p /keys && chown 10001 /keys
COPY --from=build /out/cutover /usr/local/bin/cutover
USER 10001
ENV PYTHONUNBUFFERED=1
CMD ["python", "deploy/kernia-app/app.py"]

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=build /out/cutover /usr/local/bin/cutover
USER 65532:65532
# 8443 HTTPS, 8080 plain HTTP (behind a TLS-terminating load balancer), 9901 admin
# (/healthz, /readyz, metrics).
EXPOSE 8443 8080 9901
ENTRYPOINT ["/usr/local/bin/cutover"]
CMD ["serve", "-c", "/etc/cutover/cutover.toml"]
