//! The softphone's sound devices, through cpal and ALSA, with ALSA's configuration replaced
//! for each phone (`ALSA_CONFIG_PATH`): an empty one (a machine with no sound card at all),
//! and one whose default device is ALSA's `file` plugin writing what is played into a FIFO
//! that the test drains at real-time pace (ALSA's `null` device, under it, keeps no time).

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use voip_tests::softphone::{Softphone, direct_args, tone_blocks};
use voip_tests::{free_port, temp_dir};

/// The file options every "no sound device" message must point to.
const FILE_OPTIONS: &str = "--audio-in tone:HZ|FILE.wav";

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// The non-empty lines of `text`.
fn lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.trim().is_empty()).collect()
}

#[test]
fn list_devices_without_a_sound_card_prints_one_line_and_exits_zero() {
    let dir = temp_dir("softphone-devices-").unwrap_or_else(|e| panic!("{e}"));
    let mut phone =
        Softphone::start("list", dir.path(), &strings(&["--list-devices"])).unwrap_or_else(|e| panic!("{e}"));
    let status = phone.wait(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    let out = phone.events().join("\n");
    assert!(status.success(), "exit {status}\n{}", phone.output());
    assert_eq!(lines(&out).len(), 1, "one line: {out:?}");
    assert!(out.contains("no sound device") && out.contains(FILE_OPTIONS), "{out:?}");
    assert_eq!(phone.log(), "", "nothing on stderr (no ALSA messages)");
}

#[test]
fn a_named_device_that_does_not_exist_exits_2_with_one_line() {
    let dir = temp_dir("softphone-devices-").unwrap_or_else(|e| panic!("{e}"));
    let args = strings(&["--user", "1001", "--input-device", "nosuch", "--duration", "5"]);
    let mut phone = Softphone::start("nosuch", dir.path(), &args).unwrap_or_else(|e| panic!("{e}"));
    let status = phone.wait(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    let log = phone.log();
    assert_eq!(status.code(), Some(2), "{log}");
    assert_eq!(lines(&log).len(), 1, "one line: {log:?}");
    assert!(log.contains("\"nosuch\"") && log.contains(FILE_OPTIONS), "{log:?}");
    assert!(!log.contains("ALSA lib"), "ALSA's own messages are kept off stderr: {log:?}");
}

#[test]
fn default_audio_without_a_sound_card_falls_back_to_silence_with_one_line() {
    let dir = temp_dir("softphone-devices-").unwrap_or_else(|e| panic!("{e}"));
    let args = strings(&["--user", "1001", "--duration", "0.3"]);
    let mut phone = Softphone::start("fallback", dir.path(), &args).unwrap_or_else(|e| panic!("{e}"));
    // Not registered and no call: status 1, but it ran its --duration instead of stopping at once.
    let started = Instant::now();
    let status = phone.wait(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    let log = phone.log();
    assert_ne!(status.code(), Some(2), "a default device that fails is no error: {log}");
    assert!(started.elapsed() >= Duration::from_millis(250), "it ran on");
    assert_eq!(lines(&log).len(), 1, "one line: {log:?}");
    assert!(
        log.contains("no sound device") && log.contains("sending silence") && log.contains(FILE_OPTIONS),
        "{log:?}"
    );
}

/// Makes the FIFO `NAME.fifo` in `dir` and the ALSA configuration `alsa-NAME.conf` whose default
/// device is the `file` plugin over `null` on raw samples, with `files(fifo)` as the plugin's
/// file lines. Returns the FIFO's path and the configuration's.
fn file_plugin_device(dir: &Path, name: &str, files: impl FnOnce(&Path) -> String) -> (PathBuf, PathBuf) {
    let fifo = dir.join(format!("{name}.fifo"));
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap_or_else(|e| panic!("mkfifo: {e}"));
    assert!(made.success(), "mkfifo failed");
    let alsa_config = dir.join(format!("alsa-{name}.conf"));
    let config = format!(
        "pcm.!default {{\n  type file\n  slave.pcm {{ type null }}\n  {}\n  format \"raw\"\n}}\n",
        files(&fifo)
    );
    std::fs::write(&alsa_config, config).unwrap_or_else(|e| panic!("{e}"));
    (fifo, alsa_config)
}

/// B (1002) auto-answers in Opus with `b_extra`, seeing the sound devices of `alsa_config`; A
/// (1001) dials it directly with `a_extra` and hangs up 3 s after the answer. Waits up to 20 s
/// for each to exit; returns both phones and their exit statuses.
fn call_the_device_phone(
    dir: &Path,
    alsa_config: &Path,
    b_extra: &[&str],
    a_extra: &[&str],
) -> (Softphone, Softphone, ExitStatus, ExitStatus) {
    let port = free_port().unwrap_or_else(|e| panic!("{e}"));
    let bind = format!("127.0.0.1:{port}");
    let b_args = direct_args(
        "1002",
        &[&["--bind", &bind, "--auto-answer", "--codecs", "opus"], b_extra, &["--duration", "8"]].concat(),
    );
    let mut b = Softphone::start_with_alsa_config("b", dir, &b_args, alsa_config)
        .unwrap_or_else(|e| panic!("start softphone B: {e}"));
    let target = format!("sip:1002@127.0.0.1:{port}");
    let a_args =
        direct_args("1001", &[&["--dial", &target], a_extra, &["--hangup-after", "3", "--duration", "10"]].concat());
    let mut a = Softphone::start("a", dir, &a_args).unwrap_or_else(|e| panic!("start softphone A: {e}"));
    let a_status = a.wait(Duration::from_secs(20)).unwrap_or_else(|e| panic!("{e}"));
    let b_status = b.wait(Duration::from_secs(20)).unwrap_or_else(|e| panic!("{e}"));
    (a, b, a_status, b_status)
}

/// Reads the FIFO at `path` at about `bytes_per_second` (never more than 20 ms' worth at once)
/// until `stop`, then drains what is left; returns everything read.
fn drain_paced(path: &Path, bytes_per_second: usize, stop: Arc<AtomicBool>) -> std::io::Result<Vec<u8>> {
    // Non-blocking, so opening does not wait for a writer and reading never hangs.
    let mut fifo = std::fs::OpenOptions::new().read(true).custom_flags(0o4000).open(path)?;
    let (mut data, mut buf) = (Vec::new(), vec![0u8; 65_536]);
    let burst = bytes_per_second / 50;
    let (mut allowed, mut last) = (0usize, Instant::now());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let now = Instant::now();
        allowed = (allowed + (now - last).as_micros() as usize * bytes_per_second / 1_000_000).min(burst);
        last = now;
        if allowed > 0 {
            let want = allowed.min(buf.len());
            match fifo.read(&mut buf[..want]) {
                Ok(n) => {
                    data.extend_from_slice(&buf[..n]);
                    allowed -= n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    loop {
        match fifo.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(data)
}

#[test]
fn far_end_tone_reaches_the_alsa_output_device_through_cpal() {
    let dir = temp_dir("softphone-devices-").unwrap_or_else(|e| panic!("{e}"));
    // The default device writes what is played into the FIFO.
    let (fifo, alsa_config) = file_plugin_device(dir.path(), "played", |fifo| format!("file \"{}\"", fifo.display()));

    // Opus: the device is asked for 48 kHz mono 16-bit (it takes anything), 96 kB/s.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (fifo, stop) = (fifo.clone(), stop.clone());
        std::thread::spawn(move || drain_paced(&fifo, 96_000, stop))
    };
    let b_extra = ["--output-device", "default", "--audio-in", "tone:500"];
    let (a, b, a_status, b_status) =
        call_the_device_phone(dir.path(), &alsa_config, &b_extra, &["--audio-in", "tone:1000", "--audio-out", "null"]);
    stop.store(true, Ordering::Relaxed);
    let played = reader.join().unwrap_or_else(|_| panic!("reader thread")).unwrap_or_else(|e| panic!("{e}"));
    let context = format!("A:\n{}\nB:\n{}", a.output(), b.output());
    assert!(a_status.success() && b_status.success(), "A {a_status}, B {b_status}\n{context}");
    assert!(b.event("answered").is_some_and(|l| l.contains("opus")), "{context}");

    let samples: Vec<i16> = played.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    let (toned, blocks) = tone_blocks(&samples, 48_000, 1000.0);
    eprintln!(
        "device got {:.2} s of audio, {toned} of {blocks} 20 ms blocks carry A's 1000 Hz",
        samples.len() as f64 / 48_000.0
    );
    // A sends its tone for about 3 s: at least 2 s of it must have been played.
    assert!(toned >= 100, "{toned} of {blocks} blocks carry the tone\n{context}");
    let (other, _) = tone_blocks(&samples, 48_000, 500.0);
    assert_eq!(other, 0, "B's own tone is not played back to B\n{context}");
    assert!(!b.log().contains("ALSA lib"), "{}", b.log());
}

/// Which 20 ms blocks of `samples` carry every one of `freqs` (each above a quarter of the
/// block's power, by Goertzel).
fn sounding(samples: &[i16], rate: u32, freqs: &[f32]) -> Vec<bool> {
    samples
        .chunks_exact(rate as usize / 50)
        .map(|b| {
            let total = proto::codec::mean_power(b);
            total > 0.0 && freqs.iter().all(|&f| proto::codec::tone_power(b, rate, f) > 0.25 * total)
        })
        .collect()
}

#[test]
fn an_unanswered_call_rings_at_the_callee_and_rings_back_at_the_caller() {
    let dir = temp_dir("softphone-ring-").unwrap_or_else(|e| panic!("{e}"));
    let (a_wav, b_wav) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
    let port = free_port().unwrap_or_else(|e| panic!("{e}"));
    // B never answers: it rings until A gives up 2.5 s after dialling.
    let (bind, target) = (format!("127.0.0.1:{port}"), format!("sip:1002@127.0.0.1:{port}"));
    let (a_out, b_out) = (a_wav.display().to_string(), b_wav.display().to_string());
    let b_args = direct_args("1002", &["--bind", &bind, "--audio-out", &b_out, "--duration", "5"]);
    let mut b = Softphone::start("b", dir.path(), &b_args).unwrap_or_else(|e| panic!("start softphone B: {e}"));
    let a_args =
        direct_args("1001", &["--dial", &target, "--audio-out", &a_out, "--cancel-after", "2.5", "--duration", "10"]);
    let mut a = Softphone::start("a", dir.path(), &a_args).unwrap_or_else(|e| panic!("start softphone A: {e}"));
    let a_status = a.wait(Duration::from_secs(15)).unwrap_or_else(|e| panic!("{e}"));
    b.wait(Duration::from_secs(15)).unwrap_or_else(|e| panic!("{e}"));
    let context = format!("A:\n{}\nB:\n{}", a.output(), b.output());
    assert!(a_status.success(), "A cancelled as asked: {a_status}\n{context}");

    // B: 440 + 480 Hz for the first second (50 blocks), then silence, until the CANCEL.
    let (rate, ring) = voip_tests::softphone::read_wav(&b_wav).unwrap_or_else(|e| panic!("{e}\n{context}"));
    let on = sounding(&ring, rate, &[440.0, 480.0]);
    let seconds = ring.len() as f64 / f64::from(rate);
    eprintln!("B rang for {seconds:.2} s: {} of {} blocks sounding", on.iter().filter(|s| **s).count(), on.len());
    assert!((1.5..4.0).contains(&seconds), "B rang {seconds:.2} s\n{context}");
    assert!(on.iter().take(48).all(|s| *s), "the first second rings: {on:?}");
    assert!(on.iter().skip(52).all(|s| !*s), "then it pauses: {on:?}");

    // A: 425 Hz ringback after the 180, the same cadence.
    let (rate, ringback) = voip_tests::softphone::read_wav(&a_wav).unwrap_or_else(|e| panic!("{e}\n{context}"));
    let on = sounding(&ringback, rate, &[425.0]);
    eprintln!(
        "A heard ringback for {:.2} s: {} of {} blocks sounding",
        ringback.len() as f64 / f64::from(rate),
        on.iter().filter(|s| **s).count(),
        on.len()
    );
    assert!(on.iter().take(48).all(|s| *s), "A's ringback sounds for the first second: {on:?}");
    assert!(on.iter().skip(52).all(|s| !*s), "then pauses: {on:?}");
    assert!(sounding(&ringback, rate, &[440.0, 480.0]).iter().all(|s| !*s), "A hears ringback, not the ring");
}

/// Keeps the FIFO at `path` full of a `freq` Hz sine as raw 48 kHz mono 16-bit samples until
/// `stop`. The FIFO is held open for reading too, so a phone opening it never waits. The
/// `file` plugin reads its input file without waiting for it (what is missing stays the `null`
/// device's silence) and `null` keeps no time, so capture runs as fast as the phone reads: the
/// FIFO is kept full, and the phone's queue keeps only the newest audio for each frame.
fn feed_tone(path: &Path, freq: f64, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    use std::io::Write;
    let mut fifo = std::fs::OpenOptions::new().read(true).write(true).custom_flags(0o4000).open(path)?;
    // Whole periods of the sine, so consecutive blocks join without a click.
    let period: Vec<u8> = (0..48_000)
        .flat_map(|n| {
            ((8000.0 * (2.0 * std::f64::consts::PI * freq * f64::from(n) / 48_000.0).sin()) as i16).to_le_bytes()
        })
        .collect();
    let (mut at, started) = (0usize, Instant::now());
    while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
        match fifo.write(&period[at..]) {
            Ok(n) => at = (at + n) % period.len(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[test]
fn a_tone_captured_from_the_alsa_input_device_reaches_the_far_end() {
    let dir = temp_dir("softphone-devices-").unwrap_or_else(|e| panic!("{e}"));
    // The default device captures from the FIFO.
    let infile = |fifo: &Path| format!("file \"/dev/null\"\n  infile \"{}\"", fifo.display());
    let (fifo, alsa_config) = file_plugin_device(dir.path(), "captured", infile);
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (fifo, stop) = (fifo.clone(), stop.clone());
        std::thread::spawn(move || feed_tone(&fifo, 1000.0, stop))
    };

    let a_wav = dir.path().join("a.wav");
    let b_extra = ["--input-device", "default", "--audio-out", "null"];
    let a_extra = ["--audio-in", "tone:500", "--audio-out", &a_wav.display().to_string()];
    let (a, b, a_status, b_status) = call_the_device_phone(dir.path(), &alsa_config, &b_extra, &a_extra);
    stop.store(true, Ordering::Relaxed);
    feeder.join().unwrap_or_else(|_| panic!("feeder thread")).unwrap_or_else(|e| panic!("{e}"));
    let context = format!("A:\n{}\nB:\n{}", a.output(), b.output());
    assert!(a_status.success() && b_status.success(), "A {a_status}, B {b_status}\n{context}");

    let (rate, heard) = voip_tests::softphone::read_wav(&a_wav).unwrap_or_else(|e| panic!("{e}\n{context}"));
    let (toned, blocks) = tone_blocks(&heard, rate, 1000.0);
    eprintln!("A heard B's captured 1000 Hz in {toned} of {blocks} 20 ms blocks");
    // Unpaced capture leaves some frames partly silent (see `feed_tone`): the tone must still
    // carry a good part of the 3 s call (here about 85 of 150 blocks; none when capture is broken).
    assert!(toned >= 40, "{toned} of {blocks} blocks carry the captured tone\n{context}");
    assert!(!b.log().contains("ALSA lib"), "{}", b.log());
}
