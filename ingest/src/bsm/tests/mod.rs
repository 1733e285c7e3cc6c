//! Tests of the BSM decoder against real data: OpenBSM's reference tokens
//! and records with praudit's decodes of them, and a FreeBSD trail
//! (`../shared/data/bsm`, see its README).

mod damage;
mod reference;
mod rows;

use std::path::PathBuf;

/// `../shared/data/bsm/<rel>`.
fn data(rel: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/bsm"
    ))
    .join(rel)
}

fn read(rel: &str) -> Vec<u8> {
    let path = data(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The reference files of one kind (`_record` or `_token`), by name.
fn reference_files(kind: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data("openbsm-reference"))
        .expect("reference dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('_') && n.contains(kind))
        .collect();
    names.sort();
    names
}

/// The sections of a praudit decode file: `## <file>` then one line.
fn sections(rel: &str) -> Vec<(String, String)> {
    let text = String::from_utf8(read(rel)).expect("utf-8 decode file");
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(name) = line.strip_prefix("## ") {
            let body = lines
                .next()
                .unwrap_or_else(|| panic!("{rel}: {name} has no line"));
            out.push((name.to_string(), body.to_string()));
        }
    }
    out
}

/// The execve record of the FreeBSD trail: the one record that feeds a
/// table, used around damaged records.
fn execve_trail() -> Vec<u8> {
    read("trails/execve-long-args.trail")
}
