# GenoFed site agent with model training: the site image plus PyTorch (CPU) and Opacus
# (genofed[train]), for a site whose policy allows `train`. Everything else, the runtime
# layout, health check and command, is the site image's (docker/site.Dockerfile).
#
#   docker build -f docker/site.Dockerfile -t genofed/site:dev .
#   docker build -f docker/site-train.Dockerfile -t genofed/site-train:dev \
#       --build-arg SITE_IMAGE=genofed/site:dev .            (from the repository root)
#
# Build arguments: SITE_IMAGE (the site image to extend), WHEELS and TORCH_INDEX_URL (as in
# docker/README.md: where the torch CPU wheel comes from).
ARG SITE_IMAGE=genofed/site:dev
FROM ${SITE_IMAGE}
ARG WHEELS=docker/wheels
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG GENOFED_UID=10001
USER root
LABEL org.genofed.image="site-train"
# PyTorch and Opacus (genofed[train]) from the CPU build only: the local wheel in WHEELS, or
# PyTorch's CPU index; the build fails if a CUDA library got in.
COPY pyproject.toml docker/requirements.py /tmp/genofed-build/
COPY ${WHEELS}/ /tmp/genofed-build/wheels/
RUN set -eu; cd /tmp/genofed-build; \
    python3 requirements.py pyproject.toml . train; \
    if ls wheels/torch-*+cpu-cp311-*.whl >/dev/null 2>&1; then \
      echo "torch: CPU wheel from ${WHEELS}: $(ls wheels/torch-*+cpu-cp311-*.whl)"; index=""; \
    else \
      echo "torch: no CPU wheel in ${WHEELS}; using the CPU index ${TORCH_INDEX_URL}"; \
      index="--extra-index-url ${TORCH_INDEX_URL}"; \
    fi; \
    pip install --quiet --find-links wheels $index -r requirements.txt -c constraints.txt; \
    if pip list 2>/dev/null | grep -i '^nvidia-'; then echo "error: CUDA libraries installed" >&2; exit 1; fi; \
    pip check; cd /; rm -rf /tmp/genofed-build; python3 -c 'import torch, opacus'
USER ${GENOFED_UID}:${GENOFED_UID}
