//! The workspace's `softphone` binary as a test peer: built once per test process, run in
//! scripted mode with its JSON events captured, and its WAV recordings judged tone by tone.

use crate::process::{stop, tail, wait_for_exit};
use crate::{HarnessError, Registrar, Result};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Overrides the softphone executable (skips the build).
const SOFTPHONE_ENV: &str = "VOIP_TESTS_SOFTPHONE";
/// How long a stopped softphone has to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// Polling step while waiting for an event.
const POLL: Duration = Duration::from_millis(20);

/// The path of an up-to-date `softphone` executable, built like the registrar's
/// ([`crate::registrar_exe`]: same profile, same target directory); `VOIP_TESTS_SOFTPHONE`
/// names a prebuilt one instead.
pub fn softphone_exe() -> Result<PathBuf> {
    static EXE: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    EXE.get_or_init(|| {
        if let Some(path) = std::env::var_os(SOFTPHONE_ENV) {
            return Ok(PathBuf::from(path));
        }
        crate::build::workspace_binary("softphone").map_err(|error| error.to_string())
    })
    .clone()
    .map_err(|message| HarnessError::io("build the softphone", std::io::Error::other(message)))
}

/// The command line of a scripted softphone registering `user` (password `pw<user>`) with the
/// registrar at `registrar` in `domain`, on a free loopback SIP port, printing JSON events, with
/// `extra` arguments after.
pub fn phone_args(registrar: std::net::SocketAddr, domain: &str, user: &str, extra: &[&str]) -> Result<Vec<String>> {
    phone_args_at(std::net::Ipv4Addr::LOCALHOST, registrar, domain, user, extra)
}

