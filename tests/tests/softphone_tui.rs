//! The interactive softphone driven as a person would: on a real pseudo-terminal (a tmux pane),
//! keys typed and the screen read back. It registers with our registrar, dials a scripted
//! auto-answering softphone, shows the call connected with its codec and level meters, mutes
//! and unmutes (the far end's recording goes silent for that stretch), hangs up and quits,
//! giving the terminal back and removing its registration.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use voip_tests::softphone::{Softphone, read_wav, softphone_exe, tone_blocks};
use voip_tests::{Peer, Registrar, RegistrarConfig, free_port, peers_ready, temp_dir};

const DOMAIN: &str = "voip.test";
/// Polling step while waiting for the screen.
const POLL: Duration = Duration::from_millis(50);
/// How long anything on screen may take to appear.
const SCREEN_LIMIT: Duration = Duration::from_secs(10);

/// A tmux server of its own holding one pane of `COLUMNS`×`ROWS`, killed on drop.
struct Pane {
    socket: String,
}

impl Pane {
    const COLUMNS: u16 = 110;
    const ROWS: u16 = 32;

    /// Runs `program` with `args` in a new detached pane; its exit status is written to
    /// `status_file` when it exits.
    fn start(program: &Path, args: &[String], status_file: &Path) -> Pane {
        let pane = Pane { socket: format!("softphone-tui-{}-{}", std::process::id(), free_port().unwrap_or(0)) };
        let (columns, rows) = (Pane::COLUMNS.to_string(), Pane::ROWS.to_string());
        let script = format!(r#""$0" "$@"; echo $? > '{}'"#, status_file.display());
        let program = program.display().to_string();
        let mut command = vec!["-f", "/dev/null", "new-session", "-d", "-s", "phone", "-x", &columns, "-y", &rows];
        command.extend(["--", "sh", "-c", &script, &program]);
        command.extend(args.iter().map(String::as_str));
        let out = pane.tmux(&command);
        assert!(out.status.success(), "tmux new-session failed: {}", String::from_utf8_lossy(&out.stderr));
        // Keep the pane after the phone exits, to read the screen it leaves.
        pane.tmux(&["set-option", "-t", "phone", "remain-on-exit", "on"]);
        pane
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run tmux {args:?}: {e}"))
    }

    /// Types `text` literally.
    fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "phone", "-l", text]);
    }

    /// Presses a named key (`Enter`, `Escape`).
    fn press(&self, key: &str) {
        self.tmux(&["send-keys", "-t", "phone", key]);
    }

    /// The text on screen now.
    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "phone"]).stdout).into_owned()
    }

    /// Waits until `check` holds for the screen; panics with `what` and the screen if it does not
    /// within [`SCREEN_LIMIT`].
    fn wait_for(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SCREEN_LIMIT;
        loop {
            let screen = self.screen();
            if check(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "the screen never showed {what} within {SCREEN_LIMIT:?}:\n{screen}");
            std::thread::sleep(POLL);
        }
    }
}

/// The exit status written to `status_file` (see [`Pane::start`]), waiting up to `limit`.
fn exit_status(status_file: &Path, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(status_file)
            && let Ok(status) = text.trim().parse()
        {
            return Some(status);
        }
        std::thread::sleep(POLL);
    }
    None
}

