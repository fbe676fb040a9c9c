# The lab's "internet": what the admin server reaches through its external interface before
# the air gap closes. All of it runs inside the inet namespace on 203.0.113.1 and keeps its
# files under $LAB_DIR/inet:
#   - an HTTP server (nginx) for the Rocky-like mirror and the PyPI-like index
#   - an authoritative DNS server (named) for an "outside" zone, the admin's forwarder
#   - an NTP server (chronyd -x: it serves time and never sets a clock), the admin's upstream
#
# Sourced by scripts/airgap-lab after net.sh.

LAB_OUTSIDE_ZONE=example.com
LAB_OUTSIDE_NAME=www.example.com
LAB_OUTSIDE_ADDR=203.0.113.80

lab_inet_dns() {
  local d=$LAB_DIR/inet/named
  mkdir -p "$d"
  cat >"$d/named.conf" <<EOF
options {
  directory "$d";
  pid-file "$d/named.pid";
  listen-on port 53 { 203.0.113.1; };
  listen-on-v6 { none; };
  recursion no;
  allow-query { any; };
  dnssec-validation no;
};
zone "$LAB_OUTSIDE_ZONE" { type primary; file "$d/outside.zone"; };
EOF
  cat >"$d/outside.zone" <<EOF
\$TTL 1
@   IN SOA ns1.$LAB_OUTSIDE_ZONE. hostmaster.$LAB_OUTSIDE_ZONE. (1 60 60 600 1)
    IN NS  ns1.$LAB_OUTSIDE_ZONE.
ns1 IN A   203.0.113.1
www IN A   $LAB_OUTSIDE_ADDR
EOF
  lab_exec inet named -c "$d/named.conf" -u root -4 >"$d/stdout" 2>&1
}

lab_inet_ntp() {
  local d=$LAB_DIR/inet/chrony
  mkdir -p "$d"
  cat >"$d/chrony.conf" <<EOF
# The lab's upstream time source: serves its own clock, never adjusts it (-x).
local stratum 3
allow 0.0.0.0/0
bindaddress 203.0.113.1
port 123
cmdport 0
pidfile $d/chronyd.pid
driftfile $d/drift
EOF
  lab_exec inet chronyd -x -f "$d/chrony.conf" >"$d/stdout" 2>&1
}

# Serve $1 (a directory) over HTTP on 203.0.113.1:80 with autoindex, as a mirror would.
lab_inet_http() {
  local root=$1 d=$LAB_DIR/inet/nginx
  mkdir -p "$d"
  cat >"$d/nginx.conf" <<EOF
pid $d/nginx.pid;
error_log $d/error.log;
events { worker_connections 256; }
http {
  include /etc/nginx/mime.types;
  access_log $d/access.log;
  client_body_temp_path $d/tmp;
  proxy_temp_path $d/tmp;
  fastcgi_temp_path $d/tmp;
  uwsgi_temp_path $d/tmp;
  scgi_temp_path $d/tmp;
  server {
    listen 203.0.113.1:80;
    root $root;
    autoindex on;
  }
}
EOF
  mkdir -p "$d/tmp"
  chmod a+rx "$LAB_DIR" "$LAB_DIR/inet" "$root"
  lab_exec inet nginx -c "$d/nginx.conf"
}
