# The kopeo operator image: a release build on Debian, run from a distroless
# base as a non-root user (the chart also sets a read-only root filesystem).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin kopeo

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/kopeo /usr/local/bin/kopeo
# The trust policy `kopeo copy` reads by default, as distributions ship it
# (accept anything); the operator judges sources by spec.verify instead.
COPY examples/policy.json /etc/containers/policy.json
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/kopeo"]
CMD ["operator"]
