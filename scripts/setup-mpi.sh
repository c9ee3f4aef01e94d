#!/usr/bin/env bash
# Installs what `cargo build --features mpi` and `mpirun` need on Debian/Ubuntu: Open MPI (the
# runtime and its headers, found through pkg-config) and libclang (rsmpi generates its bindings
# with bindgen). Idempotent: does nothing when everything is there. Runs apt-get as root, or
# through sudo when not root.
set -euo pipefail
packages=(openmpi-bin libopenmpi-dev libclang-dev pkg-config)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-mpi: already installed: ${packages[*]}"
else
  if [ "$(id -u)" -eq 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null; then
    sudo=(sudo)
  else
    echo "setup-mpi: need root (or sudo) to install ${missing[*]}" >&2
    exit 1
  fi
  echo "setup-mpi: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
mpirun --version | head -n 1
