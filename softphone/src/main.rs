//! The terminal SIP phone. Not built yet: this binary only says so.

fn main() {
    eprintln!("softphone: not available yet; use any SIP phone (baresip, linphone) against the registrar");
    std::process::exit(2);
}
