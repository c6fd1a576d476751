//! No input makes the export panic: every file the loader accepts, made
//! from the golden cases by dropping a line or by putting odd values in
//! place of others, exports or fails with an error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use berth_compose::LoadOptions;
use berth_kube::render::{Format, files, stream};
use berth_kube::{Options, export};

/// Values put in place of a line's value.
const ODD: &[&str] = &[
    "0",
    "-1",
    "4294967296",
    "99999999999999999999",
    "\"\"",
    "\"  \"",
    "\"0s\"",
    "\"1ns\"",
    "\"9999999h\"",
    "\"0.0001\"",
    "\"___\"",
    "\"ÄÖÜ_service.v2\"",
    "\"a/b/c\"",
    "[]",
    "{}",
    "null",
    "true",
];

/// Loads a text as a project in `dir` and exports it; only a panic fails.
fn try_export(dir: &Path, text: &str) -> bool {
    let mut load = LoadOptions::new(dir, Default::default());
    load.files = vec!["-".into()];
    load.stdin = Some(text.to_string());
    load.native_checks = false;
    let Ok(loaded) = berth_compose::load(&load) else {
        return false;
    };
    let mut options = Options::default();
    for s in loaded.project.services.keys() {
        options.images.insert(s.clone(), "x:1".into());
    }
    if let Ok(export) = export(&loaded.project, &options) {
        stream(&export.objects, Format::Yaml).unwrap();
        stream(&export.objects, Format::Json).unwrap();
        files(&export.objects, Format::Yaml).unwrap();
    }
    true
}

/// `key: value` lines get each odd value; every line is dropped once.
fn variants(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let mut dropped = lines.clone();
        dropped.remove(i);
        out.push(dropped.join("\n"));
        if let Some((key, value)) = line.split_once(": ")
            && !value.trim().is_empty()
        {
            for odd in ODD {
                let mut changed = lines.clone();
                let replaced = format!("{key}: {odd}");
                changed[i] = &replaced;
                out.push(changed.join("\n"));
            }
        }
    }
    out
}

#[test]
fn odd_variants_of_every_golden_file_never_panic() {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&cases)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    let (mut tried, mut loaded) = (0, 0);
    for dir in dirs {
        let Ok(text) = std::fs::read_to_string(dir.join("compose.yaml")) else {
            continue;
        };
        for variant in variants(&text) {
            tried += 1;
            if try_export(&dir, &variant) {
                loaded += 1;
            }
        }
    }
    println!("{tried} variants, {loaded} loaded and exported");
    assert!(loaded > 1000, "only {loaded} of {tried} variants loaded");
}
