# Shared by ./dev/demo and ./dev/test: make sure the system packages Rootmark
# needs are present, installing them with apt-get when running as root.
# shellcheck shell=bash

ROOTMARK_APT_PACKAGES=(swtpm swtpm-tools tpm2-tools libtss2-dev libtss2-tcti-swtpm0 pkg-config gnutls-bin sqlite3 openssl)

rootmark_missing_packages() {
  local missing=()
  command -v swtpm >/dev/null 2>&1 || missing+=(swtpm)
  command -v swtpm_setup >/dev/null 2>&1 || missing+=(swtpm-tools gnutls-bin)
  command -v tpm2_checkquote >/dev/null 2>&1 || missing+=(tpm2-tools)
  command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
  command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  if ! pkg-config --exists tss2-esys tss2-tctildr tss2-mu 2>/dev/null; then
    missing+=(libtss2-dev)
  fi
  if ! ls /usr/lib/*/libtss2-tcti-swtpm.so* >/dev/null 2>&1; then
    missing+=(libtss2-tcti-swtpm0)
  fi
  echo "${missing[@]}"
}

rootmark_ensure_packages() {
  local missing
  missing=$(rootmark_missing_packages)
  if [ -z "$missing" ]; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "Rootmark needs these Debian packages: $missing" >&2
    echo "Install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${ROOTMARK_APT_PACKAGES[*]}" >&2
    exit 1
  fi
  echo "==> Installing system packages: ${ROOTMARK_APT_PACKAGES[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${ROOTMARK_APT_PACKAGES[@]}" >/dev/null
  missing=$(rootmark_missing_packages)
  if [ -n "$missing" ]; then
    echo "still missing after apt-get install: $missing" >&2
    exit 1
  fi
}

rootmark_ensure_cargo() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install a Rust toolchain (https://rustup.rs) and re-run." >&2
    exit 1
  fi
}
