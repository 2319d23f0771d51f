//! SRTP and SRTCP (RFC 3711) for the two SDES crypto suites a telephone meets (RFC 4568 §6.2):
//! `AES_CM_128_HMAC_SHA1_80` and `AES_CM_128_HMAC_SHA1_32`.
//!
//! This module owns the cryptographic context of one direction of a call, [`SrtpContext`]:
//!
//! - session keys derived from the master key and salt with a key derivation rate of 0
//!   (§4.3.1, §4.3.2): one set for SRTP, one for SRTCP;
//! - AES in counter mode (§4.1.1), the IV built from the session salt, the SSRC and the packet
//!   index, over the payload of RTP and everything after the first 8 bytes of RTCP;
//! - HMAC-SHA1 authentication (§4.2), the tag 80 bits, or 32 bits for SRTP under the `_32`
//!   suite (SRTCP keeps 80 bits there, RFC 4568 §6.2.2), compared in constant time;
//! - the rollover counter and index estimation of the receiver (§3.3.1, Appendix A), and of the
//!   sender, which counts its own wraps of the sequence number;
//! - a 64-packet replay window on the 48-bit SRTP index and the 31-bit SRTCP index (§3.3.2);
//! - the SRTCP index with its E bit, encrypted always (§3.4);
//! - an optional MKI (§3.1) for a single master key, checked on receipt.
//!
//! State moves only on a packet that authenticates: forged or replayed input changes nothing,
//! and a packet from an SSRC never seen before is admitted only once its tag checks out.
//! Nothing here panics on hostile input; each refusal is an [`SrtpError`].
//!
//! Built on RustCrypto's `aes`, `ctr`, `hmac` and `sha1` rather than `webrtc-srtp`: that crate
//! brings tokio, a second RTP/RTCP parser and AEAD code these suites do not use, and keeps its
//! replay window on the 16-bit sequence number instead of the 48-bit index of §3.3.2. The tests
//! hold this module to RFC 3711 Appendix B and to packets protected by libsrtp.
//!
//! ```
//! use proto::rtp::srtp::{MasterKey, SrtpContext, SrtpProfile};
//!
//! let key = MasterKey::new([7; 16], [9; 14]);
//! let mut sender = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &key, None);
//! let mut receiver = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &key, None);
//! let rtp = [0x80, 0, 0, 1, 0, 0, 0, 160, 0xca, 0xfe, 0xba, 0xbe, 1, 2, 3, 4];
//! let (mut wire, mut plain) = (Vec::new(), Vec::new());
//! sender.protect_rtp(&rtp, &mut wire)?;
//! assert_eq!(wire.len(), rtp.len() + 10);
//! receiver.unprotect_rtp(&wire, &mut plain)?;
//! assert_eq!(plain, rtp);
//! # Ok::<(), proto::rtp::srtp::SrtpError>(())
//! ```

use std::fmt;

use aes::Aes128;
use aes::cipher::{BlockEncrypt, InnerIvInit, KeyInit, StreamCipher};
use hmac::{Hmac, Mac};
use rand::{CryptoRng, RngCore};
use sha1::Sha1;
use subtle::ConstantTimeEq;

type Aes128Ctr = ctr::Ctr128BE<Aes128>;
type HmacSha1 = Hmac<Sha1>;

/// Length of the master key of both suites, in bytes.
pub const MASTER_KEY_LEN: usize = 16;
/// Length of the master salt of both suites, in bytes.
pub const MASTER_SALT_LEN: usize = 14;
/// Length of an HMAC-SHA1 session authentication key (RFC 3711 §4.2.1: 160 bits).
const AUTH_KEY_LEN: usize = 20;
/// SRTCP always carries an 80-bit tag with these suites.
const SRTCP_TAG_LEN: usize = 10;
/// Packets remembered behind the highest index for replay detection (RFC 3711 §3.3.2 asks
/// at least 64).
const REPLAY_WINDOW: u64 = 64;
/// Receiving streams (SSRCs) a context keeps state for; the least recently used goes first.
const MAX_STREAMS: usize = 16;
/// The last SRTCP index before the master key must change (§3.4: 2^31 packets).
const MAX_SRTCP_INDEX: u32 = 0x7fff_ffff;

