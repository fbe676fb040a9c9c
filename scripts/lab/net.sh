# The air-gap lab's network: network namespaces and veth pairs that reproduce the reference
# topology on one machine, and the cleanup that removes every one of them again.
#
#   internet ns  (203.0.113.1/24, "inet0")            mirror, PyPI-like index, DNS, NTP
#        |  veth
#   admin ns     enp0s8 203.0.113.10/24 (external)    installer apply: named, chronyd, nginx, NAT
#                enp0s9 192.168.10.10/24 (internal; a bridge the node veths are enslaved to)
#        |  veth (bridge ports)
#   node1 ns     eth0 192.168.10.11/24, default via 192.168.10.10
#   node2 ns     eth0 192.168.10.12/24, default via 192.168.10.10
#
# The internet side routes 192.168.10.0/24 back via the admin, as a careless upstream would.
# 203.0.113.0/24 is TEST-NET-3 (RFC 5737): documentation space that no real host uses, and the
# 192.168.10.0/24 addresses exist only inside these namespaces. Nothing here touches the host's
# own interfaces, routes, firewall or /etc: every command runs through `ip netns exec`.
#
# Sourced by scripts/airgap-lab; expects LAB_ID to be set (a short unique suffix).

lab_ns() { echo "kol${LAB_ID}-$1"; }
lab_exec() { local ns; ns=$(lab_ns "$1"); shift; ip netns exec "$ns" "$@"; }

LAB_NAMESPACES=(inet admin node1 node2)

lab_net_up() {
  local n
  for n in "${LAB_NAMESPACES[@]}"; do
    ip netns add "$(lab_ns "$n")"
    lab_exec "$n" ip link set lo up
  done

  # internet <-> admin external
  ip link add "k${LAB_ID}i" netns "$(lab_ns inet)" type veth peer name "k${LAB_ID}a" netns "$(lab_ns admin)"
  lab_exec inet ip link set "k${LAB_ID}i" name inet0
  lab_exec admin ip link set "k${LAB_ID}a" name enp0s8
  lab_exec inet ip addr add 203.0.113.1/24 dev inet0
  lab_exec admin ip addr add 203.0.113.10/24 dev enp0s8
  lab_exec inet ip link set inet0 up
  lab_exec admin ip link set enp0s8 up
  lab_exec admin ip route add default via 203.0.113.1
  # An upstream that routes the site's subnet back (issue 17): with NAT off, only the admin's
  # own forward filter keeps the nodes off the internet.
  lab_exec inet ip route add 192.168.10.0/24 via 203.0.113.10

  # admin internal: a bridge named like the reference NIC, the nodes' veths as its ports
  lab_exec admin ip link add enp0s9 type bridge
  lab_exec admin ip addr add 192.168.10.10/24 dev enp0s9
  lab_exec admin ip link set enp0s9 up
  local i=0 node
  for node in node1 node2; do
    i=$((i + 1))
    ip link add "k${LAB_ID}n${i}" netns "$(lab_ns "$node")" type veth peer name "k${LAB_ID}p${i}" netns "$(lab_ns admin)"
    lab_exec "$node" ip link set "k${LAB_ID}n${i}" name eth0
    lab_exec "$node" ip addr add "192.168.10.1${i}/24" dev eth0
    lab_exec "$node" ip link set eth0 up
    lab_exec "$node" ip route add default via 192.168.10.10
    lab_exec admin ip link set "k${LAB_ID}p${i}" master enp0s9
    lab_exec admin ip link set "k${LAB_ID}p${i}" up
  done
}

# Kill every process still running in a lab namespace, then delete the namespaces (which takes
# their interfaces with them). Safe to call twice and after a partial lab_net_up.
lab_net_down() {
  local n ns pids
  for n in "${LAB_NAMESPACES[@]}"; do
    ns=$(lab_ns "$n")
    ip netns list 2>/dev/null | grep -qw "^$ns" || continue
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    if [ -n "$pids" ]; then
      kill $pids 2>/dev/null || true
      sleep 0.5
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
    fi
    ip netns del "$ns" 2>/dev/null || true
  done
}
