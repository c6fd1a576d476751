//! The processes of this machine, from `/proc`, and signals to them.

use std::io;

/// Sends a signal to a process group; a group that is already gone is fine.
pub fn killpg(pgid: u32, signal: i32) -> io::Result<()> {
    let pgid = i32::try_from(pgid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    if pgid <= 1 {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let sig = nix::sys::signal::Signal::try_from(signal)
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    match nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// Sends a signal to one process; one that is already gone is fine.
pub fn kill(pid: u32, signal: i32) -> io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let sig = nix::sys::signal::Signal::try_from(signal)
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// Every live process (zombies left out) with its `/proc/<pid>/stat`.
pub fn processes() -> impl Iterator<Item = (u32, ProcStat)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
        })
        .filter_map(|pid| read_stat(pid).map(|stat| (pid, stat)))
        .filter(|(_, stat)| stat.state != 'Z')
}

/// The fields of `/proc/<pid>/stat` berth uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// `R`, `S`, `Z`...
    pub state: char,
    pub ppid: u32,
    pub pgrp: u32,
    pub session: u32,
    pub utime: u64,
    pub stime: u64,
    pub rss_pages: u64,
    /// When it started, in clock ticks since boot (to tell a reused pid).
    pub start_time: u64,
}

/// Reads `/proc/<pid>/stat` (the command name may contain spaces and
/// parentheses; fields are counted after the last `)`).
pub fn read_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): index 0 = state, 1 = ppid, 2 = pgrp,
    // 3 = session, 11 = utime, 12 = stime, 19 = starttime, 21 = rss.
    Some(ProcStat {
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        session: f.get(3)?.parse().ok()?,
        utime: f.get(11)?.parse().ok()?,
        stime: f.get(12)?.parse().ok()?,
        rss_pages: f.get(21)?.parse().ok()?,
        start_time: f.get(19)?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let line = "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 100 1000000 250 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            (s.ppid, s.pgrp, s.session, s.utime, s.stime, s.rss_pages),
            (1, 1234, 1234, 7, 3, 250)
        );
    }
}
