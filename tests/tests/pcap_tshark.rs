//! `proto::io::PcapWriter` read back by Wireshark: SIP over UDP (IPv4 and IPv6) and over TCP
//! (split across segments, so reassembly must work) dissect with every checksum good.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use proto::io::PcapWriter;
use voip_tests::tshark::{Checksums, analyze, tshark};
use voip_tests::{Peer, peers_ready, temp_dir};

const INVITE: &[u8] = b"INVITE sip:1002@voip.test SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-1;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:1001@voip.test>;tag=a1\r\n\
To: <sip:1002@voip.test>\r\n\
Call-ID: pcap-test@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:1001@127.0.0.1:5062>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 122\r\n\
\r\n\
v=0\r\n\
o=- 1 1 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 40000 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=sendrecv\r\n";

const TRYING: &[u8] = b"SIP/2.0 100 Trying\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-1;rport=5062\r\n\
From: <sip:1001@voip.test>;tag=a1\r\n\
To: <sip:1002@voip.test>\r\n\
Call-ID: pcap-test@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n";

/// `tshark -V` of the file, with checksum validation on.
fn verbose(path: &Path) -> String {
    let out = Command::new(tshark().unwrap())
        .args(["-n", "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE"])
        .arg("-r")
        .arg(path)
        .arg("-V")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write(path: &Path, packets: impl FnOnce(&mut PcapWriter<std::fs::File>)) {
    let mut writer = PcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    packets(&mut writer);
    writer.flush().unwrap();
}

fn at(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(ms)
}

#[test]
fn sip_over_udp_written_by_pcap_writer_is_dissected_with_good_checksums() {
    if !peers_ready(&[Peer::Tshark]) {
        return;
    }
    let dir = temp_dir("pcap-udp-").unwrap();
    let path = dir.path().join("udp.pcap");
    let (phone, server): (SocketAddr, SocketAddr) =
        ("127.0.0.1:5062".parse().unwrap(), "127.0.0.1:5060".parse().unwrap());
    let (phone6, server6): (SocketAddr, SocketAddr) = ("[::1]:5062".parse().unwrap(), "[::1]:5060".parse().unwrap());
    write(&path, |w| {
        w.write_udp(phone, server, INVITE, at(0)).unwrap();
        w.write_udp(server, phone, TRYING, at(5)).unwrap();
        w.write_udp(phone6, server6, INVITE, at(10)).unwrap();
    });
    let text = verbose(&path);
    assert!(text.contains("Session Initiation Protocol (INVITE)"), "{text}");
    assert!(text.contains("Request-Line: INVITE sip:1002@voip.test SIP/2.0"), "{text}");
    assert!(text.contains("Status-Line: SIP/2.0 100 Trying"), "{text}");
    assert!(text.contains("Media Description, name and address (m): audio 40000 RTP/AVP 0"), "{text}");
    assert!(text.contains("Internet Protocol Version 6, Src: ::1, Dst: ::1"), "{text}");
    assert!(text.contains("Src: 127.0.0.1, Dst: 127.0.0.1"), "{text}");
    assert_eq!(text.matches("[Header checksum status: Good]").count(), 2, "IPv4 header checksums:\n{text}");
    assert_eq!(text.matches("[Checksum Status: Good]").count(), 3, "UDP checksums:\n{text}");
    assert!(!text.contains("Bad"), "{text}");

    let summary = analyze(&path, Checksums::Validate).unwrap();
    assert!(summary.problems.is_empty(), "{:#?}", summary.problems);
    assert_eq!((summary.requests("INVITE"), summary.responses(100)), (2, 1), "{summary:#?}");
}

#[test]
fn sip_over_tcp_split_across_segments_is_reassembled_and_dissected() {
    if !peers_ready(&[Peer::Tshark]) {
        return;
    }
    let dir = temp_dir("pcap-tcp-").unwrap();
    let path = dir.path().join("tcp.pcap");
    let (phone, server): (SocketAddr, SocketAddr) =
        ("127.0.0.1:40312".parse().unwrap(), "127.0.0.1:5060".parse().unwrap());
    let (head, body) = INVITE.split_at(200);
    write(&path, |w| {
        w.write_tcp(phone, server, head, at(0)).unwrap();
        w.write_tcp(phone, server, body, at(1)).unwrap();
        w.write_tcp(server, phone, TRYING, at(5)).unwrap();
    });
    let text = verbose(&path);
    assert!(text.contains("Flags: 0x002 (SYN)"), "synthesized handshake:\n{text}");
    assert!(text.contains("[2 Reassembled TCP Segments"), "the INVITE is reassembled:\n{text}");
    assert!(text.contains("Request-Line: INVITE sip:1002@voip.test SIP/2.0"), "{text}");
    assert!(text.contains("Status-Line: SIP/2.0 100 Trying"), "{text}");
    assert!(!text.contains("Bad"), "{text}");

    let summary = analyze(&path, Checksums::Validate).unwrap();
    assert!(summary.problems.is_empty(), "{:#?}", summary.problems);
    assert_eq!((summary.requests("INVITE"), summary.responses(100)), (1, 1), "{summary:#?}");
}

#[test]
fn a_corrupted_packet_is_reported_as_a_problem() {
    if !peers_ready(&[Peer::Tshark]) {
        return;
    }
    let dir = temp_dir("pcap-bad-").unwrap();
    let path = dir.path().join("bad.pcap");
    let (phone, server): (SocketAddr, SocketAddr) =
        ("127.0.0.1:5062".parse().unwrap(), "127.0.0.1:5060".parse().unwrap());
    write(&path, |w| {
        w.write_udp(phone, server, INVITE, at(0)).unwrap();
    });
    // Flip one payload byte after the checksums were computed.
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
    let summary = analyze(&path, Checksums::Validate).unwrap();
    assert_eq!(summary.problems.len(), 1, "{:#?}", summary.problems);
    assert!(summary.problems[0].contains("Bad checksum"), "{:#?}", summary.problems);
    assert!(analyze(&path, Checksums::Ignore).unwrap().problems.is_empty(), "no validation, no complaint");
}
