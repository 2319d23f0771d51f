//! Building the workspace's binaries from a test: the same profile as the running test, the
//! executable path as cargo reports it.

use crate::{HarnessError, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The cargo profile that built the running test executable.
fn current_profile() -> String {
    let from_path = std::env::current_exe().ok().and_then(|exe| {
        let deps = exe.parent()?;
        let profile_dir = if deps.file_name()? == "deps" { deps.parent()? } else { deps };
        Some(profile_dir.file_name()?.to_string_lossy().into_owned())
    });
    match from_path.as_deref() {
        Some("debug") => "dev".to_owned(),
        Some(name) if !name.is_empty() => name.to_owned(),
        _ if cfg!(debug_assertions) => "dev".to_owned(),
        _ => "release".to_owned(),
    }
}

/// Runs `cargo build -p <binary>` with the running test's profile and returns the executable
/// cargo reports, so `CARGO_TARGET_DIR` is honoured.
pub(crate) fn workspace_binary(binary: &'static str) -> Result<PathBuf> {
    let workspace = crate::crate_dir().parent().map(Path::to_path_buf).unwrap_or_else(crate::crate_dir);
    let output = Command::new(env!("CARGO"))
        .current_dir(&workspace)
        .args(["build", "--quiet", "-p", binary, "--bin", binary])
        .args(["--profile", &current_profile()])
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| HarnessError::io(format!("run cargo to build {binary}"), source))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(HarnessError::Build {
            binary,
            status: output.status,
            output: format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)),
        });
    }
    stdout
        .lines()
        .filter(|line| line.contains("\"reason\":\"compiler-artifact\""))
        .filter_map(|line| json_string_field(line, "executable"))
        .map(PathBuf::from)
        .find(|exe| exe.file_name().is_some_and(|name| name == binary))
        .ok_or(HarnessError::NoExecutable { binary })
}

/// The value of the string field `name` in one line of cargo's JSON output.
/// Paths never hold quotes here; a backslash escape is undone.
pub(crate) fn json_string_field(line: &str, name: &str) -> Option<String> {
    let start = line.find(&format!("\"{name}\":\""))? + name.len() + 4;
    let rest = line.get(start..)?;
    let mut value = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(value),
            '\\' => value.push(chars.next()?),
            c => value.push(c),
        }
    }
    None
}