/// Key derivation labels (RFC 3711 §4.3.1, §4.3.2).
const LABEL_RTP_ENCRYPTION: u8 = 0;
const LABEL_RTP_AUTH: u8 = 1;
const LABEL_RTP_SALT: u8 = 2;
const LABEL_RTCP_ENCRYPTION: u8 = 3;
const LABEL_RTCP_AUTH: u8 = 4;
const LABEL_RTCP_SALT: u8 = 5;

/// An SRTP crypto suite (RFC 4568 §6.2), with its name as SDP writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpProfile {
    /// `AES_CM_128_HMAC_SHA1_80`: AES-128 counter mode, 80-bit HMAC-SHA1 tags.
    AesCm128HmacSha1_80,
    /// `AES_CM_128_HMAC_SHA1_32`: as above with a 32-bit tag on SRTP (SRTCP keeps 80 bits).
    AesCm128HmacSha1_32,
}

impl SrtpProfile {
    /// Every suite we support, most preferred first.
    pub const ALL: [SrtpProfile; 2] = [SrtpProfile::AesCm128HmacSha1_80, SrtpProfile::AesCm128HmacSha1_32];

    /// The suite's name in `a=crypto` (RFC 4568 §6.2.1, §6.2.2).
    pub fn name(self) -> &'static str {
        match self {
            SrtpProfile::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpProfile::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// The suite an `a=crypto` name stands for; `None` for one we do not support.
    /// Suite names are case-sensitive (RFC 4568 §9.2).
    pub fn from_name(name: &str) -> Option<SrtpProfile> {
        SrtpProfile::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Length of the authentication tag on SRTP packets, in bytes.
    pub fn rtp_tag_len(self) -> usize {
        match self {
            SrtpProfile::AesCm128HmacSha1_80 => 10,
            SrtpProfile::AesCm128HmacSha1_32 => 4,
        }
    }

    /// Length of the authentication tag on SRTCP packets, in bytes: 80 bits for both suites.
    pub fn rtcp_tag_len(self) -> usize {
        SRTCP_TAG_LEN
    }
}

impl fmt::Display for SrtpProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A master key and master salt (RFC 3711 §3.2.1). Its `Debug` does not show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    key: [u8; MASTER_KEY_LEN],
    salt: [u8; MASTER_SALT_LEN],
}

impl MasterKey {
    /// Length of the key followed by the salt, as SDES carries them (RFC 4568 §6.1).
    pub const LEN: usize = MASTER_KEY_LEN + MASTER_SALT_LEN;

    /// A master key from its key and salt.
    pub fn new(key: [u8; MASTER_KEY_LEN], salt: [u8; MASTER_SALT_LEN]) -> MasterKey {
        MasterKey { key, salt }
    }

    /// A fresh master key and salt from a cryptographically secure source.
    pub fn random<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> MasterKey {
        let mut key = MasterKey::new([0; MASTER_KEY_LEN], [0; MASTER_SALT_LEN]);
        rng.fill_bytes(&mut key.key);
        rng.fill_bytes(&mut key.salt);
        key
    }

    /// Reads the key followed by the salt (30 bytes, the SDES `inline:` value decoded).
    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey, SrtpError> {
        let wrong = SrtpError::KeyLength { len: bytes.len() };
        let (key, salt) = bytes.split_at_checked(MASTER_KEY_LEN).ok_or(wrong.clone())?;
        Ok(MasterKey::new(key.try_into().map_err(|_| wrong.clone())?, salt.try_into().map_err(|_| wrong)?))
    }

    /// The key followed by the salt.
    pub fn to_bytes(&self) -> [u8; MasterKey::LEN] {
        let mut out = [0; MasterKey::LEN];
        out[..MASTER_KEY_LEN].copy_from_slice(&self.key);
        out[MASTER_KEY_LEN..].copy_from_slice(&self.salt);
        out
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// A master key identifier (RFC 3711 §3.1): `len` bytes (1 to 4) carrying `value`, big-endian,
/// in every packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mki {
    /// The identifier.
    pub value: u32,
    /// Its length on the wire in bytes, 1 to 4.
    pub len: u8,
}

impl Mki {
    fn bytes(self) -> ([u8; 4], usize) {
        let len = usize::from(self.len.clamp(1, 4));
        (self.value.to_be_bytes(), 4 - len)
    }

