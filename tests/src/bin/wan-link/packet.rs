//! What a packet read from a TUN device with segmentation offload is on the wire. Such a read is
//! a virtio-net header and then an IPv4 packet, which may be a TCP superpacket: the headers of
//! one segment followed by the payload of several, cut into `gso_size` pieces by whoever sends
//! it on. A real link carries each of those segments with its own IP and TCP headers, so the
//! link counts them here, one by one ([`Segments`]).
//!
//! Tail drop. A router whose queue is full drops the segments of a burst that arrive after it
//! filled, not the burst as a whole: the segments of a superpacket that fit in the queue go on,
//! the rest are cut off ([`keep_first`]), and the sender sees the loss of the burst's tail, as
//! it would from a real router.

/// `struct virtio_net_hdr` (without `num_buffers`): flags, gso_type, hdr_len, gso_size,
/// csum_start, csum_offset; little-endian on the machines this runs on.
pub const VNET_HDR: usize = 10;
const F_NEEDS_CSUM: u8 = 1;
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_ECN: u8 = 0x80;
const TCP: u8 = 6;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;

/// The segments a packet stands for on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segments {
    pub count: u32,
    /// IP and TCP headers, repeated in every segment.
    header: u32,
    /// The IP packet as read (one set of headers and all the payload).
    total: u32,
    /// A full segment's payload.
    size: u32,
}

