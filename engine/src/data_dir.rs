//! Where sluice keeps its data when nobody says otherwise.
//!
//! Every subcommand that reads or writes tables takes `--data-dir DIR`. Without
//! it, the directory comes from [`default_data_dir`], in this order:
//!
//! 1. `$SLUICE_DATA_DIR`, if set and not empty;
//! 2. on macOS, `~/Library/Application Support/sluice`, where macOS apps keep
//!    the data they own;
//! 3. elsewhere, `$XDG_DATA_HOME/sluice` if `XDG_DATA_HOME` is an absolute
//!    path (the XDG spec says to ignore a relative one), else
//!    `~/.local/share/sluice`;
//! 4. `./sluice-data` when no home directory is known (a bare container or a
//!    service account without one), so sluice still runs.
//!
//! The shell's history lives outside the data dir (see [`history_file`]), so
//! that deleting or moving the data leaves the history alone.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The environment variable that names the data dir.
pub const DATA_DIR_ENV: &str = "SLUICE_DATA_DIR";

/// The environment variable that names the shell's history file.
pub const HISTORY_ENV: &str = "SLUICE_HISTORY";

/// The data dir used when `--data-dir` is not given; see the module docs for
/// the order of precedence.
pub fn default_data_dir() -> PathBuf {
    resolve_data_dir(
        |name| std::env::var_os(name),
        std::env::home_dir(),
        cfg!(target_os = "macos"),
    )
}

/// The data dir named by `--data-dir`, or the default one.
pub fn data_dir_or_default(flag: Option<&Path>) -> PathBuf {
    match flag {
        Some(dir) => dir.to_path_buf(),
        None => default_data_dir(),
    }
}

/// The file the shell keeps its history in: `$SLUICE_HISTORY` if set and not
/// empty, else `~/.sluice_history`; `None` when there is no home directory, in
/// which case the shell keeps no history rather than litter the working
/// directory.
pub fn history_file() -> Option<PathBuf> {
    resolve_history_file(|name| std::env::var_os(name), std::env::home_dir())
}

/// [`default_data_dir`] with the environment, the home directory and the OS
/// passed in, so that every branch can be tested on any host.
fn resolve_data_dir(
    env: impl Fn(&str) -> Option<OsString>,
    home: Option<PathBuf>,
    macos: bool,
) -> PathBuf {
    if let Some(dir) = non_empty(env(DATA_DIR_ENV)) {
        return PathBuf::from(dir);
    }
    if !macos
        && let Some(xdg) = non_empty(env("XDG_DATA_HOME")).map(PathBuf::from)
        && xdg.is_absolute()
    {
        return xdg.join("sluice");
    }
    match home.filter(|h| !h.as_os_str().is_empty()) {
        Some(home) if macos => home.join("Library/Application Support/sluice"),
        Some(home) => home.join(".local/share/sluice"),
        None => PathBuf::from("sluice-data"),
    }
}

/// [`history_file`] with the environment and home directory passed in.
fn resolve_history_file(
    env: impl Fn(&str) -> Option<OsString>,
    home: Option<PathBuf>,
) -> Option<PathBuf> {
    if let Some(file) = non_empty(env(HISTORY_ENV)) {
        return Some(PathBuf::from(file));
    }
    home.filter(|h| !h.as_os_str().is_empty())
        .map(|h| h.join(".sluice_history"))
}

fn non_empty(value: Option<OsString>) -> Option<OsString> {
    value.filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn env_var_wins_over_everything() {
        let env = env_of(&[(DATA_DIR_ENV, "/srv/sluice"), ("XDG_DATA_HOME", "/xdg")]);
        let home = Some(PathBuf::from("/home/a"));
        assert_eq!(
            resolve_data_dir(&env, home.clone(), true),
            PathBuf::from("/srv/sluice")
        );
        assert_eq!(
            resolve_data_dir(&env, home, false),
            PathBuf::from("/srv/sluice")
        );
    }

    #[test]
    fn empty_env_var_is_ignored() {
        let env = env_of(&[(DATA_DIR_ENV, "")]);
        assert_eq!(
            resolve_data_dir(env, Some(PathBuf::from("/home/a")), false),
            PathBuf::from("/home/a/.local/share/sluice")
        );
    }

    #[test]
    fn macos_uses_application_support_and_ignores_xdg() {
        let env = env_of(&[("XDG_DATA_HOME", "/xdg")]);
        assert_eq!(
            resolve_data_dir(env, Some(PathBuf::from("/Users/a")), true),
            PathBuf::from("/Users/a/Library/Application Support/sluice")
        );
    }

    #[test]
    fn other_unixes_use_xdg_data_home_when_absolute() {
        let home = Some(PathBuf::from("/home/a"));
        let absolute = env_of(&[("XDG_DATA_HOME", "/xdg")]);
        assert_eq!(
            resolve_data_dir(absolute, home.clone(), false),
            PathBuf::from("/xdg/sluice")
        );
        let relative = env_of(&[("XDG_DATA_HOME", "rel")]);
        assert_eq!(
            resolve_data_dir(relative, home, false),
            PathBuf::from("/home/a/.local/share/sluice")
        );
    }

    #[test]
    fn no_home_falls_back_to_the_working_directory() {
        assert_eq!(
            resolve_data_dir(env_of(&[]), None, true),
            PathBuf::from("sluice-data")
        );
        assert_eq!(
            resolve_data_dir(env_of(&[]), None, false),
            PathBuf::from("sluice-data")
        );
    }

    #[test]
    fn flag_overrides_default() {
        assert_eq!(
            data_dir_or_default(Some(Path::new("/d"))),
            PathBuf::from("/d")
        );
    }

    #[test]
    fn history_file_prefers_env_then_home_then_nothing() {
        let env = env_of(&[(HISTORY_ENV, "/tmp/h")]);
        assert_eq!(
            resolve_history_file(env, None),
            Some(PathBuf::from("/tmp/h"))
        );
        assert_eq!(
            resolve_history_file(env_of(&[]), Some(PathBuf::from("/home/a"))),
            Some(PathBuf::from("/home/a/.sluice_history"))
        );
        assert_eq!(
            resolve_history_file(env_of(&[(HISTORY_ENV, "")]), None),
            None
        );
    }
}
