//! `berth exec` in containers with a TTY, against the real engine: under
//! a pseudo-terminal (util-linux `script`) the command gets a TTY of the
//! caller's size; `-t` forces one; the exit code passes through.

use crate::docker::image;
use crate::support::{Test, berth_bin};

/// A running service to exec into.
fn stack() -> Test {
    Test::new().compose(&format!(
        "services:\n  web:\n    image: {}\n    command: [\"sleep\", \"300\"]\n    init: true\n    stop_grace_period: 1s\n",
        image()
    ))
}

#[test]
fn exec_from_a_terminal_gets_a_tty_of_the_terminals_size_and_passes_the_exit_code() {
    let t = stack();
    let _stack = t.up_detached();
    // The terminal `script` makes is 45 rows by 123 columns; the command
    // waits (at most 5 s) for the engine to size its TTY the same.
    let inner = format!(
        "stty rows 45 cols 123; {} exec web -- sh -c 'for i in $(seq 100); do [ \"$(stty size)\" = \"45 123\" ] && break; sleep 0.05; done; tty; stty size; exit 7'",
        berth_bin().display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .current_dir(t.dir())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script runs (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "{text}");
    assert!(text.contains("/dev/pts/"), "no TTY: {text:?}");
    assert!(
        text.contains("45 123\r\n"),
        "not the terminal's size: {text:?}"
    );
}

#[test]
fn exec_t_allocates_a_tty_for_piped_input_and_exec_without_one_has_none() {
    let t = stack();
    let _stack = t.up_detached();
    let mut forced = std::process::Command::new(berth_bin())
        .args(["exec", "-t", "web", "--", "sh", "-c"])
        .arg("test -t 0 && read line && echo got $line; exit 4")
        .current_dir(t.dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut forced.stdin.take().unwrap(), b"typed\n").unwrap();
    let out = forced.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{text}");
    // A TTY's line discipline: the echo of what was typed, then CR LF.
    assert!(text.ends_with("got typed\r\n"), "{text:?}");
    // Not a terminal, no -t: plain pipes, no carriage returns.
    t.run_args(["exec", "web", "--", "sh", "-c", "test -t 0 || echo no tty"])
        .success()
        .stdout_is("no tty\n");
}

#[test]
fn exec_with_a_tty_follows_the_terminal_when_it_is_resized() {
    let t = stack();
    let _stack = t.up_detached();
    // Under `script`: berth in the background on the terminal, its output
    // in a file; once the command saw the first size, the terminal is
    // resized and the command waits (at most 5 s) to see the new one.
    let inner = format!(
        "stty rows 45 cols 123; {berth} exec web -- sh -c 'for i in $(seq 100); do [ \"$(stty size)\" = \"45 123\" ] && break; sleep 0.05; done; echo sized; for i in $(seq 100); do [ \"$(stty size)\" = \"50 100\" ] && break; sleep 0.05; done; stty size' </dev/tty >out 2>&1 & for i in $(seq 200); do grep -q sized out && break; sleep 0.05; done; stty rows 50 cols 100; wait; cat out",
        berth = berth_bin().display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .current_dir(t.dir())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script runs (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout);
    // (The file's CR LF comes back through the terminal as CR CR LF.)
    let sized = text.find("sized\r").unwrap_or_else(|| panic!("{text:?}"));
    assert!(
        text[sized..].contains("\n50 100\r"),
        "not resized: {text:?}"
    );
}
