# torch on the official python:3.13-slim image (Debian 13 inside, Python 3.13 built from source in /usr/local).
#
#   python3 scripts/build-zipapp
#   docker build -f deploy/docker/python313-slim.Dockerfile -t torch-py313 dist
#
# This image already has Python.h and ensurepip. torch.compile still needs g++, which torch-setup installs with apt.
ARG BASE=python:3.13-slim
FROM ${BASE}

COPY torch-setup.pyz /opt/torch-setup.pyz

# One layer, so apt lists, the .debs and pip's downloads stay out of the image.
# About --venv: this Python is not externally managed and does not belong to the distribution, so torch-setup
# (as of 0.1.0) installs torch into it (/usr/local, already on PATH) and ignores --venv. If a later version
# honours an explicit --venv here, torch goes to /opt/venv instead. The ENV below covers both cases.
RUN PIP_NO_CACHE_DIR=1 UV_NO_CACHE=1 python3 /opt/torch-setup.pyz install --yes --venv /opt/venv \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /root/.cache /tmp/*

ENV PATH=/opt/venv/bin:$PATH
