# demo-api for the reference stack, linked statically (no libc in the
# image); examples/reference/images.sh assembles the context. The compose
# file's relative command, ../../target/release/demo-api, resolves from
# the working directory as it does in the checkout.
FROM scratch
COPY rootfs/ /
COPY demo-api /app/target/release/demo-api
WORKDIR /app/examples/reference
# Reachable through the engine's port forwarding.
ENV DEMO_HOST=0.0.0.0
USER nobody
