#!/usr/bin/env bash
# The no_std proof (crates/no-std-check), in both variants and on three targets:
#   with alloc     the Vec API's codecs too, behind a dummy global allocator;
#   without alloc  the buffer API only: no allocator is defined, so rustc refuses the build
#                  ("no global memory allocator found") if anything in the graph links `alloc`;
# each on the host, wasm32-unknown-unknown and thumbv7em-none-eabihf (bare metal: no std
# exists there). A std dependency fails every build (E0152, duplicate `panic_impl`).
# Then llvm-nm (rustup's llvm-tools) confirms each archive defines the Fx instance of
# `epoch_in_place`, and that the no-alloc one has no allocator symbol at all.
# Needs: rustup targets wasm32-unknown-unknown thumbv7em-none-eabihf, component llvm-tools.
set -euo pipefail
cd "$(dirname "$0")/../crates/no-std-check"
host=$(rustc -vV | sed -n 's/^host: //p')
nm="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-nm"
[ -x "$nm" ] || { echo "no-std-check: $nm missing: rustup component add llvm-tools" >&2; exit 1; }
fail() { echo "no-std-check: $*" >&2; exit 1; }

for target in "$host" wasm32-unknown-unknown thumbv7em-none-eabihf; do
  for variant in alloc no-alloc; do
    flags=(--release --target "$target")
    [ "$variant" = no-alloc ] && flags+=(--no-default-features)
    echo "no-std-check: $target, $variant"
    lib=$(cargo build -q "${flags[@]}" --message-format=json-render-diagnostics \
      | grep -o '"[^"]*/libdeepnode_no_std_check\.a"' | tail -1 | tr -d '"')
    [ -n "$lib" ] || fail "$target, $variant: cargo named no archive"
    syms=$("$nm" --defined-only -C "$lib" 2>/dev/null)
    grep -q ' T deepnode_check_epoch$' <<<"$syms" || fail "$lib: deepnode_check_epoch not defined"
    grep -q ' T deepnode_check_wire$' <<<"$syms" || fail "$lib: deepnode_check_wire not defined"
    # Global or local: what matters is that the instance is compiled in.
    grep -q ' [Tt] deepnode_consensus::epoch::epoch_in_place' <<<"$syms" \
      || fail "$lib: epoch_in_place not compiled in"
    if [ "$variant" = no-alloc ]; then
      if "$nm" "$lib" 2>/dev/null | grep -q '__rust_alloc\|__rdl_alloc\|__rg_alloc'; then
        fail "$lib: allocator symbols in the no-alloc build"
      fi
    else
      grep -q ' T deepnode_check_codec$' <<<"$syms" || fail "$lib: deepnode_check_codec not defined"
      grep -q ' T deepnode_check_rules$' <<<"$syms" || fail "$lib: deepnode_check_rules not defined"
    fi
  done
done
echo "no-std-check: ok"
