# GenoFed coordinator: `genofed coordinator up` (a Flower SuperLink with TLS and SuperNode
# authentication; studies' ServerApps run inside it, keep the consortium's copy of each
# study's results in the state volume and stream them back to the analyst).
# The analyst's CLI (`genofed study run --superlink`) is in this image too.
#
#   docker build -f docker/coordinator.Dockerfile -t genofed/coordinator .   (repository root)
#
# Build arguments: as docker/site.Dockerfile (BASE_IMAGE, EXTRA_CA_CERTS, WHEELS,
# TORCH_INDEX_URL, GENOFED_UID); see docker/README.md.
#
# Runtime layout (docker/compose.yml mounts these):
#   /etc/genofed/coordinator.toml  the configuration, read-only, with tls/ (ca.pem, server.pem,
#                                  server.key), keys/<site>.audit.pub ([receipts.audit_keys])
#                                  and nodes/<site>.pub (node keys to register) beside it
#   /var/lib/genofed               state (a volume): the SuperLink database, logs, Flower's
#                                  home, results/<run> (the coordinator's copy of each study's)
#   9092/tcp                       the Fleet API the sites connect to (gRPC, TLS, node auth);
#                                  the Control API stays on 127.0.0.1:9093 (no user auth in
#                                  open-source Flower): analysts run on this host or share its
#                                  network namespace, as compose's runner does

# --- shared with site.Dockerfile: keep these lines identical (one build cache) ---
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

LABEL org.genofed.image="coordinator"
# The result plots need the plot extra (matplotlib), and a study's train analysis the train
# extra (the coordinator writes model.pt); the site image goes without both. Layers of their
# own after the shared part, so that both images keep sharing the layers above.
# PyTorch and Opacus (genofed[train]) from the CPU build only: the local wheel in WHEELS, or
# PyTorch's CPU index; the build fails if a CUDA library got in.
COPY pyproject.toml docker/requirements.py /tmp/genofed-build/
COPY ${WHEELS}/ /tmp/genofed-build/wheels/
RUN set -eu; cd /tmp/genofed-build; \
    python3 requirements.py pyproject.toml . plot train; \
    if ls wheels/torch-*+cpu-cp311-*.whl >/dev/null 2>&1; then \
      echo "torch: CPU wheel from ${WHEELS}: $(ls wheels/torch-*+cpu-cp311-*.whl)"; index=""; \
    else \
      echo "torch: no CPU wheel in ${WHEELS}; using the CPU index ${TORCH_INDEX_URL}"; \
      index="--extra-index-url ${TORCH_INDEX_URL}"; \
    fi; \
    pip install --quiet --find-links wheels $index -r requirements.txt -c constraints.txt; \
    if pip list 2>/dev/null | grep -i '^nvidia-'; then echo "error: CUDA libraries installed" >&2; exit 1; fi; \
    pip check; cd /; rm -rf /tmp/genofed-build; python3 -c 'import torch, opacus'; python3 -c 'import matplotlib'
COPY docker/coordinator_health.py docker/register_sites.sh /usr/local/lib/genofed/
RUN mkdir -p /var/lib/genofed /etc/genofed \
    && chown "${GENOFED_UID}:${GENOFED_UID}" /var/lib/genofed
WORKDIR /var/lib/genofed
USER ${GENOFED_UID}:${GENOFED_UID}
VOLUME ["/var/lib/genofed"]
EXPOSE 9092
# Healthy = the SuperLink completes a TLS handshake, with the consortium CA, on its Fleet API
# and its Control API (both named in coordinator.toml).
HEALTHCHECK --interval=10s --timeout=15s --start-period=60s --retries=3 \
    CMD ["python", "/usr/local/lib/genofed/coordinator_health.py", "/etc/genofed/coordinator.toml"]
ENTRYPOINT ["genofed"]
CMD ["coordinator", "up", "--config", "/etc/genofed/coordinator.toml"]
