//! Every config shipped in `deploy/` parses with the real config parser,
//! and its gates and file_events paths compile: an example that does not
//! work would be worse than none.

use std::path::{Path, PathBuf};

use sluice::config::Config;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Every `*.toml` under `deploy/`.
fn toml_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read deploy dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            toml_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "toml") {
            found.push(path);
        }
    }
}

/// The checks a config gets beyond parsing: what `sluice run` builds from
/// it at start-up, short of watching and binding.
fn check(config: &Config, name: &str) {
    sluice_ingest::gates::Gates::new(&config.gates)
        .unwrap_or_else(|e| panic!("{name}: gates: {e}"));
    if let Some(fim) = &config.sources.file_events {
        sluice_ingest::fim::FimRules::new(fim)
            .unwrap_or_else(|e| panic!("{name}: file_events: {e}"));
    }
    config
        .storage
        .fsync_policy()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
}

#[test]
fn every_example_config_parses() {
    let mut files = Vec::new();
    toml_files(&deploy_dir(), &mut files);
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "sluice.example.toml",
        "laptop.toml",
        "fleet.toml",
        "firehose-lab.toml",
        "container.toml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    for file in &files {
        let config = Config::load(file).unwrap_or_else(|e| panic!("{e}"));
        check(&config, &file.display().to_string());
    }
}

#[test]
fn the_examples_say_what_they_promise() {
    let load = |name: &str| Config::load(&deploy_dir().join("examples").join(name)).unwrap();
    let laptop = load("laptop.toml");
    assert_eq!(laptop.retention.max_age_days, Some(7));
    assert!(laptop.upload.url.is_none());
    let fleet = load("fleet.toml");
    assert!(fleet.upload.url.as_deref().unwrap().starts_with("s3://"));
    assert_eq!(fleet.upload.interval_seconds, 3600);
    let lab = load("firehose-lab.toml");
    assert!(lab.gates.open_events);
    assert!(lab.gates.global.rate.is_some());
    assert!(
        lab.sources
            .eslogger
            .event_names(lab.gates.open_events)
            .contains(&"open".to_string())
    );
    // Off loopback, a token is configured.
    let container = load("container.toml");
    assert!(container.server.token_file.is_some() && container.metrics.token_file.is_some());
}

/// The config embedded in the Kubernetes ConfigMap (`sluice.toml: |`).
#[test]
fn the_daemonset_config_map_parses() {
    let yaml = std::fs::read_to_string(deploy_dir().join("kubernetes/daemonset.yaml")).unwrap();
    let mut lines = yaml.lines();
    let header = lines
        .by_ref()
        .find(|l| l.trim_end().ends_with("sluice.toml: |"))
        .expect("a sluice.toml block in the ConfigMap");
    let key_indent = header.len() - header.trim_start().len();
    let mut block = String::new();
    let mut indent = None;
    for line in lines {
        if line.trim().is_empty() {
            block.push('\n');
            continue;
        }
        let this = line.len() - line.trim_start().len();
        if this <= key_indent {
            break;
        }
        let indent = *indent.get_or_insert(this);
        block.push_str(&line[indent.min(this)..]);
        block.push('\n');
    }
    let config = Config::parse(&block).unwrap_or_else(|e| panic!("{e}\n{block}"));
    check(&config, "daemonset.yaml");
    assert!(
        config.upload.url.is_some(),
        "the DaemonSet writes to an object store"
    );
    assert!(!config.metrics.listen.ip().is_loopback());
    assert!(config.metrics.token_file.is_some());
}
