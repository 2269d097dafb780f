#!/usr/bin/env bash
# The wheels an offline accelerator image (Python 3.12, with jax, flax, optax and orbax) lacks
# to run scripts/gpu_figures.sh, fetched here into DIR:
#   bash scripts/gpu_wheels.sh DIR [PYTHON_VERSION]        (default 3.12)
# and, on the accelerator machine, with DIR carried there:
#   python -m pip install --no-index --no-deps DIR/*.whl && python -m pip install --no-deps -e .
set -euo pipefail
DIR=${1:?usage: bash scripts/gpu_wheels.sh DIR [PYTHON_VERSION]}
PY=${2:-3.12}
PIP=${PIP:-python3 -m pip}
mkdir -p "$DIR"
$PIP download -q --no-deps --only-binary=:all: --python-version "$PY" \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 -d "$DIR" \
  grain==0.2.18 array-record==0.8.6 "tensorflow-datasets>=4.9.9,<4.10" ml-collections \
  tensorboardX python-calamine openpyxl et-xmlfile importlib_resources dm-tree immutabledict \
  simple_parsing docstring-parser tensorflow-metadata googleapis-common-protos termcolor toml
$PIP wheel -q --no-deps promise -w "$DIR"  # an sdist only
ls "$DIR"
