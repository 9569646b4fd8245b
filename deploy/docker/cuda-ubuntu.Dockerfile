# torch with CUDA on NVIDIA's Ubuntu 24.04 image, for hosts with the NVIDIA container toolkit.
#
#   python3 scripts/build-zipapp
#   docker build -f deploy/docker/cuda-ubuntu.Dockerfile -t torch-cuda dist
#   docker run --gpus all torch-cuda python3 /opt/torch-setup.pyz verify   # the GPU check needs a GPU
#
# The base image is the small "base" flavour. The torch wheels bring their own CUDA runtime, and the driver comes
# from the host when the container starts.
ARG BASE=nvidia/cuda:13.0.0-base-ubuntu24.04
FROM ${BASE}

# A build sees no GPU and no driver, so "auto" cannot choose the CUDA build; name it here.
# cu130 runs on NVIDIA driver 580 or newer. A build ARG is in the environment of RUN but is not stored in the image.
# NOTE: torch-setup reads TORCH_SETUP_TORCH_BACKEND (also --torch-backend cu130) only once the torch-choice work
# lands. Versions before that ignore it and install PyPI's default Linux x86_64 torch, which is a CUDA 13 build too.
ARG TORCH_SETUP_TORCH_BACKEND=cu130

COPY torch-setup.pyz /opt/torch-setup.pyz

# One layer: apt lists, .debs and pip downloads never reach the image. Ubuntu's Python 3.12 is externally managed,
# so torch goes into /opt/venv. The torch.compile check during the build runs on the CPU.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \
 && PIP_NO_CACHE_DIR=1 UV_NO_CACHE=1 python3 /opt/torch-setup.pyz install --yes --venv /opt/venv \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /root/.cache /tmp/*

ENV PATH=/opt/venv/bin:$PATH
