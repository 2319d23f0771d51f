//! Writing packets as a classic pcap file, as they were on the wire.
//!
//! [`PcapWriter`] turns a payload and its two socket addresses into an Ethernet frame carrying an
//! IPv4 (RFC 791) or IPv6 (RFC 8200) packet with a UDP (RFC 768) or TCP (RFC 9293) header, each
//! checksum correct, and appends it to the file as one record of the
//! [pcap format](https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html) (microsecond
//! timestamps, little-endian). It does no I/O of its own beyond the given writer and reads no
//! clock: the time of each packet is a parameter.
//!
//! Why Ethernet (`LINKTYPE_ETHERNET`, 1) and not the raw-IP link types 228/229: one file must hold
//! IPv4 and IPv6 packets alike, which only a link layer with an EtherType can say per packet; it
//! is what `tshark -i lo` writes on Linux too, so our captures and on-the-wire ones read the same;
//! and every pcap reader knows it. The MAC addresses are made up (locally administered, from the
//! IP address) so that each host keeps its own.
//!
//! A TCP byte stream is written as segments with consistent sequence and acknowledgement numbers,
//! opened by a synthesized three-way handshake the first time a connection is seen, so
//! Wireshark's reassembly and SIP dissector follow it.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

/// The pcap magic number for microsecond timestamps.
const MAGIC: u32 = 0xa1b2_c3d4;
/// The largest record kept whole; Wireshark's own default.
pub const SNAPLEN: u32 = 262_144;
/// `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u32 = 1;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const IPV4_LEN: usize = 20;
const UDP_LEN: usize = 8;
const TCP_LEN: usize = 20;
/// The largest TCP payload put in one synthesized segment; longer writes become several.
const TCP_SEGMENT: usize = 65_000;
/// Connections whose sequence numbers are tracked before the table starts over.
const MAX_TCP_FLOWS: usize = 65_536;
const TCP_SYN: u8 = 0x02;
const TCP_PSH_ACK: u8 = 0x18;
const TCP_ACK: u8 = 0x10;
const TCP_SYN_ACK: u8 = 0x12;

/// A packet could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// The two addresses are of different families (one IPv4, one IPv6).
    #[error("cannot write a packet from {src} to {dst}: the addresses must both be IPv4 or both IPv6")]
    MixedFamilies {
        /// The source address.
        src: SocketAddr,
        /// The destination address.
        dst: SocketAddr,
    },
    /// The payload does not fit in one IP packet.
    #[error("a UDP payload of {0} bytes does not fit in one IP packet (at most 65,507 bytes)")]
    TooLarge(usize),
    /// The underlying writer failed.
    #[error("cannot write the capture: {0}")]
    Io(#[from] io::Error),
}

