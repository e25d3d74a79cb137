#!/usr/bin/env bash
# Seeds the fuzz corpus with every example and rejected manifest paired with the
# board device trees that `cargo xtask setup` fetched (and QEMU virt's tree).
set -euo pipefail
cd "$(dirname "$0")/.."
out=fuzz/corpus/manifest_and_dtb
mkdir -p "$out"
cache=${AMP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/amp-firmware}
trees=("$cache"/dtbs/*.dtb "$cache"/guest/dtbs/broadcom/bcm2711-rpi-4-b.dtb \
       "$cache"/guest/dtbs/broadcom/bcm2837-rpi-3-b.dtb "$cache"/guest/dtbs/freescale/imx8mp-evk.dtb)
n=0
for m in manifests/*/*.toml; do
  for t in "${trees[@]}"; do
    [ -f "$t" ] || continue
    len=$(stat -c %s "$m")
    { printf "$(printf '\\x%02x\\x%02x' $((len & 255)) $((len >> 8)))"; cat "$m" "$t"; } > "$out/seed-$n"
    n=$((n + 1))
  done
done
echo "wrote $n seeds to $out"