impl Drop for Pane {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

/// The longest run of 20 ms blocks without `freq` between the first and last that have it.
fn longest_gap(samples: &[i16], rate: u32, freq: f32) -> (usize, usize) {
    let block = (rate / 50) as usize;
    let toned: Vec<bool> = samples.chunks_exact(block).map(|b| proto::codec::is_dominated_by(b, rate, freq)).collect();
    let (Some(first), Some(last)) = (toned.iter().position(|t| *t), toned.iter().rposition(|t| *t)) else {
        return (0, 0);
    };
    let mut longest = 0;
    let mut run = 0;
    for t in &toned[first..=last] {
        run = if *t { 0 } else { run + 1 };
        longest = longest.max(run);
    }
    (longest, toned.iter().filter(|t| **t).count())
}

/// The command line of the phone a person uses: registered as `user` (password `pw<user>`) on
/// `port`, and no flag asking for the screen: a terminal on stdout is enough.
fn interactive_args(registrar: &Registrar, user: &str, port: u16, extra: &[&str]) -> Vec<String> {
    let (registrar, bind, password) = (registrar.addr().to_string(), format!("127.0.0.1:{port}"), format!("pw{user}"));
    let args =
        ["--registrar", &registrar, "--domain", DOMAIN, "--bind", &bind, "--user", user, "--password", &password];
    args.iter().chain(extra).map(|s| s.to_string()).collect()
}

#[test]
fn a_person_dials_sees_the_call_connected_mutes_hangs_up_and_quits() {
    if !peers_ready(&[Peer::Tmux]) {
        return;
    }
    let registrar =
        Registrar::start(RegistrarConfig::new(DOMAIN).user("1001", "pw1001").user("1002", "pw1002").sip_trace())
            .unwrap_or_else(|e| panic!("start the registrar: {e}"));
    let dir = temp_dir("softphone-tui-").unwrap_or_else(|e| panic!("{e}"));
    let recording = dir.path().join("b.wav");
    let b_extra = ["--auto-answer", "--duration", "40", "--audio-out", recording.to_str().unwrap_or_default()];
    let b_args = voip_tests::softphone::phone_args(registrar.addr(), DOMAIN, "1002", &b_extra)
        .unwrap_or_else(|e| panic!("softphone arguments: {e}"));
    let mut b = Softphone::start("b", dir.path(), &b_args).unwrap_or_else(|e| panic!("start softphone B: {e}"));
    b.wait_for_event("registered", Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));

    let a_port = free_port().unwrap_or_else(|e| panic!("{e}"));
    let a_args = interactive_args(&registrar, "1001", a_port, &["--audio-in", "tone:1000"]);
    let exe = softphone_exe().unwrap_or_else(|e| panic!("{e}"));
    let status_file = dir.path().join("a.status");
    let a = Pane::start(&exe, &a_args, &status_file);
    let context = |a: &Pane, b: &Softphone| format!("A's screen:\n{}\nB:\n{}", a.screen(), b.output());

    // Registered: the phone says so with the time left, with no flag asking for the screen.
    a.wait_for("the registration", |s| s.contains("sip:1001@voip.test via") && s.contains("registered, expires in"));

