# torch on Debian 13 (trixie), with torch.compile checked while the image builds.
#
#   python3 scripts/build-zipapp                 # makes dist/torch-setup.pyz
#   docker build -f deploy/docker/debian13.Dockerfile -t torch-debian13 dist
#
# The build context is dist/: the image needs only the pyz from it, and a small context keeps the build fast.
# The build sees no GPU, so the check compiles on the CPU. With podman, add `--isolation chroot` where it
# cannot run containers.

# BASE can be changed so the tests can build this same file from a local Debian 13 root.
ARG BASE=debian:trixie
FROM ${BASE}

# Kept in the image so `python3 /opt/torch-setup.pyz verify` can check it again later, e.g. on a GPU host.
COPY torch-setup.pyz /opt/torch-setup.pyz

# Everything runs in one RUN, so apt lists, the .debs and pip's downloads never end up in a layer.
# debian:trixie has no Python, so install it first. torch-setup then adds what torch.compile needs: python3.13-dev,
# python3.13-venv and g++. The system Python is externally managed (PEP 668), so torch goes into /opt/venv.
# Lists that were just updated are fresh, so torch-setup does not run apt-get update again.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \
 && PIP_NO_CACHE_DIR=1 UV_NO_CACHE=1 python3 /opt/torch-setup.pyz install --yes --venv /opt/venv \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /root/.cache /tmp/*

# `python` is now the venv's interpreter, the one that has torch, for RUN, CMD and `docker run`.
ENV PATH=/opt/venv/bin:$PATH
