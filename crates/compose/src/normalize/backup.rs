//! `x-berth.backup` as written to [`BackupSettings`] and [`ServiceBackup`],
//! every error at its line: a schedule that is not a cron expression, a
//! recipient that is not an age one, a `keep` that would delete every
//! archive, empty commands, an `exclude` glob that does not parse, and
//! ways of making data consistent that exclude each other.

use std::path::Path;

use crate::backup::{BackupSettings, Dump, Hooks, ServiceBackup, looks_like_age_recipient, raw};
use crate::context::Ctx;
use crate::diag::{Diagnostic, DiagnosticKind};
use crate::yaml::{Node, from_node};

/// The project's `x-berth.backup` (`node` is the top-level `x-berth`).
pub(crate) fn project(
    ctx: &mut Ctx<'_>,
    node: &Node,
    dir: &Path,
    state_dir: &Path,
) -> BackupSettings {
    let mut settings = BackupSettings::defaults(state_dir);
    let Some(at) = node.get("backup") else {
        return settings;
    };
    let raw: raw::Project = match from_node(at) {
        Ok(r) => r,
        Err(e) => {
            super::bind_error(ctx, &["x-berth", "backup"], e, at.span);
            return settings;
        }
    };
    let mut error = |path: &[&str], message: String, help: &str| {
        let full = [&["backup"][..], path].concat();
        ctx.sink.push(
            Diagnostic::error(DiagnosticKind::InvalidValue, node.span_at(&full), message)
                .with_help(help),
        );
    };
    if let Some(d) = raw.dir {
        if d.trim().is_empty() {
            error(
                &["dir"],
                "x-berth.backup.dir is empty".into(),
                "name a directory, or leave `dir` out for <state_dir>/backups",
            );
        } else {
            settings.dir = crate::context::absolute(dir, Path::new(&d));
        }
    }
    let k = raw.keep;
    if !k.keeps_everything()
        && [k.last, k.daily, k.weekly]
            .iter()
            .flatten()
            .all(|n| *n == 0)
    {
        error(
            &["keep"],
            "x-berth.backup.keep keeps no archive: pruning would delete every one".into(),
            "keep at least one, e.g. `keep: {last: 7}`; leave `keep` out to keep them all",
        );
    }
    settings.keep = k;
    if let Some(s) = raw.schedule {
        match s.parse::<croner::Cron>() {
            Ok(_) => settings.schedule = Some(s),
            Err(e) => error(
                &["schedule"],
                format!("x-berth.backup.schedule: {s:?} is not a cron expression: {e}"),
                "write five fields, minute hour day-of-month month day-of-week, e.g. \"0 3 * * *\" for 03:00 every day",
            ),
        }
    }
    for (i, r) in raw.encrypt_to.iter().enumerate() {
        if !looks_like_age_recipient(r.trim()) {
            error(
                &["encrypt_to", &i.to_string()],
                format!("x-berth.backup.encrypt_to: {r:?} is not an age recipient"),
                "write the public key `age-keygen` prints: age1 followed by 58 characters",
            );
        }
    }
    settings.encrypt_to = raw
        .encrypt_to
        .into_iter()
        .map(|r| r.trim().to_string())
        .collect();
    settings
}

