//! Benchmark tool, not a user command: a wide-area link between network namespaces, for
//! `scripts/bench-wan`. This machine's kernel has no `netem` qdisc, so the link is a process:
//! it opens one TUN device in each namespace it is given and forwards IPv4 packets between
//! them by destination address, holding each for the one-way delay (a share of packets for
//! longer, which reorders them as a real path does), at the link's rate, and at a per-TCP-
//! connection rate towards the client (a mirror's per-connection shaping). A packet that would
//! wait longer than the queue allows is dropped, as a router's tail drop does.
//!
//! ```text
//! wan-link --client NETNS=DEV=IP --server NETNS=DEV=IP [--server ...]
//!          [--rtt-ms 40] [--rate-mbit 400] [--flow-mbit 40] [--slow-share 0.01]
//!          [--slow-extra-ms 10] [--queue-ms RTT]
//! ```
//!
//! The devices exist while the process runs (the script configures their addresses); every
//! 10 s it prints what it forwarded and dropped to stderr.

use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags.
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: libc::c_short,
    _pad: [u8; 22],
}

struct Side {
    netns: String,
    dev: String,
    ip: [u8; 4],
    client: bool,
}

struct Settings {
    sides: Vec<Side>,
    one_way: Duration,
    link_bps: f64,
    flow_bps: f64,
    slow_share: f64,
    slow_extra: Duration,
    queue: Duration,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wan-link: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn parse_side(spec: &str, client: bool) -> anyhow::Result<Side> {
    let mut parts = spec.splitn(3, '=');
    let (Some(netns), Some(dev), Some(ip)) = (parts.next(), parts.next(), parts.next()) else {
        bail!("{spec}: expected NETNS=DEV=IP");
    };
    let ip: std::net::Ipv4Addr = ip.parse().with_context(|| format!("{spec}: bad IPv4"))?;
    Ok(Side {
        netns: netns.into(),
        dev: dev.into(),
        ip: ip.octets(),
        client,
    })
}

fn parse_args() -> anyhow::Result<Settings> {
    let mut sides = Vec::new();
    let (mut rtt, mut rate, mut flow) = (40.0, 400.0, 40.0);
    let (mut slow_share, mut slow_extra, mut queue) = (0.01, 10.0, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<f64>()
                .with_context(|| format!("{flag} {value}: not a number"))
        };
        match flag.as_str() {
            "--client" => sides.push(parse_side(&value, true)?),
            "--server" => sides.push(parse_side(&value, false)?),
            "--rtt-ms" => rtt = number()?,
            "--rate-mbit" => rate = number()?,
            "--flow-mbit" => flow = number()?,
            "--slow-share" => slow_share = number()?,
            "--slow-extra-ms" => slow_extra = number()?,
            "--queue-ms" => queue = Some(number()?),
            _ => bail!("unknown flag {flag}"),
        }
    }
    if sides.iter().filter(|s| s.client).count() != 1 || sides.len() < 2 {
        bail!("give one --client and at least one --server");
    }
    let ms = |v: f64| Duration::from_secs_f64(v / 1000.0);
    Ok(Settings {
        sides,
        one_way: ms(rtt / 2.0),
        link_bps: rate * 1e6,
        flow_bps: flow * 1e6,
        slow_share,
        slow_extra: ms(slow_extra),
        // A router buffer of about one round trip at the rate, the classic rule of thumb.
        queue: ms(queue.unwrap_or(rtt.max(20.0))),
    })
}

/// Opens TUN device `dev` inside network namespace `netns` (this thread enters it and returns).
fn open_tun(netns: &str, dev: &str) -> anyhow::Result<File> {
    let home = File::open("/proc/self/ns/net").context("/proc/self/ns/net")?;
    let target = File::open(format!("/run/netns/{netns}"))
        .with_context(|| format!("network namespace {netns} (create it with ip netns add)"))?;
    enter(&target).with_context(|| format!("entering {netns}"))?;
    let tun = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .context("/dev/net/tun");
    let attached = tun.and_then(|tun| {
        let mut req = IfReq {
            name: [0; 16],
            flags: IFF_TUN | IFF_NO_PI,
            _pad: [0; 22],
        };
        if dev.len() >= req.name.len() {
            bail!("device name {dev} is too long");
        }
        req.name[..dev.len()].copy_from_slice(dev.as_bytes());
        // SAFETY: TUNSETIFF reads an ifreq, which `req` is laid out as, and it outlives the call.
        if unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF, &mut req) } < 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("TUNSETIFF {dev} in {netns}"));
        }
        Ok(tun)
    });
    enter(&home).context("returning to the original namespace")?;
    attached
}

