//! Logs: the terminal stream, rotated files, bytes that are not UTF-8,
//! partial lines, a terminal that goes away, and `berth logs` from files.

use std::time::Duration;

use crate::support::{Test, eventually};

const SEC: Duration = Duration::from_secs(1);

fn log_files(t: &Test, name: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(t.dir().join(".berth/logs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(name))
        .collect();
    files.sort();
    files
}

#[test]
fn files_rotate_by_max_size_and_max_file() {
    let t = Test::new().compose(
        r#"
services:
  chatty:
    command: ["sh", "-c", "i=0; while [ $$i -lt 3000 ]; do echo \"line $$i of a service that talks a lot, padded to about a hundred bytes....\"; i=$$((i+1)); done"]
    logging:
      driver: json-file
      options: {max-size: 50k, max-file: "3"}
"#,
    );
    t.run_args(["up"]).success();
    let files = log_files(&t, "chatty-1.log");
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec!["chatty-1.log", "chatty-1.log.1", "chatty-1.log.2"]
    );
    for f in &files {
        let size = std::fs::metadata(f).unwrap().len();
        assert!(size <= 52 * 1024, "{} is {size} bytes", f.display());
    }
    // The newest lines are kept, and `logs` reads them back with the stack down.
    let tail = t
        .run_args(["logs", "--tail", "3", "chatty"])
        .success()
        .stdout();
    let lines: Vec<&str> = tail.lines().collect();
    assert_eq!(lines.len(), 3, "{tail}");
    assert!(
        lines[1].starts_with("chatty-1  | line 2999 of a service"),
        "{tail}"
    );
    assert_eq!(
        lines[2], "chatty-1 exited with code 0",
        "berth's own lines are kept too"
    );
}

#[test]
fn bytes_that_are_not_utf8_and_partial_lines_survive_in_the_files() {
    let t = Test::new().compose(
        "services:\n  odd:\n    command: [sh, -c, \"printf 'bad \\\\377\\\\376 bytes\\\\nno newline at the end'\"]\n",
    );
    t.run_args(["up"]).success();
    let raw = std::fs::read(t.dir().join(".berth/logs/odd-1.log")).unwrap();
    let find = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    assert!(
        find(b" stdout F bad \xff\xfe bytes\n"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    assert!(
        find(b" stdout P no newline at the end\n"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    // The terminal view shows them lossily, and JSON stays valid.
    let json = t.run_args(["logs", "--json", "odd"]).success().stdout();
    for line in json.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["service"], "odd");
    }
    assert!(json.contains("bad \u{fffd}\u{fffd} bytes"), "{json}");
}

#[test]
fn a_closed_terminal_does_not_stop_services_and_files_get_everything() {
    let t = Test::new().compose(
        "services:\n  loud:\n    command: [sh, -c, 'seq 1 200000; touch finished; exec sleep 60']\n",
    );
    let mut child = t
        .command()
        .arg("up")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the terminal goes away at once
    assert!(
        eventually(20 * SEC, || t.dir().join("finished").exists()),
        "the service was blocked"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "berth must keep running"
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let text =
        String::from_utf8_lossy(&std::fs::read(t.dir().join(".berth/logs/loud-1.log")).unwrap())
            .into_owned();
    let numbers: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split(" stdout F ").nth(1))
        .collect();
    assert_eq!(numbers.len(), 200_000);
    assert_eq!(numbers[199_999], "200000");
}

#[test]
fn terminal_lines_are_prefixed_padded_and_optionally_timestamped_or_json() {
    let t = Test::new().compose(
        "services:\n  a:\n    command: [sh, -c, 'echo from a']\n  longer-name:\n    command: [sh, -c, 'echo from longer']\n",
    );
    let plain = t.run_args(["up"]).success().stdout();
    assert!(
        plain.lines().any(|l| l == "a-1            | from a"),
        "{plain}"
    );
    assert!(
        plain.lines().any(|l| l == "longer-name-1  | from longer"),
        "{plain}"
    );
    let stamped = t.run_args(["up", "-t"]).success().stdout();
    let line = stamped.lines().find(|l| l.contains("from a")).unwrap();
    let after = line.split("| ").nth(1).unwrap();
    assert!(
        humantime::parse_rfc3339(after.split(' ').next().unwrap()).is_ok(),
        "{line}"
    );
    let json = t.run_args(["up", "--json"]).success().stdout();
    let rec: serde_json::Value = json
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["line"] == "from a")
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(
        (
            rec["service"].as_str(),
            rec["replica"].as_u64(),
            rec["stream"].as_str()
        ),
        (Some("a"), Some(1), Some("stdout"))
    );
}

#[test]
fn logs_since_filters_by_time() {
    let t = Test::new().compose("services:\n  a:\n    command: [sh, -c, 'echo early']\n");
    t.run_args(["up"]).success();
    assert!(
        t.run_args(["logs", "a"])
            .success()
            .stdout()
            .contains("early")
    );
    assert!(
        !t.run_args(["logs", "--since", "2099-01-01T00:00:00Z", "a"])
            .success()
            .stdout()
            .contains("early")
    );
    t.run_args(["logs", "nope"])
        .code(2)
        .stderr_has("no such service: nope");
}
