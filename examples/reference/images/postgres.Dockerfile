# PostgreSQL 15 from the host's Debian packages (examples/reference/images.sh
# assembles the context): the binaries where Debian has them, their
# libraries, the share directory and time zones, busybox for `sh`.
FROM scratch
COPY rootfs/ /
# The volume's mount point, owned by postgres: the engine gives a new named
# volume its owner and mode.
COPY --chown=postgres:postgres data /var/lib/postgresql/data
ENV PATH=/usr/bin:/bin \
    BERTH_VOLUME_VAR_LIB_POSTGRESQL_DATA=/var/lib/postgresql/data \
    BIND_ADDRESS=0.0.0.0
USER postgres
