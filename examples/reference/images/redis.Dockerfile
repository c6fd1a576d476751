# Redis from the host's Debian package (examples/reference/images.sh
# assembles the context), with busybox for `sh` and `grep`.
FROM scratch
COPY rootfs/ /
COPY --chown=redis:redis data /data
ENV PATH=/usr/bin:/bin BERTH_VOLUME_DATA=/data BIND_ADDRESS=0.0.0.0
USER redis
