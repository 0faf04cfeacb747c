# The operator image: a static binary on an empty base, running as non-root.
# (Minimal for now; the shipping issue builds this image without a Docker engine, as an OCI layout.)
FROM rust:1.95-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl && apt-get update && apt-get install -y musl-tools
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl -p jackal-operator

FROM scratch
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/jackal-operator /jackal-operator
USER 65532:65532
ENTRYPOINT ["/jackal-operator"]
