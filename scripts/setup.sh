#!/usr/bin/env bash
# Set-up on a fresh machine: a Python venv holding exactly scripts/requirements.txt (every
# transitive package pinned), and the ONNX conformance cases and model references written to
# build-cases/. Safe to run again: it redoes a part only when what it was made from changed
# (the pins, the scripts that write the cases, or the test models).
set -euo pipefail
cd "$(dirname "$0")/.."
stamp_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# aarch64 artifacts run under qemu in the tests (neoc::qemu, tests/qemu/): a static
# aarch64 C compiler and qemu's user-mode emulator. Checked with Debian bookworm's
# qemu-user-static 1:7.2+dfsg-7+deb12u18, gcc-aarch64-linux-gnu 4:12.2.0-3 and
# libc6-dev-arm64-cross 2.36-8cross1; not pinned to those versions, because the
# mirror drops a version once its security update lands.
if ! command -v qemu-aarch64-static >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null; then
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user-static gcc-aarch64-linux-gnu libc6-dev-arm64-cross
fi

req_stamp=$(stamp_of scripts/requirements.txt)
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if [ "$(cat .venv/.neoc-requirements 2>/dev/null)" != "$req_stamp" ]; then
    # --no-deps: the file lists the whole environment, so pip resolves nothing by itself.
    .venv/bin/pip install --quiet --disable-pip-version-check --no-deps -r scripts/requirements.txt
    .venv/bin/pip check
    echo "$req_stamp" > .venv/.neoc-requirements
fi

cases_stamp=$(stamp_of scripts/requirements.txt scripts/gen_onnx_cases.py scripts/make_model_refs.py tests/models/*.onnx)
if [ "$(cat build-cases/.complete 2>/dev/null)" != "$cases_stamp" ]; then
    rm -rf build-cases
    .venv/bin/python scripts/gen_onnx_cases.py build-cases
    .venv/bin/python scripts/make_model_refs.py tests/models build-cases/models
    echo "$cases_stamp" > build-cases/.complete
fi