    fn write(self, out: &mut Vec<u8>) {
        let (bytes, from) = self.bytes();
        out.extend_from_slice(bytes.get(from..).unwrap_or_default());
    }

    fn matches(self, wire: &[u8]) -> bool {
        let (bytes, from) = self.bytes();
        bytes.get(from..) == Some(wire)
    }

    fn wire_len(self) -> usize {
        usize::from(self.len.clamp(1, 4))
    }
}

/// Why a packet could not be protected or unprotected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    /// Too short for its header, MKI and tag.
    #[error("packet of {len} bytes is too short for SRTP/SRTCP: at least {min} expected")]
    TooShort {
        /// Its length.
        len: usize,
        /// The least it needs.
        min: usize,
    },
    /// Not an RTP (or RTCP) packet of version 2.
    #[error("not an RTP/RTCP version 2 packet")]
    NotRtp,
    /// The authentication tag does not match: forged, corrupted, or under another key. Drop it.
    #[error("SRTP authentication failed: the packet is forged, corrupted, or under another key")]
    AuthFailed,
    /// The MKI is not the one of our master key.
    #[error("unknown master key identifier: the peer uses a key we were not given")]
    UnknownMki,
    /// This index was received already (RFC 3711 §3.3.2). Drop it.
    #[error("replayed packet (index {index})")]
    Replayed {
        /// The packet's SRTP or SRTCP index.
        index: u64,
    },
    /// The index is behind the replay window, so it cannot be told from a replay. Drop it.
    #[error("packet too old for the replay window (index {index})")]
    TooOld {
        /// The packet's SRTP or SRTCP index.
        index: u64,
    },
    /// The master key has protected as many packets as it may (§3.3.1, §3.4): re-key.
    #[error("the SRTP master key is exhausted: re-key the session with a re-INVITE")]
    KeyExhausted,
    /// A master key and salt of the wrong length.
    #[error("master key and salt are {len} bytes; AES_CM_128 suites need 30 (16 key + 14 salt)")]
    KeyLength {
        /// The length given.
        len: usize,
    },
}

/// Session keys for one of SRTP or SRTCP (RFC 3711 §4.3).
#[derive(Clone)]
struct SessionKeys {
    cipher: Aes128,
    salt: [u8; MASTER_SALT_LEN],
    auth: HmacSha1,
}

impl SessionKeys {
    fn derive(master: &MasterKey, labels: [u8; 3]) -> SessionKeys {
        let kdf = Aes128::new(&master.key.into());
        let [encryption, auth, salt] = labels;
        let mut key = [0; MASTER_KEY_LEN];
        derive(&kdf, &master.salt, encryption, &mut key);
        let mut auth_key = [0; AUTH_KEY_LEN];
        derive(&kdf, &master.salt, auth, &mut auth_key);
        let mut session_salt = [0; MASTER_SALT_LEN];
        derive(&kdf, &master.salt, salt, &mut session_salt);
        SessionKeys { cipher: Aes128::new(&key.into()), salt: session_salt, auth: hmac_key(&auth_key) }
    }

    /// XORs the AES-CM keystream for `ssrc` and `index` into `data` (§4.1.1).
    fn apply_keystream(&self, ssrc: u32, index: u64, data: &mut [u8]) {
        let mut iv = [0u8; 16];
        iv[..MASTER_SALT_LEN].copy_from_slice(&self.salt);
        for (byte, x) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *byte ^= x;
        }
        for (byte, x) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
            *byte ^= x;
        }
        let core = ctr::CtrCore::<Aes128, ctr::flavors::Ctr128BE>::inner_iv_init(self.cipher.clone(), &iv.into());
        let mut ctr = Aes128Ctr::from_core(core);
        ctr.apply_keystream(data);
    }

    /// The full HMAC-SHA1 over `parts`.
    fn tag(&self, parts: &[&[u8]]) -> [u8; 20] {
        let mut mac = self.auth.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

/// HMAC-SHA1 keyed with `key`: a key shorter than SHA-1's 64-byte block is zero-padded to it
/// (RFC 2104 §2), which is what the block-sized constructor takes.
fn hmac_key(key: &[u8; AUTH_KEY_LEN]) -> HmacSha1 {
    let mut block = [0u8; 64];
    block[..AUTH_KEY_LEN].copy_from_slice(key);
    <HmacSha1 as KeyInit>::new(&block.into())
}

/// The AES-CM PRF of the key derivation (§4.3.1, §4.3.3) with a key derivation rate of 0:
/// `x = label << 48 XOR master_salt`, keystream from IV `x * 2^16`.
fn derive(kdf: &Aes128, master_salt: &[u8; MASTER_SALT_LEN], label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..MASTER_SALT_LEN].copy_from_slice(master_salt);
    iv[7] ^= label;
    out.fill(0);
    for (counter, chunk) in out.chunks_mut(16).enumerate() {
        let mut block = iv;
        block[14..].copy_from_slice(&(counter as u16).to_be_bytes());
        let mut block = block.into();
        kdf.encrypt_block(&mut block);
        for (o, k) in chunk.iter_mut().zip(block.iter()) {
            *o = *k;
        }
    }
}