/// Appends packets to a pcap stream. See the [module docs](self).
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    /// Next sequence number per direction of each TCP connection, keyed (source, destination).
    tcp: HashMap<(SocketAddr, SocketAddr), u32>,
    /// The IPv4 Identification field of the next packet.
    ip_id: u16,
    /// Reused for every record.
    frame: Vec<u8>,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header to `out`.
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut header = [0u8; 24];
        header[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        header[4..6].copy_from_slice(&2u16.to_le_bytes());
        header[6..8].copy_from_slice(&4u16.to_le_bytes());
        // 8..16: time zone offset and accuracy, both 0.
        header[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        header[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&header)?;
        Ok(PcapWriter { out, tcp: HashMap::new(), ip_id: 0, frame: Vec::with_capacity(2048) })
    }

    /// Appends one UDP datagram from `src` to `dst` sent or received at `time`. Returns the
    /// bytes added to the file.
    pub fn write_udp(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
        time: SystemTime,
    ) -> Result<usize, PcapError> {
        let (src, dst) = same_family(src, dst)?;
        if payload.len() > 65_535 - IPV4_LEN - UDP_LEN {
            return Err(PcapError::TooLarge(payload.len()));
        }
        self.start_frame(src.ip(), dst.ip(), PROTO_UDP, UDP_LEN + payload.len());
        let udp = self.frame.len();
        let len = (UDP_LEN + payload.len()) as u16;
        self.frame.extend_from_slice(&src.port().to_be_bytes());
        self.frame.extend_from_slice(&dst.port().to_be_bytes());
        self.frame.extend_from_slice(&len.to_be_bytes());
        self.frame.extend_from_slice(&[0, 0]);
        self.frame.extend_from_slice(payload);
        // RFC 768: a computed checksum of zero is sent as all ones (zero means "none").
        let sum = match transport_checksum(src.ip(), dst.ip(), PROTO_UDP, &self.frame[udp..]) {
            0 => 0xffff,
            sum => sum,
        };
        self.frame[udp + 6..udp + 8].copy_from_slice(&sum.to_be_bytes());
        self.finish_record(time)
    }

    /// Appends `payload` as the next bytes of the TCP stream from `src` to `dst` at `time`,
    /// preceded by a synthesized handshake when the connection is new. Returns the bytes added.
    pub fn write_tcp(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
        time: SystemTime,
    ) -> Result<usize, PcapError> {
        let (src, dst) = same_family(src, dst)?;
        let mut written = 0;
        if !self.tcp.contains_key(&(src, dst)) && !self.tcp.contains_key(&(dst, src)) {
            if self.tcp.len() >= MAX_TCP_FLOWS {
                self.tcp.clear();
            }
            let (isn_out, isn_back) = (initial_seq(src, dst), initial_seq(dst, src));
            written += self.segment(src, dst, isn_out, 0, TCP_SYN, &[], time)?;
            written += self.segment(dst, src, isn_back, isn_out.wrapping_add(1), TCP_SYN_ACK, &[], time)?;
            written += self.segment(src, dst, isn_out.wrapping_add(1), isn_back.wrapping_add(1), TCP_ACK, &[], time)?;
            self.tcp.insert((src, dst), isn_out.wrapping_add(1));
            self.tcp.insert((dst, src), isn_back.wrapping_add(1));
        }
        let back = *self.tcp.entry((dst, src)).or_insert_with(|| initial_seq(dst, src));
        let mut seq = *self.tcp.entry((src, dst)).or_insert_with(|| initial_seq(src, dst));
        for chunk in payload.chunks(TCP_SEGMENT) {
            written += self.segment(src, dst, seq, back, TCP_PSH_ACK, chunk, time)?;
            seq = seq.wrapping_add(chunk.len() as u32);
        }
        self.tcp.insert((src, dst), seq);
        Ok(written)
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Gives back the underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }

    #[allow(clippy::too_many_arguments)]
    fn segment(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
        time: SystemTime,
    ) -> Result<usize, PcapError> {
        self.start_frame(src.ip(), dst.ip(), PROTO_TCP, TCP_LEN + payload.len());
        let tcp = self.frame.len();
        self.frame.extend_from_slice(&src.port().to_be_bytes());
        self.frame.extend_from_slice(&dst.port().to_be_bytes());
        self.frame.extend_from_slice(&seq.to_be_bytes());
        self.frame.extend_from_slice(&ack.to_be_bytes());
        self.frame.extend_from_slice(&[(TCP_LEN as u8 / 4) << 4, flags]);
        self.frame.extend_from_slice(&u16::MAX.to_be_bytes()); // window
        self.frame.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
        self.frame.extend_from_slice(payload);
        let sum = transport_checksum(src.ip(), dst.ip(), PROTO_TCP, &self.frame[tcp..]);
        self.frame[tcp + 16..tcp + 18].copy_from_slice(&sum.to_be_bytes());
        self.finish_record(time)
    }

    /// Starts `self.frame` with the Ethernet and IP headers for a transport segment of `len`.
    fn start_frame(&mut self, src: IpAddr, dst: IpAddr, protocol: u8, len: usize) {
        self.frame.clear();
        self.frame.extend_from_slice(&mac(dst));
        self.frame.extend_from_slice(&mac(src));
        match (src, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                self.frame.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
                let start = self.frame.len();
                let total = (IPV4_LEN + len) as u16;
                self.frame.extend_from_slice(&[0x45, 0]);
                self.frame.extend_from_slice(&total.to_be_bytes());
                self.frame.extend_from_slice(&self.ip_id.to_be_bytes());
                self.frame.extend_from_slice(&[0x40, 0, 64, protocol, 0, 0]); // DF, TTL 64
                self.frame.extend_from_slice(&src.octets());
                self.frame.extend_from_slice(&dst.octets());
                let sum = !fold(sum_words(0, &self.frame[start..]));
                self.frame[start + 10..start + 12].copy_from_slice(&sum.to_be_bytes());
                self.ip_id = self.ip_id.wrapping_add(1);
            }
            (src, dst) => {
                self.frame.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
                self.frame.extend_from_slice(&[0x60, 0, 0, 0]);
                self.frame.extend_from_slice(&(len as u16).to_be_bytes());
                self.frame.extend_from_slice(&[protocol, 64]);
                self.frame.extend_from_slice(&ipv6_octets(src));
                self.frame.extend_from_slice(&ipv6_octets(dst));
            }
        }
    }

    /// Writes the record header and `self.frame`.
    fn finish_record(&mut self, time: SystemTime) -> Result<usize, PcapError> {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let len = self.frame.len() as u32;
        let mut header = [0u8; 16];
        header[0..4].copy_from_slice(&(since.as_secs() as u32).to_le_bytes());
        header[4..8].copy_from_slice(&since.subsec_micros().to_le_bytes());
        header[8..12].copy_from_slice(&len.min(SNAPLEN).to_le_bytes());
        header[12..16].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&header)?;
        self.out.write_all(&self.frame[..self.frame.len().min(SNAPLEN as usize)])?;
        Ok(header.len() + self.frame.len().min(SNAPLEN as usize))
    }
}

