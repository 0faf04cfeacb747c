# The operator image, for building with a container engine. The test cluster builds the same image
# without one (scripts/operator-image, an OCI layout assembled by mkimages). What the image holds is
# defined once, in images/operator.env: this final stage must match it (the same files at the same
# paths, user, entrypoint, command and label keys); tests/tests/image/dockerfile.rs checks that.
FROM rust:1.95-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl && apt-get update && apt-get install -y musl-tools
WORKDIR /src
COPY . .
# ring and zstd-sys compile C: for the musl target that needs musl's compiler wrapper.
ENV CC_x86_64_unknown_linux_musl=musl-gcc
RUN cargo build --release --locked --target x86_64-unknown-linux-musl -p jackal-operator && \
    cargo build --locked --profile injector --target x86_64-unknown-linux-musl -p jackal-injector

# Static binaries on an empty base: no shell, no package manager, non-root.
FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="jackal-operator" \
      org.opencontainers.image.description="Jackal operator: air-gapped delivery for Kubernetes" \
      org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.source="https://github.com/jackal-dev/jackal" \
      org.opencontainers.image.revision="$REVISION"
COPY --from=build --chmod=0755 /src/target/x86_64-unknown-linux-musl/release/jackal-operator /jackal-operator
COPY --from=build --chmod=0755 /src/target/x86_64-unknown-linux-musl/injector/jackal-injector /jackal-injector
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
USER 65532:65532
ENTRYPOINT ["/jackal-operator"]
CMD ["run"]