/// A service's `x-berth.backup` (`node` is the service's `x-berth`).
pub(crate) fn service(ctx: &mut Ctx<'_>, name: &str, node: &Node) -> ServiceBackup {
    let Some(at) = node.get("backup") else {
        return ServiceBackup::default();
    };
    let raw: raw::Service = match from_node(at) {
        Ok(r) => r,
        Err(e) => {
            super::bind_error(ctx, &["services", name, "x-berth", "backup"], e, at.span);
            return ServiceBackup::default();
        }
    };
    let place = format!("services.{name}.x-berth.backup");
    let dump = raw.dump.map(|d| dump(ctx, d, node, &place));
    let mut error = |kind: DiagnosticKind, path: &[&str], message: String, help: &str| {
        let full = [&["backup"][..], path].concat();
        ctx.sink
            .push(Diagnostic::error(kind, node.span_at(&full), message).with_help(help));
    };
    let hooks = Hooks {
        pre: raw.hooks.pre,
        post: raw.hooks.post,
    };
    for (key, text) in [("pre", &hooks.pre), ("post", &hooks.post)] {
        if text.as_ref().is_some_and(|t| t.trim().is_empty()) {
            error(
                DiagnosticKind::InvalidValue,
                &["hooks", key],
                format!("{place}.hooks.{key} is empty"),
                "write a command, or leave the hook out",
            );
        }
    }
    if raw.stop && dump.is_some() {
        error(
            DiagnosticKind::Conflict,
            &["stop"],
            format!(
                "{place}: `stop: true` and `dump` exclude each other: a dump runs in the running service"
            ),
            "keep `dump` for a database that can dump itself, or `stop` to archive its files at rest",
        );
    }
    if raw.stop && (hooks.pre.is_some() || hooks.post.is_some()) {
        error(
            DiagnosticKind::Conflict,
            &["stop"],
            format!(
                "{place}: `stop: true` and `hooks` exclude each other: hooks run in the running service"
            ),
            "use one way of making the data consistent",
        );
    }
    for (i, pattern) in raw.exclude.iter().enumerate() {
        if let Err(e) = crate::backup::exclude_glob(pattern) {
            error(
                DiagnosticKind::InvalidValue,
                &["exclude", &i.to_string()],
                format!("{place}.exclude: {pattern:?} is not a glob: {e}"),
                "globs are relative to each volume: `*.tmp` (any depth), `pg_wal/**`, `cache/*.bin`",
            );
        }
    }
    ServiceBackup {
        dump,
        stop: raw.stop,
        hooks,
        exclude: raw.exclude,
    }
}