/// Both addresses as the same family, IPv4-mapped IPv6 addresses taken as IPv4.
fn same_family(src: SocketAddr, dst: SocketAddr) -> Result<(SocketAddr, SocketAddr), PcapError> {
    let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let (s, d) = (canonical(src), canonical(dst));
    if s.is_ipv4() == d.is_ipv4() { Ok((s, d)) } else { Err(PcapError::MixedFamilies { src, dst }) }
}

fn ipv6_octets(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V6(ip) => ip.octets(),
        IpAddr::V4(ip) => ip.to_ipv6_mapped().octets(),
    }
}

/// A locally administered unicast MAC address made from the IP address's last four bytes.
fn mac(ip: IpAddr) -> [u8; 6] {
    let tail = match ip {
        IpAddr::V4(ip) => ip.octets(),
        IpAddr::V6(ip) => {
            let o = ip.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    [0x02, 0x00, tail[0], tail[1], tail[2], tail[3]]
}

/// A fixed initial sequence number per direction, so captures are reproducible.
fn initial_seq(src: SocketAddr, dst: SocketAddr) -> u32 {
    let mut h: u32 = 0x811c_9dc5; // FNV-1a
    for b in ipv6_octets(src.ip()).into_iter().chain(src.port().to_be_bytes()).chain(ipv6_octets(dst.ip())) {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h
}

/// The UDP or TCP checksum over the pseudo-header (RFC 768; RFC 8200 §8.1) and `segment`.
fn transport_checksum(src: IpAddr, dst: IpAddr, protocol: u8, segment: &[u8]) -> u16 {
    let len = segment.len() as u32;
    let mut sum = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let sum = sum_words(0, &s.octets());
            sum_words(sum, &d.octets()) + u64::from(protocol) + u64::from(len)
        }
        (s, d) => {
            let sum = sum_words(0, &ipv6_octets(s));
            sum_words(sum, &ipv6_octets(d)) + u64::from(protocol) + u64::from(len)
        }
    };
    sum = sum_words(sum, segment);
    !fold(sum)
}

/// Adds `data` to `sum` as big-endian 16-bit words, an odd last byte padded with zero (RFC 1071).
fn sum_words(mut sum: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

/// Folds a sum into 16 bits with end-around carry.
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, micros: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros)
    }

    fn hex(s: &str) -> Vec<u8> {
        let digits: String = s.split_whitespace().collect();
        (0..digits.len()).step_by(2).map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn file_header_is_the_classic_microsecond_little_endian_ethernet_header() {
        let writer = PcapWriter::new(Vec::new()).unwrap();
        assert_eq!(writer.into_inner(), hex("d4c3b2a1 0200 0400 00000000 00000000 00000400 01000000"));
    }

    /// The expected bytes, checksums included, were worked out apart from this code (RFC 1071
    /// arithmetic in a separate script) and agree with what Wireshark validates.
    #[test]
    fn udp_over_ipv4_record_matches_known_good_bytes() {
        let mut writer = PcapWriter::new(Vec::new()).unwrap();
        let src = "127.0.0.1:5060".parse().unwrap();
        let dst = "127.0.0.2:5070".parse().unwrap();
        let written = writer.write_udp(src, dst, b"hello", at(1_700_000_000, 123_456)).unwrap();
        let file = writer.into_inner();
        let expected = hex(concat!(
            "00f15365 40e20100 2f000000 2f000000", // record: ts 1700000000.123456, 47 bytes
            "02007f000002 02007f000001 0800",      // Ethernet
            "4500 0021 0000 4000 4011 3cc9 7f000001 7f000002", // IPv4, checksum 0x3cc9
            "13c4 13ce 000d 966c",                 // UDP, checksum 0x966c
            "68656c6c6f",
        ));
        assert_eq!(&file[24..], &expected[..]);
        assert_eq!(written, expected.len());
    }

    #[test]
    fn udp_over_ipv6_record_has_a_correct_checksum_and_no_ipv4_header() {
        let mut writer = PcapWriter::new(Vec::new()).unwrap();
        let (src, dst) = ("[::1]:5060".parse().unwrap(), "[::1]:40000".parse().unwrap());
        writer.write_udp(src, dst, b"OPTIONS", at(1, 0)).unwrap();
        let file = writer.into_inner();
        let frame = &file[24 + 16..];
        assert_eq!(&frame[12..14], &[0x86, 0xdd]);
        assert_eq!(frame[14] >> 4, 6);
        assert_eq!(u16::from_be_bytes([frame[18], frame[19]]), 15, "payload length: UDP header + 7");
        let udp = &frame[14 + 40..];
        // A correct checksum sums, pseudo-header included, to all ones.
        let pseudo = sum_words(sum_words(0, &ipv6_octets(src.ip())), &ipv6_octets(dst.ip())) + 17 + 15;
        assert_eq!(fold(sum_words(pseudo, udp)), 0xffff);
    }

    #[test]
    fn ipv4_mapped_addresses_are_written_as_ipv4_and_mixed_families_are_refused() {
        let mut writer = PcapWriter::new(Vec::new()).unwrap();
        let mapped = "[::ffff:127.0.0.1]:5060".parse().unwrap();
        writer.write_udp(mapped, "127.0.0.1:1".parse().unwrap(), b"x", at(1, 0)).unwrap();
        assert_eq!(&writer.get_ref()[24 + 16 + 12..24 + 16 + 14], &[0x08, 0x00]);
        let err = writer.write_udp("[::1]:5060".parse().unwrap(), "127.0.0.1:1".parse().unwrap(), b"x", at(1, 0));
        assert!(matches!(err, Err(PcapError::MixedFamilies { .. })));
    }

    #[test]
    fn oversized_udp_payload_is_refused_and_nothing_is_written() {
        let mut writer = PcapWriter::new(Vec::new()).unwrap();
        let big = vec![0u8; 65_508];
        let err = writer.write_udp("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap(), &big, at(1, 0));
        assert!(matches!(err, Err(PcapError::TooLarge(65_508))));
        assert_eq!(writer.into_inner().len(), 24);
    }

    /// Every record of a file: (timestamp seconds, frame bytes).
    fn records(file: &[u8]) -> Vec<(u32, &[u8])> {
        let mut out = Vec::new();
        let mut rest = &file[24..];
        while rest.len() >= 16 {
            let incl = u32::from_le_bytes(rest[8..12].try_into().unwrap()) as usize;
            out.push((u32::from_le_bytes(rest[0..4].try_into().unwrap()), &rest[16..16 + incl]));
            rest = &rest[16 + incl..];
        }
        out
    }

    fn tcp_fields(frame: &[u8]) -> (u32, u32, u8, usize) {
        let tcp = &frame[14 + 20..];
        let seq = u32::from_be_bytes(tcp[4..8].try_into().unwrap());
        let ack = u32::from_be_bytes(tcp[8..12].try_into().unwrap());
        (seq, ack, tcp[13], tcp.len() - 20)
    }

    #[test]
    fn tcp_stream_opens_with_a_handshake_and_keeps_sequence_and_ack_numbers_consistent() {
        let mut writer = PcapWriter::new(Vec::new()).unwrap();
        let (client, server) = ("127.0.0.1:40000".parse().unwrap(), "127.0.0.1:5060".parse().unwrap());
        writer.write_tcp(client, server, b"INVITE", at(1, 0)).unwrap();
        writer.write_tcp(server, client, b"SIP/2.0 100", at(2, 0)).unwrap();
        writer.write_tcp(client, server, b"ACK", at(3, 0)).unwrap();
        let file = writer.into_inner();
        let recs = records(&file);
        let fields: Vec<_> = recs.iter().map(|(_, f)| tcp_fields(f)).collect();
        assert_eq!(fields.len(), 6, "SYN, SYN-ACK, ACK, then three data segments");
        let (c, s) = (fields[0].0, fields[1].0);
        assert_eq!(fields[0], (c, 0, TCP_SYN, 0));
        assert_eq!(fields[1], (s, c + 1, TCP_SYN_ACK, 0));
        assert_eq!(fields[2], (c + 1, s + 1, TCP_ACK, 0));
        assert_eq!(fields[3], (c + 1, s + 1, TCP_PSH_ACK, 6));
        assert_eq!(fields[4], (s + 1, c + 7, TCP_PSH_ACK, 11));
        assert_eq!(fields[5], (c + 7, s + 12, TCP_PSH_ACK, 3));
        for (_, frame) in &recs {
            let ip = &frame[14..34];
            assert_eq!(fold(sum_words(0, ip)), 0xffff, "IPv4 header checksum");
            let tcp = &frame[34..];
            let pseudo = sum_words(sum_words(0, &ip[12..16]), &ip[16..20]) + 6 + tcp.len() as u64;
            assert_eq!(fold(sum_words(pseudo, tcp)), 0xffff, "TCP checksum");
        }
    }

    #[test]
    fn long_tcp_writes_are_cut_into_segments_that_fit_an_ip_packet() {
        let mut writer = PcapWriter::new(Vec::new()).unwrap();
        let (a, b) = ("10.0.0.1:1".parse().unwrap(), "10.0.0.2:2".parse().unwrap());
        writer.write_tcp(a, b, &vec![b'x'; 100_000], at(1, 0)).unwrap();
        let file = writer.into_inner();
        let data: Vec<_> = records(&file).iter().skip(3).map(|(_, f)| tcp_fields(f)).collect();
        assert_eq!(data.iter().map(|d| d.3).collect::<Vec<_>>(), vec![65_000, 35_000]);
        assert_eq!(data[1].0, data[0].0.wrapping_add(65_000));
    }
}
