#!/usr/bin/env bash
# All set-up on a fresh Debian 12 machine, idempotent: system packages (apt) and a Python
# virtual environment in .venv with pyoci_nb installed editable plus its test extra.
# Run as root (containers need it; the rootless tests create their own unprivileged user).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3 python3-venv python3-dev gcc make git
  busybox-static            # the default container root filesystem
  runc                      # reference runtime: conformance tests and benchmarks
  podman containerd uidmap slirp4netns fuse-overlayfs  # real engines driving pyoci
  libseccomp2               # seccomp through ctypes
  binutils-aarch64-linux-gnu qemu-user  # the exec trampoline: re-assembled and run for every machine it has code for
  python3-ipykernel         # a Jupyter kernel the rootless tests' unprivileged user can run (/usr/bin/python3)
  iproute2 procps util-linux passwd
  containernetworking-plugins  # CNI bridge/host-local/loopback: pods with their own network (tests/engines/test_cri.py)
  docker-registry skopeo    # a real registry on loopback for image tests
  umoci openssl             # image tests: the reference unpacker; the test token server signs JWTs
  chromium                  # real browser for the widget rendering test
)

need_apt=0
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || { need_apt=1; break; }
done
if [ "$need_apt" = 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.pyoci-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]' --config-settings editable_mode=compat  # a plain .pth path: no import hook at every start-up
  touch "$stamp"
fi
