# The lab's checks: the seed's own verification steps, run from a node (and `installer status`
# on the admin). Each prints one line, "PASS|FAIL  <round> <host> <check>  <detail>", appends it
# to $LAB_DIR/results, and never stops the lab: the summary at the end decides the exit status.
#
# Sourced by scripts/airgap-lab; expects LAB_DIR, LAB_DOMAIN, LAB_OUTSIDE_NAME/ADDR, ADMIN_ADDR,
# and PROBE (scripts/lab/probe, which does each check's work on the lab host).

lab_result() { # status round host check detail
  local line
  line=$(printf '%-4s  %-8s %-6s %-14s %s' "$1" "$2" "$3" "$4" "$5")
  echo "$line" | tee -a "$LAB_DIR/results"
}

# check ROUND HOST NAME EXPECT CMD...: run CMD on HOST; EXPECT is "ok" (CMD must succeed) or
# "fail" (CMD must fail, e.g. the internet once NAT is off). CMD's output goes to a log; its
# last line is the detail.
check() {
  local round=$1 host=$2 name=$3 expect=$4 log rc detail
  shift 4
  log=$LAB_DIR/logs/check-$round-$host-$name.log
  if lab_on "$host" "$@" >"$log" 2>&1; then rc=0; else rc=$?; fi
  detail=$(grep -v '^\s*$' "$log" | tail -n 1 | cut -c1-100 || true)
  if [ "$expect" = ok ] && [ $rc -eq 0 ]; then
    lab_result PASS "$round" "$host" "$name" "$detail"
  elif [ "$expect" = fail ] && [ $rc -ne 0 ]; then
    lab_result PASS "$round" "$host" "$name" "failed as expected: $detail"
  else
    lab_result FAIL "$round" "$host" "$name" "exit $rc, expected $expect: $detail"
    # The work dir goes away on exit (unless --keep): show the evidence now.
    tail -n 15 "$log" | sed 's/^/      | /'
  fi
}

# run_node_checks ROUND INTERNET(ok|fail) [pip]
run_node_checks() {
  local round=$1 internet=$2 pip=${3:-} node
  for node in node1 node2; do
    check "$round" "$node" dns-site ok "$PROBE" dig "registry.$LAB_DOMAIN" "$ADMIN_ADDR"
    check "$round" "$node" dns-outside ok "$PROBE" dig "$LAB_OUTSIDE_NAME" "$LAB_OUTSIDE_ADDR"
    check "$round" "$node" ntp ok "$PROBE" ntp
    check "$round" "$node" dnf ok "$PROBE" dnf "$LAB_DIR/$node/installroot-$round"
    if [ "$internet" = ok ]; then
      check "$round" "$node" internet ok "$PROBE" internet
    else
      check "$round" "$node" internet-cut fail "$PROBE" internet
    fi
  done
  if [ -n "$pip" ]; then
    check "$round" node1 pip ok "$PROBE" pip
  fi
  # Kubespray's downloads, from the admin: a file of the files repo, an image via containerd.
  check "$round" node1 kubelet ok "$PROBE" file "$LAB_KUBELET_URL" "$LAB_KUBELET_SHA256"
  check "$round" node1 image ok "$PROBE" image "$LAB_IMAGE"
  check "$round" admin status ok "$PROBE" status "$LAB_RUN" "$LAB_SITE"
}

# sealed_check ROUND: with NAT off and the internet routing the site back, node1 tries the
# internet and must not get a single packet out of the admin's external interface. Counted as
# the packets arrive on the internet side of that link (netdev ingress on inet0, in the inet
# namespace, so the admin's own ruleset is not touched). The control: the admin's own ping (sent
# from its internal address, 192.168.10.10) must be counted on the same hook, or the count proves
# nothing. Under firewalld the external zone masquerades that ping, so it is matched as the only
# ICMP echo request on the link rather than by its source.
sealed_check() {
  local round=$1 node packets control
  if ! lab_exec inet nft list table netdev lab_watch >/dev/null 2>&1; then
    lab_exec inet nft -f - <<EOF
table netdev lab_watch {
  counter node1 {}
  counter admin_ping {}
  chain in {
    type filter hook ingress device inet0 priority 0; policy accept;
    ip saddr 192.168.10.11 counter name node1
    icmp type echo-request counter name admin_ping
  }
}
EOF
  fi
  lab_exec inet nft reset counters table netdev lab_watch >/dev/null
  lab_on node1 "$PROBE" internet >/dev/null 2>&1 && node=reached || node=cut
  lab_on admin ping -c 1 -W 2 -I 192.168.10.10 203.0.113.1 >/dev/null 2>&1 || true
  packets=$(lab_exec inet nft list counter netdev lab_watch node1 | sed -n 's/.*packets \([0-9]*\).*/\1/p')
  control=$(lab_exec inet nft list counter netdev lab_watch admin_ping | sed -n 's/.*packets \([0-9]*\).*/\1/p')
  local detail="internet $node; packets from node1 out of enp0s8: ${packets:-?} (control, the admin's ping: ${control:-?})"
  if [ "$node" = cut ] && [ "${packets:-1}" -eq 0 ] && [ "${control:-0}" -ge 1 ]; then
    lab_result PASS "$round" node1 sealed "$detail"
  else
    lab_result FAIL "$round" node1 sealed "$detail"
  fi
}

# leak_control ROUND: the counter's other side. With the admin as it was before `nat disable`
# learnt to drop forwarding (masquerade gone, forwarding still on), the same attempt reaches the
# internet over the route back and the node's own address is counted on the link. Afterwards the
# caller runs `installer nat disable` again.
leak_control() {
  local round=$1 node packets
  lab_on admin nft delete table ip kubespray_offline_nat >/dev/null 2>&1 || true
  lab_on admin sysctl -qw net.ipv4.ip_forward=1
  lab_exec inet nft reset counters table netdev lab_watch >/dev/null
  lab_on node1 "$PROBE" internet >/dev/null 2>&1 && node=reached || node=cut
  packets=$(lab_exec inet nft list counter netdev lab_watch node1 | sed -n 's/.*packets \([0-9]*\).*/\1/p')
  local detail="forwarding on, no drop: internet $node; packets from node1 out of enp0s8: ${packets:-?}"
  if [ "$node" = reached ] && [ "${packets:-0}" -ge 1 ]; then
    lab_result PASS "$round" node1 leak-control "$detail"
  else
    lab_result FAIL "$round" node1 leak-control "$detail"
  fi
}
