#!/usr/bin/env bash
# Download the pure-Python wheels that the GPU machine lacks into .whl/ (git-ignored), for
# ci/gpu_check.sh to install offline there. Run here, where PyPI is reachable.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: -d .whl \
    "array-api-compat==1.16.0" "array-api-strict==2.6.1"
ls -l .whl
