#!/bin/sh
# The GPU check (see gpu_check.py): CUDA-marked tests + timings of render, volume, mesh and a training step.
exec "${PYTHON:-python}" "$(dirname "$0")/gpu_check.py" "$@"