fn le16(b: &[u8], at: usize) -> u32 {
    u32::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

impl Segments {
    /// The segments of `p` (virtio-net header, then the packet); None when it is not IPv4.
    pub fn of(p: &[u8]) -> Option<Segments> {
        let ip = p.get(VNET_HDR..)?;
        if ip.len() < 20 || ip[0] >> 4 != 4 {
            return None;
        }
        let total = ip.len() as u32;
        let single = Segments {
            count: 1,
            header: total,
            total,
            size: 0,
        };
        let ihl = u32::from(ip[0] & 0x0f) * 4;
        let gso_size = le16(p, 4);
        if p[1] & !GSO_ECN != GSO_TCPV4 || ip[9] != TCP || gso_size == 0 {
            return Some(single);
        }
        let Some(&offset) = ip.get(ihl as usize + 12) else {
            return Some(single);
        };
        let header = ihl + u32::from(offset >> 4) * 4;
        let payload = total.saturating_sub(header);
        Some(Segments {
            count: payload.div_ceil(gso_size).max(1),
            header,
            total,
            size: gso_size,
        })
    }

    /// Bytes on the wire: every segment with its headers.
    pub fn wire_bytes(&self) -> u64 {
        u64::from(self.total) + u64::from(self.count - 1) * u64::from(self.header)
    }

    /// How many of the segments a queue drained at `bps` takes when `backlog` already waits in
    /// it and it holds at most `limit`: a segment is taken while the queue has not passed its
    /// limit when it arrives, as a router takes a packet.
    pub fn fitting(
        &self,
        backlog: std::time::Duration,
        limit: std::time::Duration,
        bps: f64,
    ) -> u32 {
        if backlog > limit {
            return 0;
        }
        let room = (limit - backlog).as_secs_f64() * bps / 8.0;
        let segment = f64::from(self.header + self.size.max(1));
        let fit = (room / segment).floor() as u64 + 1;
        fit.min(u64::from(self.count)) as u32
    }
}

/// Cuts superpacket `p` (virtio-net header first) of `segments` down to its first `keep`
/// segments, 1 <= keep < count: the IP length and header checksum, the TCP pseudo-header sum
/// that the receiver completes (the packet's checksum is left to it), and the flags only the
/// last segment carries (FIN, PSH), which went with the tail.
pub fn keep_first(p: &mut Vec<u8>, segments: &Segments, keep: u32) -> Segments {
    debug_assert!(keep >= 1 && keep < segments.count);
    let ip_start = VNET_HDR;
    let ihl = usize::from(p[ip_start] & 0x0f) * 4;
    let len = segments.header + keep * segments.size;
    p.truncate(ip_start + len as usize);
    {
        let ip = &mut p[ip_start..];
        ip[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        ip[10..12].copy_from_slice(&[0, 0]);
        let sum = !fold(sum16(&ip[..ihl]));
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        ip[ihl + 13] &= !(TCP_FIN | TCP_PSH);
        let tcp_len = len - ihl as u32;
        let pseudo = sum16(&ip[12..20]) + u32::from(TCP) + tcp_len;
        ip[ihl + 16..ihl + 18].copy_from_slice(&fold(pseudo).to_be_bytes());
    }
    // The receiver completes the TCP checksum from the pseudo-header sum written above.
    p[0] |= F_NEEDS_CSUM;
    p[2..4].copy_from_slice(&(segments.header as u16).to_le_bytes());
    p[6..8].copy_from_slice(&(ihl as u16).to_le_bytes());
    p[8..10].copy_from_slice(&16u16.to_le_bytes());
    if keep == 1 {
        p[1] = GSO_NONE;
        p[4..6].copy_from_slice(&[0, 0]);
    }
    Segments {
        count: keep,
        total: len,
        ..*segments
    }
}

/// Source, destination, and TCP ports of an IPv4 TCP packet: its connection.
pub fn flow_key(ip: &[u8]) -> Option<[u8; 12]> {
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    if ip.len() < ihl + 4 || ip[9] != TCP {
        return None;
    }
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&ip[12..20]);
    key[8..].copy_from_slice(&ip[ihl..ihl + 4]);
    Some(key)
}

/// The 16-bit big-endian words of `b` added up (the Internet checksum before folding).
fn sum16(b: &[u8]) -> u32 {
    b.chunks(2)
        .map(|w| u32::from(w[0]) << 8 | u32::from(*w.get(1).unwrap_or(&0)))
        .sum()
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn be16(b: &[u8], at: usize) -> u32 {
        u32::from(u16::from_be_bytes([b[at], b[at + 1]]))
    }

    /// A TCP superpacket: 20-byte IP header, 32-byte TCP header, `payload` bytes cut into
    /// 1448-byte segments, FIN and PSH set.
    fn superpacket(payload: usize) -> Vec<u8> {
        let mut p = vec![0u8; VNET_HDR];
        p[0] = F_NEEDS_CSUM;
        p[1] = GSO_TCPV4;
        p[4..6].copy_from_slice(&1448u16.to_le_bytes());
        let len = 52 + payload;
        let mut ip = vec![0u8; len];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        ip[9] = TCP;
        ip[12..16].copy_from_slice(&[10, 88, 1, 2]);
        ip[16..20].copy_from_slice(&[10, 88, 0, 2]);
        ip[32] = 8 << 4;
        ip[33] = TCP_FIN | TCP_PSH | 0x10;
        p.extend_from_slice(&ip);
        p
    }

    #[test]
    fn a_superpacket_counts_every_segment_with_its_headers() {
        let p = superpacket(1448 * 10 + 100);
        let s = Segments::of(&p).unwrap();
        assert_eq!(s.count, 11);
        assert_eq!(s.wire_bytes(), (1448 * 10 + 100 + 11 * 52) as u64);
        let mut plain = p.clone();
        plain[1] = GSO_NONE;
        assert_eq!(Segments::of(&plain).unwrap().count, 1);
        assert!(
            Segments::of(&p[..VNET_HDR + 10]).is_none(),
            "too short for IPv4"
        );
    }

    #[test]
    fn a_full_queue_takes_the_head_of_a_burst() {
        let s = Segments::of(&superpacket(1448 * 10)).unwrap();
        // 1 ms of room at 12 Mbit/s: 1500 bytes, one segment and the one that arrives as the
        // queue reaches its limit.
        let limit = Duration::from_millis(5);
        assert_eq!(s.fitting(Duration::from_millis(4), limit, 12e6), 2);
        assert_eq!(s.fitting(Duration::from_millis(6), limit, 12e6), 0);
        // An empty queue of 5 ms holds five segments, and takes a sixth as it fills.
        assert_eq!(s.fitting(Duration::ZERO, limit, 12e6), 6);
        assert_eq!(
            s.fitting(Duration::ZERO, 4 * limit, 12e6),
            10,
            "room for all"
        );
    }

    #[test]
    fn cutting_keeps_valid_headers() {
        let mut p = superpacket(1448 * 10);
        let s = Segments::of(&p).unwrap();
        let kept = keep_first(&mut p, &s, 3);
        assert_eq!(kept.count, 3);
        assert_eq!(p.len(), VNET_HDR + 52 + 3 * 1448);
        assert_eq!(Segments::of(&p).unwrap(), kept);
        let ip = &p[VNET_HDR..];
        assert_eq!(be16(ip, 2) as usize, ip.len());
        assert_eq!(
            fold(sum16(&ip[..20])),
            0xffff,
            "IP header checksum verifies"
        );
        assert_eq!(
            ip[33] & (TCP_FIN | TCP_PSH),
            0,
            "FIN and PSH went with the tail"
        );
        let pseudo = sum16(&ip[12..20]) + 6 + (ip.len() as u32 - 20);
        assert_eq!(be16(ip, 36) as u16, fold(pseudo));
        let one = keep_first(&mut p, &kept, 1);
        assert_eq!(one.count, 1);
        assert_eq!(p[1], GSO_NONE);
    }
}
