//! The README's tour must run as written. This test reads README.md, runs
//! every `$ sluice …` command between the `tour:start` and `tour:end` markers
//! with the real binary (from the repository root, on a fresh data dir), and
//! compares the output line by line. In the README, `<...>` at the end of an
//! expected line matches whatever follows (paths and timings).

use std::path::Path;
use std::process::Command;

struct Step {
    command: String,
    expected: Vec<String>,
}

fn tour_steps(readme: &str) -> Vec<Step> {
    let start = readme
        .find("<!-- tour:start")
        .expect("README has a tour:start marker");
    let end = readme
        .find("<!-- tour:end -->")
        .expect("README has a tour:end marker");
    let mut steps: Vec<Step> = Vec::new();
    let mut in_console = false;
    for line in readme[start..end].lines() {
        if line.starts_with("```") {
            in_console = !in_console && line.trim() == "```console";
            continue;
        }
        if !in_console {
            continue;
        }
        if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step {
                command: command.to_string(),
                expected: Vec::new(),
            });
        } else if let Some(step) = steps.last_mut() {
            step.expected.push(line.to_string());
        }
    }
    steps
}

/// Splits a command line on spaces, keeping double-quoted words whole.
fn words(command: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in command.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    out.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(word);
    }
    out
}

fn matches(expected: &str, actual: &str) -> bool {
    match expected.strip_suffix("<...>") {
        Some(prefix) => actual.starts_with(prefix),
        None => expected == actual,
    }
}

#[test]
fn every_tour_command_prints_what_the_readme_shows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("read README.md");
    let steps = tour_steps(&readme);
    assert!(steps.len() >= 4, "the tour has an ingest and three queries");
    let data_dir = tempfile::tempdir().expect("tempdir");
    for step in &steps {
        let words = words(&step.command);
        assert_eq!(
            words[0], "sluice",
            "tour commands run sluice: {}",
            step.command
        );
        let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(&words[1..])
            .current_dir(&root)
            .env("SLUICE_DATA_DIR", data_dir.path())
            .output()
            .expect("run sluice");
        assert!(
            output.status.success(),
            "{} failed: {}",
            step.command,
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let actual: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            actual.len(),
            step.expected.len(),
            "{}\nexpected:\n{}\nactual:\n{stdout}",
            step.command,
            step.expected.join("\n")
        );
        for (want, got) in step.expected.iter().zip(&actual) {
            assert!(
                matches(want, got),
                "{}\nexpected line: {want}\nactual line:   {got}",
                step.command
            );
        }
    }
}

#[test]
fn words_keep_quoted_sql_whole() {
    assert_eq!(
        words(r#"sluice query "SELECT 'a b' FROM t""#),
        vec!["sluice", "query", "SELECT 'a b' FROM t"]
    );
}
