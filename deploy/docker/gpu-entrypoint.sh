#!/bin/sh
# Prove torch.compile on the GPU at the container's first start, then run its command.
#
# A `docker build` sees no GPU, so the install's check compiled on the CPU only. This runs the same check on the
# GPU (`torch-setup verify --gpu`: Inductor's Triton kernels on cuda:0, fresh caches) and starts the command only
# when it passes; otherwise the container exits with the check's code (15: torch sees no GPU, 9: the compile
# failed, 7: no such Python; the README's exit codes), and its one-line cause is the last thing in the log.
#
#   COPY gpu-entrypoint.sh /opt/gpu-entrypoint.sh        # next to /opt/torch-setup.pyz, as the Dockerfiles put it
#   ENTRYPOINT ["/opt/gpu-entrypoint.sh"]
#   CMD ["python", "train.py"]
#   docker run --gpus all IMAGE                            # the NVIDIA container runtime brings libcuda.so.1
#
# TORCH_SETUP_PYZ (default /opt/torch-setup.pyz) and TORCH_SETUP_PYTHON (default python3: with the Dockerfiles'
# PATH, /opt/venv's) say where they are; TORCH_SETUP_VERIFY_ARGS adds options (e.g. "--json").
set -u
pyz=${TORCH_SETUP_PYZ:-/opt/torch-setup.pyz}
python=$(command -v "${TORCH_SETUP_PYTHON:-python3}") || { echo "gpu-entrypoint: no ${TORCH_SETUP_PYTHON:-python3}" >&2; exit 7; }
# the interpreter that runs the pyz is the one checked (python3 on the image's PATH: the one with torch)
# shellcheck disable=SC2086  # the extra options are words on purpose
"$python" "$pyz" verify --gpu --python "$python" ${TORCH_SETUP_VERIFY_ARGS:-} || exit $?
exec "$@"