    // d opens the command line with "dial "; the extension and Enter place the call.
    a.type_text("d");
    a.wait_for("the command line", |s| s.contains("> dial"));
    a.type_text("1002");
    a.press("Enter");
    let screen = a.wait_for("the connected call", |s| s.contains(" CONNECTED ") && s.contains("codec  opus"));
    assert!(screen.contains("peer   sip:1002@voip.test"), "{}", context(&a, &b));
    let answered = b.wait_for_event("answered", Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e}"));
    assert!(answered.contains(r#""codec":"opus""#), "B agrees on opus: {answered}");
    // Our tone moves the input meter; B sends silence, so the output meter reads silent.
    let screen = a.wait_for("the input level", |s| s.lines().any(|l| l.contains("│in ") && l.contains("dBFS")));
    assert!(screen.lines().any(|l| l.contains("│out ") && l.contains("silent")), "{}", context(&a, &b));
    let screen = a.wait_for("the media counters", |s| s.contains("jitter ") && s.contains(" sent, "));
    assert!(screen.contains("loss      0 (0.0 %)"), "no loss on loopback\n{}", context(&a, &b));

    // m mutes: the screen says so, and B hears silence until m again.
    std::thread::sleep(Duration::from_millis(1500));
    a.type_text("m");
    a.wait_for("muted", |s| s.contains("MUTED"));
    let muted_at = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    a.type_text("m");
    a.wait_for("unmuted", |s| !s.contains("MUTED") && s.contains("unmuted"));
    let muted_for = muted_at.elapsed();
    std::thread::sleep(Duration::from_millis(1500));

    // h hangs up: A is idle again and B heard a BYE.
    a.type_text("h");
    a.wait_for("the call ended", |s| s.contains("call ended: local") && s.contains(" IDLE "));
    let b_end = b.wait_for_event("hung_up", Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e}"));
    assert!(b_end.contains(r#""reason":"remote""#), "B: {b_end}\n{}", context(&a, &b));
    let b_status = b.wait(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    assert!(b_status.success(), "B's call completed: {b_status}");

    // A typed mistake is answered on screen and changes nothing.
    a.type_text(":");
    a.type_text("hold on");
    a.press("Enter");
    a.wait_for("the refusal", |s| s.contains("hold takes no argument: remove \"on\""));

    // q quits: exit status 0, the terminal's own screen back, the registration removed.
    a.type_text("q");
    let status = exit_status(&status_file, Duration::from_secs(10));
    let after = a.screen();
    assert_eq!(status, Some(0), "A exits 0 after quitting\n{after}");
    assert!(!after.contains("Registration") && !after.contains("Command"), "the alternate screen is left:\n{after}");
    let unregister = format!("<sip:1001@127.0.0.1:{a_port}>;expires=0");
    assert!(registrar.log().contains(&unregister), "A removed its binding on the way out\n{}", registrar.log_tail(60));

    // B's recording: our tone, a silent stretch as long as the mute, then the tone again.
    let (rate, samples) = read_wav(&recording).unwrap_or_else(|e| panic!("{e}"));
    let (toned, blocks) = tone_blocks(&samples, rate, 1000.0);
    let (gap, _) = longest_gap(&samples, rate, 1000.0);
    let gap_ms = gap as u128 * 20;
    let muted_ms = muted_for.as_millis();
    eprintln!("muted for {muted_ms} ms; B heard {gap_ms} ms of silence; {toned} of {blocks} blocks toned");
    assert!(
        gap_ms + 400 >= muted_ms && gap_ms <= muted_ms + 400,
        "B heard {gap_ms} ms of silence inside the tone for a {muted_ms} ms mute ({toned} of {blocks} blocks toned)"
    );
    assert!(toned >= 100, "B heard our tone before and after the mute: {toned} of {blocks} blocks");
}

#[test]
fn an_incoming_call_rings_on_screen_and_r_turns_it_away_with_603() {
    if !peers_ready(&[Peer::Tmux]) {
        return;
    }
    let registrar = Registrar::start(RegistrarConfig::new(DOMAIN).user("1001", "pw1001").user("1002", "pw1002"))
        .unwrap_or_else(|e| panic!("start the registrar: {e}"));
    let dir = temp_dir("softphone-tui-").unwrap_or_else(|e| panic!("{e}"));
    let a_port = free_port().unwrap_or_else(|e| panic!("{e}"));
    let status_file = dir.path().join("a.status");
    let exe = softphone_exe().unwrap_or_else(|e| panic!("{e}"));
    let a = Pane::start(&exe, &interactive_args(&registrar, "1001", a_port, &[]), &status_file);
    a.wait_for("the registration", |s| s.contains("registered, expires in"));

    let b_args = voip_tests::softphone::phone_args(registrar.addr(), DOMAIN, "1002", &["--dial", "1001"])
        .unwrap_or_else(|e| panic!("softphone arguments: {e}"));
    let mut b = Softphone::start("b", dir.path(), &b_args).unwrap_or_else(|e| panic!("start softphone B: {e}"));

    // The call rings on screen: the box says who calls and how to answer.
    let screen = a.wait_for("the incoming call", |s| s.contains(" INCOMING ") && s.contains("a answers, r rejects"));
    assert!(screen.contains("peer   <sip:1002@voip.test>"), "{screen}");
    b.wait_for_event("ringing", Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e}"));

    // r declines it: 603 at the caller, A idle again.
    a.type_text("r");
    a.wait_for("the call gone", |s| s.contains(" IDLE ") && s.contains("call ended"));
    let b_end = b.wait_for_event("hung_up", Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e}"));
    assert!(b_end.contains(r#""reason":"rejected","status":603"#), "B: {b_end}\n{}", b.output());
    let b_status = b.wait(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b_status.code(), Some(1), "B's call failed as it should: {b_status}");
    assert!(b.event("answered").is_none(), "the call was never answered\n{}", b.output());

    // Answering now finds no call, and says so.
    a.type_text("a");
    a.wait_for("the refusal", |s| s.contains("cannot answer: there is no call to act on"));
    a.type_text("q");
    assert_eq!(exit_status(&status_file, Duration::from_secs(10)), Some(0), "{}", a.screen());
}
