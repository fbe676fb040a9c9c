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
//!          [--slow-extra-ms 10] [--queue-ms RTT] [--stats-ms 10000]
//! ```
//!
//! To carry a fast link on a small machine it moves TCP segments in batches: the devices offer
//! segmentation offload, so a sender's kernel hands over a run of up to 64 KiB of segments of
//! one connection at once (a superpacket) and the receiving kernel takes it whole, as it would
//! after a NIC's receive offload. Every rate, queue and counter still counts each segment with
//! its own headers (see `packet.rs`). Each direction is one thread with no locks: it reads what
//! its devices have, shapes it, and writes what is due, sleeping in `ppoll` in between.
//!
//! The devices exist while the process runs (the script configures their addresses); every
//! `--stats-ms` it prints what it forwarded and dropped to stderr.

mod packet;

use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};

use packet::{Segments, VNET_HDR};

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
    stats: Duration,
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
    let (mut slow_share, mut slow_extra, mut queue, mut stats) = (0.01, 10.0, None, 10_000.0);
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
            "--stats-ms" => stats = number()?.max(10.0),
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
        stats: ms(stats),
    })
}

/// Opens TUN device `dev` inside network namespace `netns` (this thread enters it and returns),
/// non-blocking, with segmentation offload: reads and writes carry a virtio-net header.
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
        let flags = libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_VNET_HDR;
        let mut req = IfReq {
            name: [0; 16],
            flags: flags as libc::c_short,
            _pad: [0; 22],
        };
        if dev.len() >= req.name.len() {
            bail!("device name {dev} is too long");
        }
        req.name[..dev.len()].copy_from_slice(dev.as_bytes());
        let fd = tun.as_raw_fd();
        // SAFETY: TUNSETIFF reads an ifreq, which `req` is laid out as, and it outlives the call.
        if unsafe { libc::ioctl(fd, libc::TUNSETIFF, &mut req) } < 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("TUNSETIFF {dev} in {netns}"));
        }
        // Checksums left to the receiver and TCP segmentation offload: what lets the senders'
        // kernels hand over superpackets (needs a kernel with IFF_VNET_HDR, 2.6.27 on).
        let offload = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
        // SAFETY: TUNSETOFFLOAD and F_SETFL take their argument by value.
        if unsafe { libc::ioctl(fd, libc::TUNSETOFFLOAD, libc::c_ulong::from(offload)) } < 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("TUNSETOFFLOAD {dev} in {netns}"));
        }
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) } < 0 {
            return Err(std::io::Error::last_os_error()).context("O_NONBLOCK on the TUN device");
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

/// A packet waiting for its time: in a flow's shaper for its departure, then on the way for
/// its delivery.
struct Held {
    at: Instant,
    seq: u64,
    to: usize,
    segments: Segments,
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

/// What one direction forwarded and dropped, for the stats line.
#[derive(Default)]
struct Counters {
    packets: AtomicU64,
    segments: AtomicU64,
    wire_bytes: AtomicU64,
    /// Segments dropped by a connection's shaper, by the link's queue, and by a failed write.
    shaper_drops: AtomicU64,
    link_drops: AtomicU64,
    write_drops: AtomicU64,
}

/// One direction of the link: towards the client (from every server, shaped per connection
/// too) or from it. It owns its queues and transmitters, so the two directions share nothing.
struct Direction {
    /// (side, device) pairs this direction reads.
    inputs: Vec<(usize, File)>,
    /// Device of each side, where this direction writes (None: not its destination).
    outputs: Vec<Option<File>>,
    /// Destination address of each side, and whether this direction delivers there.
    ips: Vec<([u8; 4], bool)>,
    shaped: bool,
    one_way: Duration,
    link_bps: f64,
    flow_bps: f64,
    queue: Duration,
    slow_share: f64,
    slow_extra: Duration,
    /// When the link's transmitter is next free.
    link_free: Option<Instant>,
    /// When each TCP connection's shaper is next free (towards the client only).
    flows: HashMap<[u8; 12], Instant>,
    /// Packets in their connection's shaper, by the time their last segment leaves it.
    shaping: BinaryHeap<Held>,
    /// Packets past the link, by the time they arrive.
    on_the_way: BinaryHeap<Held>,
    /// Buffers of delivered packets, reused for the next ones read (small and large).
    spare: [Vec<Vec<u8>>; 2],
    seq: u64,
    rng: u64,
    counters: Arc<Counters>,
}

/// Packets read from one device before the others get their turn and due packets are written.
const READ_BATCH: usize = 64;

/// Buffers held for reuse, per size class: more than a busy link keeps in flight is memory
/// never used again.
const SPARE_MAX: usize = 4096;

/// Packets up to this size (with the virtio-net header) take a small buffer.
const SMALL: usize = 2048;

impl Direction {
    fn run(mut self) -> anyhow::Result<()> {
        let mut scratch = vec![0u8; VNET_HDR + 65536];
        loop {
            let now = Instant::now();
            for i in 0..self.inputs.len() {
                for _ in 0..READ_BATCH {
                    let fd = self.inputs[i].1.as_raw_fd();
                    // SAFETY: reads into `scratch`, which is valid for its length.
                    let n = unsafe { libc::read(fd, scratch.as_mut_ptr().cast(), scratch.len()) };
                    if n < 0 {
                        let e = std::io::Error::last_os_error();
                        match e.kind() {
                            std::io::ErrorKind::WouldBlock => break,
                            std::io::ErrorKind::Interrupted => continue,
                            _ => {
                                return Err(e).with_context(|| {
                                    format!("reading the device of side {}", self.inputs[i].0)
                                });
                            }
                        }
                    }
                    self.admit(now, &scratch[..n as usize]);
                }
            }
            self.depart(now);
            self.deliver(Instant::now());
            self.sleep()?;
        }
    }

    /// Takes packet `p` (virtio-net header first) read at `now` into its connection's shaper,
    /// or straight towards the link; drops what does not fit.
    fn admit(&mut self, now: Instant, p: &[u8]) {
        let Some(mut segments) = Segments::of(p) else {
            return;
        };
        let ip = &p[VNET_HDR..];
        let dst = [ip[16], ip[17], ip[18], ip[19]];
        let Some(to) = self.ips.iter().position(|&(a, ours)| ours && a == dst) else {
            return;
        };
        let mut bytes = self.buffer(p.len());
        bytes.extend_from_slice(p);
        let mut at = now;
        if self.shaped
            && let Some(key) = packet::flow_key(ip)
        {
            let free = self.flows.get(&key).copied().unwrap_or(now).max(now);
            let keep = segments.fitting(free - now, self.queue, self.flow_bps);
            if !self.trim(&mut bytes, &mut segments, keep, |c| &c.shaper_drops) {
                return;
            }
            at = free + wire_time(segments.wire_bytes(), self.flow_bps);
            self.flows.insert(key, at);
        }
        self.seq += 1;
        self.shaping.push(Held {
            at,
            seq: self.seq,
            to,
            segments,
            bytes,
        });
    }

    /// Keeps the first `keep` segments of a packet; false (and the buffer recycled) when
    /// none is kept. What is cut is counted in `drops`.
    fn trim(
        &mut self,
        bytes: &mut Vec<u8>,
        segments: &mut Segments,
        keep: u32,
        drops: fn(&Counters) -> &AtomicU64,
    ) -> bool {
        let lost = segments.count - keep.min(segments.count);
        if lost > 0 {
            drops(&self.counters).fetch_add(u64::from(lost), Ordering::Relaxed);
        }
        if keep == 0 {
            self.recycle(std::mem::take(bytes));
            return false;
        }
        if lost > 0 {
            *segments = packet::keep_first(bytes, segments, keep);
        }
        true
    }

    /// Moves the packets whose last segment has left its connection's shaper by `now` onto the
    /// link, in the order they left: the link serves them first come, first served, and a
    /// packet that would wait longer than the queue allows loses the segments that do not fit.
    fn depart(&mut self, now: Instant) {
        while self.shaping.peek().is_some_and(|h| h.at <= now) {
            let mut held = self.shaping.pop().expect("peeked");
            let left = held.at;
            let free = self.link_free.unwrap_or(left).max(left);
            let keep = held
                .segments
                .fitting(free - left, self.queue, self.link_bps);
            let (mut bytes, mut segments) = (std::mem::take(&mut held.bytes), held.segments);
            if !self.trim(&mut bytes, &mut segments, keep, |c| &c.link_drops) {
                continue;
            }
            let sent = free + wire_time(segments.wire_bytes(), self.link_bps);
            self.link_free = Some(sent);
            let mut at = sent + self.one_way;
            if self.chance() {
                at += self.slow_extra;
            }
            self.on_the_way.push(Held {
                at,
                segments,
                bytes,
                ..held
            });
        }
    }

    /// Writes every packet whose time has come to its destination device.
    fn deliver(&mut self, now: Instant) {
        while self.on_the_way.peek().is_some_and(|h| h.at <= now) {
            let held = self.on_the_way.pop().expect("peeked");
            let out = self.outputs[held.to]
                .as_ref()
                .expect("only this direction's destinations are queued");
            // A full or vanished device loses the packet, as a wire would.
            // SAFETY: writes from `held.bytes`, valid for its length.
            let written = unsafe {
                libc::write(
                    out.as_raw_fd(),
                    held.bytes.as_ptr().cast(),
                    held.bytes.len(),
                )
            };
            if written >= 0 {
                let c = &self.counters;
                c.packets.fetch_add(1, Ordering::Relaxed);
                c.segments
                    .fetch_add(u64::from(held.segments.count), Ordering::Relaxed);
                c.wire_bytes
                    .fetch_add(held.segments.wire_bytes(), Ordering::Relaxed);
            } else {
                let c = &self.counters.write_drops;
                c.fetch_add(u64::from(held.segments.count), Ordering::Relaxed);
            }
            self.recycle(held.bytes);
        }
    }

    /// Waits for a device to have packets or for the next packet's time. A packet in a shaper
    /// needs no wake-up of its own when it leaves: its place on the link is worked out from the
    /// time it left, so it only has to be done before it can arrive, half a one-way delay on.
    fn sleep(&mut self) -> anyhow::Result<()> {
        let due = self.on_the_way.peek().map(|h| h.at);
        let leaves = self.shaping.peek().map(|h| h.at + self.one_way / 2);
        let next = match (due, leaves) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut fds: Vec<libc::pollfd> = self
            .inputs
            .iter()
            .map(|(_, f)| libc::pollfd {
                fd: f.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let timeout = next.map(|at| {
            let wait = at.saturating_duration_since(Instant::now());
            libc::timespec {
                tv_sec: wait.as_secs() as libc::time_t,
                tv_nsec: libc::c_long::from(wait.subsec_nanos()),
            }
        });
        let timeout_ptr = timeout
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `fds` and the timeout live across the call; no signal mask is changed.
        let n = unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                timeout_ptr,
                std::ptr::null(),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e).context("ppoll on the TUN devices");
            }
        }
        Ok(())
    }

    fn buffer(&mut self, len: usize) -> Vec<u8> {
        let class = usize::from(len > SMALL);
        let mut b = self.spare[class].pop().unwrap_or_else(|| {
            Vec::with_capacity(if class == 0 { SMALL } else { VNET_HDR + 65536 })
        });
        b.clear();
        b
    }

    fn recycle(&mut self, b: Vec<u8>) {
        let class = usize::from(b.capacity() > SMALL);
        if self.spare[class].len() < SPARE_MAX {
            self.spare[class].push(b);
        }
    }

    /// xorshift: which packets get the extra delay; no need for a crate.
    fn chance(&mut self) -> bool {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64 <= self.slow_share
    }
}

fn wire_time(bytes: u64, bps: f64) -> Duration {
    Duration::from_secs_f64(bytes as f64 * 8.0 / bps)
}

fn run() -> anyhow::Result<()> {
    let settings = parse_args()?;
    let mut devices = Vec::new();
    for side in &settings.sides {
        devices.push(open_tun(&side.netns, &side.dev)?);
    }
    let ips: Vec<([u8; 4], bool)> = settings.sides.iter().map(|s| (s.ip, s.client)).collect();
    let (down_counters, up_counters) =
        (Arc::new(Counters::default()), Arc::new(Counters::default()));
    let mut directions = Vec::new();
    for toward_client in [true, false] {
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        for (i, (side, device)) in settings.sides.iter().zip(&devices).enumerate() {
            if side.client == toward_client {
                outputs.push(Some(device.try_clone()?));
            } else {
                outputs.push(None);
                inputs.push((i, device.try_clone()?));
            }
        }
        directions.push(Direction {
            inputs,
            outputs,
            ips: ips
                .iter()
                .map(|&(ip, client)| (ip, client == toward_client))
                .collect(),
            shaped: toward_client,
            one_way: settings.one_way,
            link_bps: settings.link_bps,
            flow_bps: settings.flow_bps,
            queue: settings.queue,
            slow_share: settings.slow_share,
            slow_extra: settings.slow_extra,
            link_free: None,
            flows: HashMap::new(),
            shaping: BinaryHeap::new(),
            on_the_way: BinaryHeap::new(),
            spare: [Vec::new(), Vec::new()],
            seq: 0,
            rng: if toward_client {
                0x9E37_79B9_7F4A_7C15
            } else {
                0xD1B5_4A32_D192_ED03
            },
            counters: if toward_client {
                down_counters.clone()
            } else {
                up_counters.clone()
            },
        });
    }
    drop(devices);
    let mut threads = Vec::new();
    for direction in directions {
        threads.push(std::thread::spawn(move || direction.run()));
    }
    println!("ready");
    std::io::stdout().flush()?;
    loop {
        std::thread::sleep(settings.stats);
        if let Some(done) = threads.iter().position(|t| t.is_finished()) {
            return threads
                .swap_remove(done)
                .join()
                .expect("a direction does not panic");
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let line = |c: &Counters| {
            let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
            format!(
                "{} {} {} {} {} {}",
                n(&c.packets),
                n(&c.segments),
                n(&c.wire_bytes),
                n(&c.shaper_drops),
                n(&c.link_drops),
                n(&c.write_drops)
            )
        };
        // Machine-read by scripts/bench-wan: time, then packets, segments, bytes on the wire
        // and segments dropped (by the shapers, the link's queue, failed writes), towards the
        // client and from it.
        eprintln!(
            "wan-link: stats {now:.3} down {} up {}",
            line(&down_counters),
            line(&up_counters)
        );
    }
}
