# Builds the cluster's own images (no public registry is reachable) and pushes them
# to the local registry: the pod sandbox (pause), a minimal Debian bookworm base, and
# a "tools" variant of it with Node.js, Docker and rsync for the build server.
# Root filesystems are cached as tarballs in $CACHE/images.

_have_image() { curl -fs --cacert "$PKI/ca.crt" -o /dev/null "https://$REGISTRY/v2/$1/manifests/${2}" -H 'Accept: application/vnd.docker.distribution.manifest.v2+json'; }

_push() { # name:tag
  docker tag "$1" "$REGISTRY/$1" && docker push -q "$REGISTRY/$1" >/dev/null
}

_import() { # tarball name:tag [changes...]
  local tarball=$1 ref=$2; shift 2
  local args=(); local c; for c in "$@"; do args+=(--change "$c"); done
  docker import "${args[@]}" "$tarball" "$ref" >/dev/null
}

build_pause() {
  _have_image "${PAUSE_IMAGE%:*}" "${PAUSE_IMAGE#*:}" && return 0
  local d; d=$(mktemp -d)
  gcc -static -O2 -o "$d/pause" "$CLUSTER_DIR/images/pause.c"
  tar -C "$d" -cf "$d/rootfs.tar" pause
  _import "$d/rootfs.tar" "$PAUSE_IMAGE" 'ENTRYPOINT ["/pause"]'
  _push "$PAUSE_IMAGE"; rm -rf "$d"
}

_debootstrap() { # out.tar [extra packages] [function called with the root folder before packing]
  local out=$1 extra=${2:-} customize=${3:-} d; d=$(mktemp -d)
  local inc=ca-certificates; [ -n "$extra" ] && inc="$inc,$extra"
  debootstrap --variant=minbase --include="$inc" bookworm "$d/root" http://deb.debian.org/debian >"$LOGS/debootstrap.log" 2>&1 \
    || die "debootstrap failed; see $LOGS/debootstrap.log"
  rm -rf "$d/root/var/lib/apt/lists/"* "$d/root/var/cache/apt/"*.bin "$d/root/var/cache/apt/archives/"*.deb
  [ -z "$customize" ] || "$customize" "$d/root"
  # File capabilities (security.capability) kept: see _bk_root in public-images.sh.
  tar --numeric-owner --xattrs --xattrs-include=security.capability -C "$d/root" -cf "$out.tmp" . && mv "$out.tmp" "$out"
  rm -rf "$d"
}

build_base_images() {
  mkdir -p "$CACHE/images" "$LOGS"
  local base=$CACHE/images/debian-bookworm.tar tools=$CACHE/images/debian-tools-${TOOLS_IMAGE##*:}.tar
  local env='ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  if ! _have_image "${BASE_IMAGE%:*}" "${BASE_IMAGE#*:}"; then
    [ -f "$base" ] || _debootstrap "$base"
    _import "$base" "$BASE_IMAGE" "$env" 'CMD ["bash"]'
    _push "$BASE_IMAGE"
  fi
  if ! _have_image "${TOOLS_IMAGE%:*}" "${TOOLS_IMAGE#*:}"; then
    [ -f "$tools" ] || _debootstrap "$tools" nodejs,docker.io,iptables,rsync,tar,procps,socat
    _import "$tools" "$TOOLS_IMAGE" "$env" 'CMD ["bash"]'
    _push "$TOOLS_IMAGE"
  fi
}
