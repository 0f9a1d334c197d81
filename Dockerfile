# syntax=docker/dockerfile:1
#
# pipeline-publisher container image.
#
# Stage 1 builds the production worker (`--no-default-features`: the `worker`, `publish` and
# `check` commands, without the mock registry, the sandbox or `demo`) with the Rust toolchain;
# stage 2 copies only that binary into
# a distroless runtime that has glibc, libgcc_s and CA certificates and nothing else (no shell,
# no package manager), and runs it as an unprivileged user.
#
#   docker build -t pipeline-publisher .
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/pipeline-publisher:VERSION --push .
#   docker run --rm -e AWS_REGION=eu-west-1 pipeline-publisher            # the worker (CMD)
#   docker run --rm pipeline-publisher check --skip-aws --artifactory-host https://acme.jfrog.io
#
# The offline demo needs the stand-ins, which the production image leaves out: run it from a
# checkout with `cargo run -- demo`.
#
# Stop it with `docker stop --time 330 ...` (more than PIPELINE_PUBLISHER_DRAIN_TIMEOUT): the
# worker drains in-flight jobs on SIGTERM, and Docker's default 10 s would cut that short.
#
# Both base images are pinned to a release. For byte-for-byte reproducible builds also pin their
# digests (`docker buildx imagetools inspect IMAGE:TAG` prints them: FROM IMAGE:TAG@sha256:...)
# and let a dependency bot bump tag and digest together.

FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
# The whole crate (see .dockerignore for what stays out). The cache mounts keep the registry and
# target/ between builds, so a source change rebuilds only this crate.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --no-default-features --bin pipeline-publisher \
    && install -D -m 0755 target/release/pipeline-publisher /out/pipeline-publisher

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=build /out/pipeline-publisher /usr/local/bin/pipeline-publisher
# One JSON object per log line for container log collectors. Region and credentials come from
# the standard AWS chain (task role, IRSA, instance profile, AWS_* variables).
ENV PIPELINE_PUBLISHER_LOG_FORMAT=json
# distroless's "nonroot" user, numeric so runtimes can verify it is not root.
USER 65532:65532
STOPSIGNAL SIGTERM
ENTRYPOINT ["pipeline-publisher"]
CMD ["worker"]
