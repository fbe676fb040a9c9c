# The lab's hosts: each namespace that plays a machine (admin, node1, node2) gets its own copy
# of /etc and of the SELinux policy store, and its own /run, /srv, /var/lib/chrony and /var/log, bind-mounted over the real ones
# in a private mount namespace for every command run "on" that host. Programs there read and
# write /etc/named.conf, /etc/resolv.conf, /etc/yum.repos.d, /run/nginx.pid ... as on a real
# machine, while the host's own files are never touched: the mounts live only as long as the
# processes of that command (a daemon keeps its view until the lab kills it).
#
# Sourced by scripts/airgap-lab after net.sh; expects LAB_DIR.

# Directories of the host that each lab host gets a private copy of (etc) or an empty private
# version of (the rest). /srv holds the admin's data root and named's directory.
LAB_PRIVATE_EMPTY=(/run /srv /var/lib/chrony /var/lib/NetworkManager /var/log)
# Directories of the host each lab host gets a private copy of besides /etc, when the host has
# them: the SELinux policy store, which `installer apply` adds its labels to.
LAB_PRIVATE_COPY=(/var/lib/selinux)

lab_host_prepare() {
  local host=$1 d=$LAB_DIR/$1 p
  mkdir -p "$d/etc"
  cp -a /etc/. "$d/etc/"
  echo "$host" >"$d/etc/hostname"
  for p in "${LAB_PRIVATE_EMPTY[@]}"; do
    mkdir -p "$d/fs$p"
  done
  for p in "${LAB_PRIVATE_COPY[@]}"; do
    if [ -d "$p" ]; then
      mkdir -p "$d/fs$p"
      cp -a "$p/." "$d/fs$p/"
    fi
  done
  mkdir -p "$d/fs/run/named" "$d/fs/run/chrony" "$d/fs/var/log/nginx" "$d/fs/var/log/chrony" "$d/home"
  # nginx workers (www-data) read the data root; named and chronyd may drop privileges.
  chmod 755 "$d" "$d/fs" "$d/fs/srv"
  chmod 1777 "$d/fs/run/named" "$d/fs/run/chrony" "$d/fs/var/log/chrony"
  # The host's own chrony/bind users own their dirs on a real machine; mirror that when they exist.
  if id _chrony >/dev/null 2>&1; then chown _chrony: "$d/fs/var/lib/chrony" "$d/fs/run/chrony"; fi
}

# lab_on HOST CMD...: run CMD in HOST's network namespace with HOST's private files mounted.
lab_on() {
  local host=$1
  shift
  ip netns exec "$(lab_ns "$host")" unshare --mount --propagation private -- /bin/sh -c '
    d=$1; shift
    mount --bind "$d/etc" /etc || exit 125
    for p in '"${LAB_PRIVATE_EMPTY[*]} ${LAB_PRIVATE_COPY[*]}"'; do
      [ -d "$p" ] && [ -d "$d/fs$p" ] || continue
      mount --bind "$d/fs$p" "$p" || exit 125
    done
    export HOME="$d/home"
    exec "$@"
  ' lab-on "$LAB_DIR/$host" "$@"
}
