//! SRTP and SRTCP unprotect (RFC 3711 §3.3, §3.4) on arbitrary datagrams, under both SDES suites,
//! with and without an MKI.
//!
//! The input is a mode byte (bit 0: the `_32` suite; bit 1: an MKI of 1 + bits 2..3 bytes;
//! bit 4: RTCP) and then packets, each a length byte and that many bytes. Each packet is
//! unprotected as it stands (hostile bytes: refused or not, never a panic), and protected by an
//! honest sender and then unprotected by its receiver: what comes out must be what went in, and
//! the protected packet with any one bit flipped must be refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::rtp::srtp::{MasterKey, Mki, SrtpContext, SrtpProfile};

/// Unprotects `packet` as SRTCP or SRTP into `out`; true when it authenticated.
fn unprotect(context: &mut SrtpContext, rtcp: bool, packet: &[u8], out: &mut Vec<u8>) -> bool {
    let result = if rtcp { context.unprotect_rtcp(packet, out) } else { context.unprotect_rtp(packet, out) };
    result.is_ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else { return };
    let profile = if mode & 1 == 0 { SrtpProfile::AesCm128HmacSha1_80 } else { SrtpProfile::AesCm128HmacSha1_32 };
    let mki = (mode & 2 != 0).then_some(Mki { value: 0x0102_0304, len: (mode >> 2 & 3) + 1 });
    let rtcp = mode & 0x10 != 0;
    let key = MasterKey::new([7; 16], [9; 14]);
    let context = || SrtpContext::new(profile, &key, mki);
    let (mut hostile, mut sender, mut receiver) = (context(), context(), context());
    let (mut wire, mut plain) = (Vec::new(), Vec::new());
    while let Some((&len, tail)) = rest.split_first() {
        let (packet, next) = tail.split_at(usize::from(len).min(tail.len()));
        rest = next;
        plain.clear();
        let _ = unprotect(&mut hostile, rtcp, packet, &mut plain);

        wire.clear();
        let sealed = if rtcp { sender.protect_rtcp(packet, &mut wire) } else { sender.protect_rtp(packet, &mut wire) };
        if sealed.is_err() {
            continue;
        }
        // One bit flipped, chosen by the packet: a forgery, which must be refused.
        let mut forged = wire.clone();
        let bit = packet.iter().fold(usize::from(len), |a, b| a.wrapping_mul(31).wrapping_add(usize::from(*b)));
        if let Some(byte) = forged.get_mut(bit / 8 % wire.len().max(1)) {
            *byte ^= 1 << (bit % 8);
            plain.clear();
            assert!(!unprotect(&mut receiver, rtcp, &forged, &mut plain), "a packet with a flipped bit was accepted");
        }
        // The honest packet: accepted unless the sender's sequence jumped out of the receiver's
        // window or repeated (replay), and then exactly what was sent.
        plain.clear();
        if unprotect(&mut receiver, rtcp, &wire, &mut plain) {
            assert_eq!(plain, packet, "unprotect gave back other bytes than were protected");
        }
    }
});