/// Replay detection over a 64-entry sliding window (§3.3.2).
#[derive(Debug, Clone, Copy, Default)]
struct ReplayWindow {
    highest: u64,
    /// Bit `n` set: index `highest - n` was received.
    seen: u64,
}

impl ReplayWindow {
    fn check(&self, index: u64) -> Result<(), SrtpError> {
        if index > self.highest {
            return Ok(());
        }
        let behind = self.highest - index;
        if behind >= REPLAY_WINDOW {
            return Err(SrtpError::TooOld { index });
        }
        if self.seen & (1 << behind) != 0 {
            return Err(SrtpError::Replayed { index });
        }
        Ok(())
    }

    fn accept(&mut self, index: u64) {
        if index > self.highest {
            let ahead = index - self.highest;
            self.seen = if ahead >= REPLAY_WINDOW { 0 } else { self.seen << ahead };
            self.seen |= 1;
            self.highest = index;
        } else {
            self.seen |= 1 << (self.highest - index);
        }
    }
}

/// What a context knows of one SSRC.
#[derive(Debug, Clone, Copy)]
struct Stream {
    ssrc: u32,
    /// The rollover counter and the highest sequence number seen with it (`s_l`).
    roc: u32,
    highest_seq: u16,
    rtp_window: ReplayWindow,
    /// Next SRTCP index to send, or the window of those received.
    rtcp_next: u32,
    rtcp_window: ReplayWindow,
    /// Whether an SRTP packet went through for this SSRC, setting `roc`/`highest_seq`.
    rtp_started: bool,
    /// A use count, for eviction.
    used: u64,
}

impl Stream {
    fn new(ssrc: u32) -> Stream {
        Stream {
            ssrc,
            roc: 0,
            highest_seq: 0,
            rtp_window: ReplayWindow::default(),
            rtcp_next: 0,
            rtcp_window: ReplayWindow::default(),
            rtp_started: false,
            used: 0,
        }
    }

    /// The rollover counter `v` for `seq` as Appendix A guesses it.
    fn guess_roc(&self, seq: u16) -> u32 {
        if !self.rtp_started {
            return self.roc;
        }
        let s_l = self.highest_seq;
        if s_l < 0x8000 {
            if seq > s_l && seq - s_l > 0x8000 { self.roc.wrapping_sub(1) } else { self.roc }
        } else if s_l - 0x8000 > seq {
            self.roc.wrapping_add(1)
        } else {
            self.roc
        }
    }

    /// Records an authenticated packet's `seq` under rollover counter `v` (§3.3.1).
    fn update_rtp(&mut self, seq: u16, v: u32) {
        if !self.rtp_started {
            (self.rtp_started, self.roc, self.highest_seq) = (true, v, seq);
        } else if v == self.roc.wrapping_add(1) {
            (self.roc, self.highest_seq) = (v, seq);
        } else if v == self.roc && seq > self.highest_seq {
            self.highest_seq = seq;
        }
    }
}

/// The SRTP and SRTCP state of one direction of a call under one master key (RFC 3711 §3.2):
/// ours to protect what we send, or the peer's to unprotect what we receive.
#[derive(Clone)]
pub struct SrtpContext {
    profile: SrtpProfile,
    mki: Option<Mki>,
    rtp: SessionKeys,
    rtcp: SessionKeys,
    streams: Vec<Stream>,
    uses: u64,
}

impl fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpContext")
            .field("profile", &self.profile)
            .field("mki", &self.mki)
            .field("streams", &self.streams.len())
            .finish_non_exhaustive()
    }
}

