# GenoFed site agent: `genofed-site up` (a Flower SuperNode and the site's app gate)
# for one hospital. It connects OUT to the coordinator; the image exposes no port.
#
#   docker build -f docker/site.Dockerfile -t genofed/site .     (from the repository root)
#
# Build arguments (see docker/README.md):
#   BASE_IMAGE      a Python 3.11 image with venv and ca-certificates
#                   (default: the official python:3.11-slim-bookworm; docker/local-base.sh
#                   builds one from Debian packages where no image registry is reachable)
#   EXTRA_CA_CERTS  a directory in the build context whose *.crt files the image trusts
#                   (TLS-inspecting proxies); default docker/ca-certificates (may be empty)
#   WHEELS          a directory in the build context holding the torch CPU wheel
#                   (torch-X+cpu-cp311-...whl); default docker/wheels. Read only by the images
#                   with PyTorch (coordinator.Dockerfile, site-train.Dockerfile): this image
#                   has no genofed[train], and refuses train requests (NOT_INSTALLED)
#   TORCH_INDEX_URL where pip looks for the torch CPU build when WHEELS has none
#   GENOFED_UID     the unprivileged user's uid and gid (default 10001)
#
# Runtime layout (docker/compose.yml mounts these):
#   /srv/genofed/site          the site directory: site.toml, policy.toml, state/ (audit log,
#                              audit key, ledger, approvals), keys/node.key, .genofed-node/
#                              (SuperNode state, admin.json). A volume: it must survive restarts.
#   /srv/genofed/site/data     the hospital's genotype and phenotype files, mounted read-only
#   /etc/genofed/ca.pem        the consortium CA certificate (read-only)

# --- shared with coordinator.Dockerfile: keep these lines identical (one build cache) ---
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
ARG EXTRA_CA_CERTS=docker/ca-certificates
ARG WHEELS=docker/wheels
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG GENOFED_UID=10001
USER root
ENV LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    VIRTUAL_ENV=/opt/genofed \
    PATH=/opt/genofed/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    MPLCONFIGDIR=/tmp/matplotlib
COPY ${EXTRA_CA_CERTS}/ /usr/local/share/ca-certificates/genofed-extra/
RUN set -eu; \
    find /usr/local/share/ca-certificates/genofed-extra -type f ! -name '*.crt' -delete; \
    command -v update-ca-certificates >/dev/null \
      || { echo "error: BASE_IMAGE has no ca-certificates package" >&2; exit 1; }; \
    update-ca-certificates >/dev/null; \
    echo "extra CA certificates: $(find /usr/local/share/ca-certificates/genofed-extra -name '*.crt' | wc -l)"; \
    echo "genofed:x:${GENOFED_UID}:${GENOFED_UID}:GenoFed:/home/genofed:/usr/sbin/nologin" >> /etc/passwd; \
    echo "genofed:x:${GENOFED_UID}:" >> /etc/group; \
    mkdir -p /home/genofed && chown "${GENOFED_UID}:${GENOFED_UID}" /home/genofed; \
    python3 -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
      || { echo "error: BASE_IMAGE must provide Python 3.11 as python3" >&2; exit 1; }; \
    python3 -m venv /opt/genofed
COPY pyproject.toml docker/requirements.py /tmp/genofed-build/
RUN set -eu; cd /tmp/genofed-build; \
    python3 requirements.py pyproject.toml .; \
    pip install --quiet -r requirements.txt -c constraints.txt; \
    rm -rf /tmp/genofed-build
COPY README.md pyproject.toml /tmp/genofed-src/
COPY genofed /tmp/genofed-src/genofed
RUN set -eu; pip install --quiet --no-deps /tmp/genofed-src; pip check; rm -rf /tmp/genofed-src; \
    genofed --help >/dev/null
# --- end of the shared part ---

LABEL org.genofed.image="site"
COPY docker/site_health.py /usr/local/lib/genofed/site_health.py
RUN mkdir -p /srv/genofed/site /etc/genofed \
    && chown "${GENOFED_UID}:${GENOFED_UID}" /srv/genofed/site
WORKDIR /srv/genofed
USER ${GENOFED_UID}:${GENOFED_UID}
VOLUME ["/srv/genofed/site"]
# Healthy = the agent's local SiteAdmin service answers (site directory, policy and audit
# log readable), its SuperNode and app gate run, and the SuperNode holds a connection to
# the coordinator's Fleet API.
HEALTHCHECK --interval=10s --timeout=15s --start-period=60s --retries=3 \
    CMD ["python", "/usr/local/lib/genofed/site_health.py", "/srv/genofed/site"]
ENTRYPOINT ["genofed-site"]
CMD ["up", "/srv/genofed/site", "--superlink", "coordinator:9092", \
     "--ca-cert", "/etc/genofed/ca.pem", "--node-key", "/srv/genofed/site/keys/node.key"]