/// [`phone_args`] bound to `ip` (an address in 127.0.0.0/8 of the phone's own, so that a
/// capture can pick out its traffic) instead of 127.0.0.1.
pub fn phone_args_at(
    ip: std::net::Ipv4Addr,
    registrar: std::net::SocketAddr,
    domain: &str,
    user: &str,
    extra: &[&str],
) -> Result<Vec<String>> {
    let port = crate::free_port()?;
    let mut args: Vec<String> = [
        "--registrar",
        &registrar.to_string(),
        "--domain",
        domain,
        "--bind",
        &format!("{ip}:{port}"),
        "--user",
        user,
        "--password",
        &format!("pw{user}"),
        "--events",
        "json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    Ok(args)
}

/// [`phone_args`] for account `user` on `registrar` (its address and domain). For the top of a
/// test: panics when no SIP port is free.
pub fn account_args(registrar: &Registrar, user: &str, extra: &[&str]) -> Vec<String> {
    phone_args(registrar.addr(), registrar.domain(), user, extra).unwrap_or_else(|e| panic!("softphone arguments: {e}"))
}

/// `args` (from [`phone_args`] and the like) turned to register over TLS: the registrar named
/// `sips:` at its TLS address, and `ca` trusted with `--ca` when given.
pub fn over_tls(mut args: Vec<String>, registrar: &Registrar, ca: Option<&Path>) -> Vec<String> {
    let i = args.iter().position(|a| a == "--registrar").expect("a --registrar argument");
    args[i + 1] = format!("sips:{}", registrar.tls_addr());
    if let Some(ca) = ca {
        args.extend(["--ca".to_owned(), ca.display().to_string()]);
    }
    args
}

/// The command line of a scripted softphone `user` that registers nowhere: `--user USER`, then
/// `extra` (its `--bind`, `--dial sip:…`, …), then `--events json`.
pub fn direct_args(user: &str, extra: &[&str]) -> Vec<String> {
    ["--user", user].iter().chain(extra).chain(&["--events", "json"]).map(|s| s.to_string()).collect()
}

/// A running softphone whose stdout (the `--events json` lines) and stderr go to files in
/// `dir`. Dropping it stops the process.
#[derive(Debug)]
pub struct Softphone {
    name: String,
    child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Softphone {
    /// Starts the softphone with `args` (add `--events json` to see events), naming its
    /// output files after `name` in `dir`. It sees no sound devices (an empty ALSA
    /// configuration), so a test never plays on or records from the machine's sound card.
    pub fn start(name: &str, dir: &Path, args: &[String]) -> Result<Softphone> {
        Self::start_in(None, name, dir, args)
    }

    /// [`Softphone::start`] inside the network namespace `netns` (see [`crate::netns`]).
    pub fn start_in(netns: Option<&str>, name: &str, dir: &Path, args: &[String]) -> Result<Softphone> {
        let no_sound = dir.join("alsa-no-devices.conf");
        std::fs::write(&no_sound, "")
            .map_err(|source| HarnessError::io(format!("write {}", no_sound.display()), source))?;
        Self::spawn(netns, name, dir, args, &no_sound, &[])
    }

    /// [`start`](Self::start) with extra environment variables, such as `SSLKEYLOGFILE`.
    pub fn start_with_env(name: &str, dir: &Path, args: &[String], env: &[(&str, &Path)]) -> Result<Softphone> {
        let no_sound = dir.join("alsa-no-devices.conf");
        std::fs::write(&no_sound, "")
            .map_err(|source| HarnessError::io(format!("write {}", no_sound.display()), source))?;
        Self::spawn(None, name, dir, args, &no_sound, env)
    }

    /// [`start`](Self::start) with the ALSA configuration file `alsa_config` (as
    /// `ALSA_CONFIG_PATH`) in place of the system's: the sound devices the phone finds.
    pub fn start_with_alsa_config(name: &str, dir: &Path, args: &[String], alsa_config: &Path) -> Result<Softphone> {
        Self::spawn(None, name, dir, args, alsa_config, &[])
    }

    fn spawn(
        netns: Option<&str>,
        name: &str,
        dir: &Path,
        args: &[String],
        alsa_config: &Path,
        env: &[(&str, &Path)],
    ) -> Result<Softphone> {
        let exe = softphone_exe()?;
        let stdout = dir.join(format!("{name}.events"));
        let stderr = dir.join(format!("{name}.log"));
        let open = |path: &Path| {
            File::create(path).map_err(|source| HarnessError::io(format!("create {}", path.display()), source))
        };
        let child = crate::netns::command_in(netns, &exe)
            .args(args)
            .env("ALSA_CONFIG_PATH", alsa_config)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(open(&stdout)?)
            .stderr(open(&stderr)?)
            .spawn()
            .map_err(|source| HarnessError::io(format!("start {}", exe.display()), source))?;
        Ok(Softphone { name: name.to_owned(), child: Some(child), stdout, stderr })
    }

    /// Every event line printed so far.
    pub fn events(&self) -> Vec<String> {
        std::fs::read_to_string(&self.stdout).unwrap_or_default().lines().map(str::to_owned).collect()
    }

    /// The first event line of kind `event` (`"registered"`, `"answered"`, …), if printed.
    pub fn event(&self, event: &str) -> Option<String> {
        self.events_of(event).into_iter().next()
    }

    /// Every event line of kind `event` printed so far, in order.
    pub fn events_of(&self, event: &str) -> Vec<String> {
        self.events().into_iter().filter(|line| is_event(line, event)).collect()
    }

    /// Where the first event line of kind `event` stands among all of them, if printed: to
    /// check which of two events came first.
    pub fn position(&self, event: &str) -> Option<usize> {
        self.events().iter().position(|line| is_event(line, event))
    }

    /// Waits up to `limit` for an event of kind `event`; fails early if the process exits.
    pub fn wait_for_event(&mut self, event: &str, limit: Duration) -> Result<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = self.event(event) {
                return Ok(line);
            }
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= deadline {
                return Err(HarnessError::Timeout {
                    what: format!("softphone {} (waiting for a {event:?} event; exit: {exited:?})", self.name),
                    limit,
                    output: self.output(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits up to `limit` for the process to exit by itself; kills it after that.
    pub fn wait(&mut self, limit: Duration) -> Result<ExitStatus> {
        let Some(child) = self.child.as_mut() else {
            return Err(HarnessError::io("wait for the softphone", std::io::Error::other("already reaped")));
        };
        match wait_for_exit(child, limit) {
            Some(status) => {
                self.child = None;
                Ok(status)
            }
            None => {
                self.stop();
                Err(HarnessError::Timeout { what: format!("softphone {}", self.name), limit, output: self.output() })
            }
        }
    }

    /// Everything it printed on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Its events and the tail of its log, for failure messages.
    pub fn output(&self) -> String {
        format!("--- events ---\n{}\n--- log ---\n{}", self.events().join("\n"), tail(&self.stderr, 40))
    }

    /// Stops the process (SIGTERM, then SIGKILL).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child, STOP_GRACE, false);
        }
    }
}

/// Whether the JSON event line `line` is of kind `event`.
fn is_event(line: &str, event: &str) -> bool {
    line.contains(&format!("\"event\":\"{event}\""))
}

impl Drop for Softphone {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A mono 16-bit PCM WAV file as the softphone writes it: its rate and samples.
pub fn read_wav(path: &Path) -> Result<(u32, Vec<i16>)> {
    let bytes = std::fs::read(path).map_err(|source| HarnessError::io(format!("read {}", path.display()), source))?;
    let bad = |why: &str| HarnessError::io(format!("read {}", path.display()), std::io::Error::other(why.to_owned()));
    if bytes.len() < 44 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" || &bytes[36..40] != b"data" {
        return Err(bad("not the mono 16-bit PCM WAV the softphone writes"));
    }
    let channels = u16::from_le_bytes([bytes[22], bytes[23]]);
    let rate = u32::from_le_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]);
    let bits = u16::from_le_bytes([bytes[34], bytes[35]]);
    if channels != 1 || bits != 16 {
        return Err(bad("expected mono 16-bit samples"));
    }
    let samples = bytes[44..].chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    Ok((rate, samples))
}

/// Of the 20 ms blocks of `samples` at `rate` Hz, how many `freq` dominates
/// ([`proto::codec::is_dominated_by`], a Goertzel measure), and how many there are.
pub fn tone_blocks(samples: &[i16], rate: u32, freq: f32) -> (usize, usize) {
    let block = (rate / 50) as usize;
    if block == 0 {
        return (0, 0);
    }
    let blocks: Vec<&[i16]> = samples.chunks_exact(block).collect();
    let toned = blocks.iter().filter(|b| proto::codec::is_dominated_by(b, rate, freq)).count();
    (toned, blocks.len())
}

/// The share (0 to 1) of the 20 ms blocks from `from` to `to` seconds into `samples` at `rate`
/// Hz that `freq` dominates ([`tone_blocks`]). For a test: panics when `samples` holds no block
/// of that window.
pub fn toned_fraction(samples: &[i16], rate: u32, freq: u32, from: f64, to: f64) -> f64 {
    let block = (rate / 50) as usize;
    let start = ((from * 50.0) as usize * block).min(samples.len());
    let end = ((to * 50.0) as usize * block).min(samples.len());
    let (toned, blocks) = tone_blocks(samples.get(start..end).unwrap_or_default(), rate, freq as f32);
    assert!(blocks > 0, "the recording ({} samples) does not reach {to} s", samples.len());
    toned as f64 / blocks as f64
}

/// How much of a recording one tone fills, in 20 ms blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToneShare {
    /// The recording's sample rate.
    pub rate: u32,
    /// Blocks the tone dominates.
    pub toned: usize,
    /// All the blocks.
    pub blocks: usize,
}

impl ToneShare {
    /// The recording's length in seconds.
    pub fn seconds(&self) -> f64 {
        self.blocks as f64 / 50.0
    }

    /// The toned blocks as a percentage of all of them.
    pub fn percent(&self) -> f64 {
        100.0 * self.toned as f64 / self.blocks.max(1) as f64
    }
}

/// Reads the mono WAV at `path` and measures how much of it `freq` dominates ([`tone_blocks`]).
pub fn tone_share(path: &Path, freq: u32) -> Result<ToneShare> {
    let (rate, samples) = read_wav(path)?;
    let (toned, blocks) = tone_blocks(&samples, rate, freq as f32);
    Ok(ToneShare { rate, toned, blocks })
}

/// Asserts that the recording at `path` is at `rate`, lasts at least `min_seconds` and holds
/// `freq` in ≥ 90% of its 20 ms blocks; prints what it measured, naming `who` heard it.
pub fn assert_recording_holds(path: &Path, rate: u32, freq: u32, min_seconds: f64, who: &str) {
    let heard = tone_share(path, freq).unwrap_or_else(|e| panic!("{who}'s recording: {e}"));
    let (toned, blocks, seconds) = (heard.toned, heard.blocks, heard.seconds());
    assert_eq!(heard.rate, rate, "{who}'s recording is at the codec's rate");
    eprintln!("{who} heard {freq} Hz in {toned} of {blocks} blocks ({seconds:.2} s recorded)");
    assert!(seconds >= min_seconds, "{who}'s recording lasts {seconds:.2} s, less than the call");
    assert!(
        toned * 10 >= blocks * 9,
        "{who} heard {freq} Hz in only {toned} of {blocks} blocks of 20 ms ({:.1}%)",
        heard.percent()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_blocks_counts_only_blocks_of_that_tone() {
        let rate = 8000;
        let mut samples: Vec<i16> = (0..1600)
            .map(|n| (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * f64::from(n) / f64::from(rate)).sin()) as i16)
            .collect();
        samples.extend(std::iter::repeat_n(0, 800));
        assert_eq!(tone_blocks(&samples, rate, 1000.0), (10, 15));
        assert_eq!(tone_blocks(&samples, rate, 1500.0), (0, 15));
    }
}