/// The length of an RTP header with its CSRCs and extension, if `packet` holds one.
fn rtp_header_len(packet: &[u8]) -> Result<usize, SrtpError> {
    let first = *packet.first().ok_or(SrtpError::TooShort { len: 0, min: 12 })?;
    if first >> 6 != 2 {
        return Err(SrtpError::NotRtp);
    }
    let mut len = 12 + 4 * usize::from(first & 0x0f);
    if first & 0x10 != 0 {
        let words = packet.get(len + 2..len + 4).ok_or(SrtpError::TooShort { len: packet.len(), min: len + 4 })?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    if packet.len() < len {
        return Err(SrtpError::TooShort { len: packet.len(), min: len });
    }
    Ok(len)
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

impl SrtpContext {
    /// A context for `profile` under `master`, carrying `mki` in each packet when given.
    pub fn new(profile: SrtpProfile, master: &MasterKey, mki: Option<Mki>) -> SrtpContext {
        SrtpContext {
            profile,
            mki,
            rtp: SessionKeys::derive(master, [LABEL_RTP_ENCRYPTION, LABEL_RTP_AUTH, LABEL_RTP_SALT]),
            rtcp: SessionKeys::derive(master, [LABEL_RTCP_ENCRYPTION, LABEL_RTCP_AUTH, LABEL_RTCP_SALT]),
            streams: Vec::new(),
            uses: 0,
        }
    }

    /// The suite this context runs.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    fn mki_len(&self) -> usize {
        self.mki.map_or(0, Mki::wire_len)
    }

    /// The state of `ssrc`, a copy to change and [`SrtpContext::store`] once the packet is good.
    fn stream(&self, ssrc: u32) -> Stream {
        self.streams.iter().find(|s| s.ssrc == ssrc).copied().unwrap_or_else(|| Stream::new(ssrc))
    }

    fn store(&mut self, mut stream: Stream) {
        self.uses += 1;
        stream.used = self.uses;
        if let Some(slot) = self.streams.iter_mut().find(|s| s.ssrc == stream.ssrc) {
            *slot = stream;
        } else if self.streams.len() < MAX_STREAMS {
            self.streams.push(stream);
        } else if let Some(oldest) = self.streams.iter_mut().min_by_key(|s| s.used) {
            *oldest = stream;
        }
    }

    /// Encrypts and authenticates one RTP packet into `out` (RFC 3711 §3.3), which it clears
    /// first.
    pub fn protect_rtp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        let header_len = rtp_header_len(packet)?;
        let ssrc = be_u32(packet, 8).ok_or(SrtpError::NotRtp)?;
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let mut stream = self.stream(ssrc);
        // The sender follows its own sequence numbers as a receiver would (Appendix A).
        let roc = stream.guess_roc(seq);
        let index = (u64::from(roc) << 16) | u64::from(seq);
        if stream.rtp_started && stream.roc == u32::MAX && roc == 0 {
            return Err(SrtpError::KeyExhausted);
        }
        stream.update_rtp(seq, roc);

        out.clear();
        out.reserve(packet.len() + self.mki_len() + self.profile.rtp_tag_len());
        out.extend_from_slice(packet);
        if let Some(payload) = out.get_mut(header_len..) {
            self.rtp.apply_keystream(ssrc, index, payload);
        }
        let tag = self.rtp.tag(&[out, &roc.to_be_bytes()]);
        if let Some(mki) = self.mki {
            mki.write(out);
        }
        out.extend_from_slice(&tag[..self.profile.rtp_tag_len()]);
        self.store(stream);
        Ok(())
    }

    /// Authenticates and decrypts one SRTP packet into `out`, which it clears first
    /// (RFC 3711 §3.3). A packet that fails leaves the context as it was.
    pub fn unprotect_rtp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        let tag_len = self.profile.rtp_tag_len();
        let trailer = self.mki_len() + tag_len;
        let header_len = rtp_header_len(packet)?;
        let min = header_len + trailer;
        let body_len = packet.len().checked_sub(trailer).filter(|&n| n >= header_len);
        let body_len = body_len.ok_or(SrtpError::TooShort { len: packet.len(), min })?;
        let (authenticated, rest) = packet.split_at(body_len);
        let (mki, tag) = rest.split_at(self.mki_len());
        if let Some(ours) = self.mki
            && !ours.matches(mki)
        {
            return Err(SrtpError::UnknownMki);
        }
        let ssrc = be_u32(packet, 8).ok_or(SrtpError::NotRtp)?;
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let mut stream = self.stream(ssrc);
        let roc = stream.guess_roc(seq);
        let index = (u64::from(roc) << 16) | u64::from(seq);
        if stream.rtp_started {
            stream.rtp_window.check(index)?;
        }
        let expected = self.rtp.tag(&[authenticated, &roc.to_be_bytes()]);
        if !bool::from(expected[..tag_len].ct_eq(tag)) {
            return Err(SrtpError::AuthFailed);
        }
        stream.update_rtp(seq, roc);
        stream.rtp_window.accept(index);
        self.store(stream);

        out.clear();
        out.extend_from_slice(authenticated);
        if let Some(payload) = out.get_mut(header_len..) {
            self.rtp.apply_keystream(ssrc, index, payload);
        }
        Ok(())
    }

    /// Encrypts and authenticates one RTCP compound packet into `out` (RFC 3711 §3.4), which it
    /// clears first: everything after the first 8 bytes is encrypted, the E bit is set.
    pub fn protect_rtcp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        if packet.first().is_some_and(|b| b >> 6 != 2) {
            return Err(SrtpError::NotRtp);
        }
        let ssrc = be_u32(packet, 4).ok_or(SrtpError::TooShort { len: packet.len(), min: 8 })?;
        let mut stream = self.stream(ssrc);
        let index = stream.rtcp_next;
        if index > MAX_SRTCP_INDEX {
            return Err(SrtpError::KeyExhausted);
        }
        stream.rtcp_next = index + 1;

        out.clear();
        out.reserve(packet.len() + 4 + self.mki_len() + SRTCP_TAG_LEN);
        out.extend_from_slice(packet);
        if let Some(rest) = out.get_mut(8..) {
            self.rtcp.apply_keystream(ssrc, u64::from(index), rest);
        }
        out.extend_from_slice(&(index | 0x8000_0000).to_be_bytes());
        let tag = self.rtcp.tag(&[out]);
        if let Some(mki) = self.mki {
            mki.write(out);
        }
        out.extend_from_slice(&tag[..SRTCP_TAG_LEN]);
        self.store(stream);
        Ok(())
    }

    /// Authenticates and, when its E bit says so, decrypts one SRTCP packet into `out`, which it
    /// clears first (RFC 3711 §3.4). A packet that fails leaves the context as it was.
    pub fn unprotect_rtcp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        let trailer = 4 + self.mki_len() + SRTCP_TAG_LEN;
        let min = 8 + trailer;
        if packet.len() < min {
            return Err(SrtpError::TooShort { len: packet.len(), min });
        }
        if packet.first().is_some_and(|b| b >> 6 != 2) {
            return Err(SrtpError::NotRtp);
        }
        let authenticated_len = packet.len() - self.mki_len() - SRTCP_TAG_LEN;
        let (authenticated, rest) = packet.split_at(authenticated_len);
        let (mki, tag) = rest.split_at(self.mki_len());
        if let Some(ours) = self.mki
            && !ours.matches(mki)
        {
            return Err(SrtpError::UnknownMki);
        }
        let ssrc = be_u32(packet, 4).ok_or(SrtpError::NotRtp)?;
        let e_index = be_u32(authenticated, authenticated_len - 4).ok_or(SrtpError::NotRtp)?;
        let (encrypted, index) = (e_index & 0x8000_0000 != 0, e_index & MAX_SRTCP_INDEX);
        let mut stream = self.stream(ssrc);
        if stream.rtcp_window.seen != 0 {
            stream.rtcp_window.check(u64::from(index))?;
        }
        let expected = self.rtcp.tag(&[authenticated]);
        if !bool::from(expected[..SRTCP_TAG_LEN].ct_eq(tag)) {
            return Err(SrtpError::AuthFailed);
        }
        stream.rtcp_window.accept(u64::from(index));
        self.store(stream);

        out.clear();
        out.extend_from_slice(&authenticated[..authenticated_len - 4]);
        if encrypted && let Some(rest) = out.get_mut(8..) {
            self.rtcp.apply_keystream(ssrc, u64::from(index), rest);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