fn enter(ns: &File) -> std::io::Result<()> {
    // SAFETY: setns on a namespace file descriptor we hold open; it affects this thread only.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A packet waiting for its time.
struct Held {
    at: Instant,
    seq: u64,
    to: usize,
    bytes: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    /// Earliest first in a max-heap.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// When each transmitter is next free: the link in each direction, and every TCP connection
/// towards the client.
#[derive(Default)]
struct Shaper {
    down_free: Option<Instant>,
    up_free: Option<Instant>,
    flows: HashMap<[u8; 12], Instant>,
    seq: u64,
    rng: u64,
}

impl Shaper {
    /// xorshift: which packets get the extra delay; no need for a crate.
    fn chance(&mut self, p: f64) -> bool {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// Source, destination, and TCP ports of an IPv4 TCP packet: its connection.
fn flow_key(p: &[u8]) -> Option<[u8; 12]> {
    let ihl = usize::from(p.first()? & 0x0f) * 4;
    if p.len() < ihl + 4 || p[9] != 6 {
        return None;
    }
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&p[12..20]);
    key[8..].copy_from_slice(&p[ihl..ihl + 4]);
    Some(key)
}

struct Link {
    settings: Settings,
    shaper: Mutex<Shaper>,
    queue: Mutex<BinaryHeap<Held>>,
    wake: Condvar,
    forwarded: AtomicU64,
    dropped: AtomicU64,
}

impl Link {
    /// Schedules packet `p` read from side `from`, or drops it.
    fn admit(&self, from: usize, p: Vec<u8>) {
        if p.len() < 20 || p[0] >> 4 != 4 {
            return;
        }
        let dst = [p[16], p[17], p[18], p[19]];
        let Some(to) = self.settings.sides.iter().position(|s| s.ip == dst) else {
            return;
        };
        if to == from {
            return;
        }
        let s = &self.settings;
        let now = Instant::now();
        let wire = |bps: f64| Duration::from_secs_f64(p.len() as f64 * 8.0 / bps);
        let mut shaper = self.shaper.lock().expect("shaper lock");
        let down = s.sides[to].client;
        let mut depart = now;
        if down && let Some(key) = flow_key(&p) {
            let free = shaper.flows.get(&key).copied().unwrap_or(now).max(now);
            if free - now > s.queue {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            depart = free + wire(s.flow_bps);
            shaper.flows.insert(key, depart);
        }
        let link = if down {
            &mut shaper.down_free
        } else {
            &mut shaper.up_free
        };
        let link_free = link.unwrap_or(now).max(now);
        if link_free - now > s.queue {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let free = link_free.max(depart);
        let sent = free + wire(s.link_bps);
        *link = Some(sent);
        let mut at = sent + s.one_way;
        if shaper.chance(s.slow_share) {
            at += s.slow_extra;
        }
        shaper.seq += 1;
        let seq = shaper.seq;
        drop(shaper);
        let mut queue = self.queue.lock().expect("queue lock");
        let earliest = queue.peek().is_none_or(|h| at < h.at);
        queue.push(Held {
            at,
            seq,
            to,
            bytes: p,
        });
        if earliest {
            self.wake.notify_one();
        }
    }

    /// Hands every packet to its destination device when its time comes.
    fn deliver(&self, mut outputs: Vec<File>) {
        let mut queue = self.queue.lock().expect("queue lock");
        loop {
            let now = Instant::now();
            match queue.peek() {
                Some(h) if h.at <= now => {
                    let held = queue.pop().expect("peeked");
                    drop(queue);
                    // A full or vanished device loses the packet, as a wire would.
                    let _ = outputs[held.to].write(&held.bytes);
                    self.forwarded.fetch_add(1, Ordering::Relaxed);
                    queue = self.queue.lock().expect("queue lock");
                }
                Some(h) => {
                    let wait = h.at - now;
                    queue = self.wake.wait_timeout(queue, wait).expect("queue lock").0;
                }
                None => queue = self.wake.wait(queue).expect("queue lock"),
            }
        }
    }
}

fn run() -> anyhow::Result<()> {
    let settings = parse_args()?;
    let mut devices = Vec::new();
    for side in &settings.sides {
        devices.push(open_tun(&side.netns, &side.dev)?);
    }
    let outputs = devices
        .iter()
        .map(File::try_clone)
        .collect::<Result<Vec<_>, _>>()?;
    let link = Arc::new(Link {
        settings,
        shaper: Mutex::new(Shaper {
            rng: 0x9E37_79B9_7F4A_7C15,
            ..Shaper::default()
        }),
        queue: Mutex::new(BinaryHeap::new()),
        wake: Condvar::new(),
        forwarded: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
    });
    for (from, mut device) in devices.into_iter().enumerate() {
        let link = link.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            loop {
                match device.read(&mut buf) {
                    Ok(n) => link.admit(from, buf[..n].to_vec()),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        eprintln!("wan-link: reading device {from}: {e}");
                        std::process::exit(1);
                    }
                }
            }
        });
    }
    {
        let link = link.clone();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(10));
                eprintln!(
                    "wan-link: {} packets forwarded, {} dropped",
                    link.forwarded.load(Ordering::Relaxed),
                    link.dropped.load(Ordering::Relaxed)
                );
            }
        });
    }
    println!("ready");
    std::io::stdout().flush()?;
    link.deliver(outputs);
    Ok(())
}