/// `dump: {command, restore}`: neither empty (a missing one is the
/// schema's to report).
fn dump(ctx: &mut Ctx<'_>, d: raw::Dump, node: &Node, place: &str) -> Dump {
    let (command, restore) = (d.command, d.restore);
    for (key, text) in [("command", &command), ("restore", &restore)] {
        if text.as_ref().is_some_and(|t| t.trim().is_empty()) {
            ctx.sink.push(
                Diagnostic::error(
                    DiagnosticKind::InvalidValue,
                    node.span_at(&["backup", "dump", key]),
                    format!("{place}.dump.{key} is empty"),
                )
                .with_help("a dump needs both: `command` writes the data on stdout, `restore` reads it back on stdin"),
            );
        }
    }
    Dump {
        command: command.unwrap_or_default(),
        restore: restore.unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use crate::backup::Keep;

    use crate::testsupport::load_text as load;

    use crate::testsupport::load_errors as errors;

    const KEY: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

    #[test]
    fn backup_settings_are_read_with_defaults() {
        let text = format!(
            "services:\n  db:\n    command: [x]\n    x-berth:\n      backup:\n        dump: {{command: \"pg_dump -Fc\", restore: \"pg_restore -c\"}}\n        exclude: [\"*.tmp\", \"pg_wal/**\"]\nx-berth:\n  state_dir: st\n  backup:\n    dir: ./backups\n    keep: {{last: 7, daily: \"14\"}}\n    schedule: \"0 3 * * *\"\n    encrypt_to: [{KEY}]\n"
        );
        let loaded = load(&text).map_err(|d| d.render(false)).unwrap();
        let p = &loaded.project;
        let b = &p.settings.backup;
        assert_eq!(b.dir, p.directory.join("backups"));
        assert_eq!(
            b.keep,
            Keep {
                last: Some(7),
                daily: Some(14),
                weekly: None
            }
        );
        assert_eq!(b.schedule.as_deref(), Some("0 3 * * *"));
        assert_eq!(b.encrypt_to, [KEY]);
        let s = &p.services["db"].settings.backup;
        let dump = s.dump.as_ref().unwrap();
        assert_eq!(
            (dump.command.as_str(), dump.restore.as_str()),
            ("pg_dump -Fc", "pg_restore -c")
        );
        assert_eq!(s.exclude, ["*.tmp", "pg_wal/**"]);
        assert!(!s.stop);

        let plain = load("services:\n  a:\n    command: [x]\n").unwrap().project;
        let b = &plain.settings.backup;
        assert_eq!(b.dir, plain.settings.state_dir.join("backups"));
        assert!(b.keep.keeps_everything() && b.schedule.is_none() && b.encrypt_to.is_empty());
        assert_eq!(plain.services["a"].settings.backup, Default::default());
    }

    #[test]
    fn bad_project_backup_settings_are_errors_at_their_line() {
        let found = errors(
            "services:\n  a:\n    command: [x]\nx-berth:\n  backup:\n    keep: {last: 0}\n    schedule: \"61 * * * *\"\n    encrypt_to:\n      - age1nope\n",
        );
        let lines: Vec<u32> = found.iter().map(|f| f.0).collect();
        assert_eq!(lines, [6, 7, 9], "{found:#?}");
        assert_eq!(
            found[0].1,
            "x-berth.backup.keep keeps no archive: pruning would delete every one"
        );
        assert!(
            found[1]
                .1
                .starts_with("x-berth.backup.schedule: \"61 * * * *\" is not a cron expression"),
            "{found:#?}"
        );
        assert_eq!(
            found[2].1,
            "x-berth.backup.encrypt_to: \"age1nope\" is not an age recipient"
        );
        // Unknown keys, by the schema.
        let found =
            errors("services:\n  a:\n    command: [x]\nx-berth:\n  backup:\n    kept: {last: 1}\n");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].0, 6);
        assert!(found[0].1.contains("kept"), "{found:#?}");
    }

    #[test]
    fn bad_service_backup_settings_are_errors_at_their_line() {
        let found = errors(
            "services:\n  db:\n    command: [x]\n    x-berth:\n      backup:\n        dump: {command: \"pg_dump\", restore: \"\"}\n        stop: true\n        exclude: [\"a/[b\"]\n",
        );
        assert_eq!(
            found.iter().map(|f| f.0).collect::<Vec<_>>(),
            [6, 7, 8],
            "{found:#?}"
        );
        assert_eq!(
            found[0].1,
            "services.db.x-berth.backup.dump.restore is empty"
        );
        assert!(
            found[1]
                .1
                .contains("`stop: true` and `dump` exclude each other")
        );
        assert!(
            found[2]
                .1
                .starts_with("services.db.x-berth.backup.exclude: \"a/[b\" is not a glob")
        );
        let found = errors(
            "services:\n  db:\n    command: [x]\n    x-berth:\n      backup:\n        dump: {command: \"pg_dump\"}\n",
        );
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].1.contains("restore"), "{found:#?}");
    }

    #[test]
    fn exclude_globs_match_like_gitignore_names() {
        let m = |p: &str, path: &str| {
            crate::backup::exclude_glob(p)
                .unwrap()
                .compile_matcher()
                .is_match(path)
        };
        assert!(m("*.tmp", "a.tmp") && m("*.tmp", "x/y/a.tmp"));
        assert!(!m("*.tmp", "a.tmpx"));
        assert!(m("pg_wal/**", "pg_wal/0001") && m("pg_wal/**", "pg_wal/a/b"));
        assert!(!m("pg_wal/**", "base/pg_wal/1") && !m("pg_wal/**", "pg_wal"));
        assert!(m("cache/*.bin", "cache/a.bin") && !m("cache/*.bin", "cache/x/a.bin"));
        assert!(crate::backup::exclude_glob("").is_err());
    }
}
