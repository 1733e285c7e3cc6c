//! OCSF: sluice rows as Open Cybersecurity Schema Framework events.
//!
//! Security lakes (AWS Security Lake, and tools reading OCSF) want one event
//! class per source. The process tables become **Process Activity** (class
//! 1007), the file tables **File System Activity** (class 1001), both in the
//! System Activity category (1). The mapping is a SQL projection run by
//! DataFusion over the table, so what the README's mapping table says is what
//! this file's SQL does; every table of a class produces the same Arrow
//! schema (missing fields are typed NULLs), so one source's files can be read
//! as one table.
//!
//! `type_uid` is `class_uid * 100 + activity_id`, as OCSF defines it; `time` is
//! milliseconds since the epoch, from `time_ns` when the row has it (else
//! `time` seconds × 1000).

/// The OCSF schema version the projections follow.
pub const OCSF_VERSION: &str = "1.1.0";

/// An OCSF event class a table maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OcsfClass {
    /// Process Activity, class 1007.
    ProcessActivity,
    /// File System Activity, class 1001.
    FileSystemActivity,
}

impl OcsfClass {
    /// `class_uid`.
    pub fn uid(self) -> i32 {
        match self {
            OcsfClass::ProcessActivity => 1007,
            OcsfClass::FileSystemActivity => 1001,
        }
    }

    /// `class_name`.
    pub fn name(self) -> &'static str {
        match self {
            OcsfClass::ProcessActivity => "Process Activity",
            OcsfClass::FileSystemActivity => "File System Activity",
        }
    }

    /// The Security Lake custom source name for this class.
    pub fn source_name(self) -> &'static str {
        match self {
            OcsfClass::ProcessActivity => "sluice_process_activity",
            OcsfClass::FileSystemActivity => "sluice_file_activity",
        }
    }
}

/// The class `table` maps to, or `None` for tables OCSF mode does not export.
pub fn class_of(table: &str) -> Option<OcsfClass> {
    match table {
        "es_process_events" | "process_events" => Some(OcsfClass::ProcessActivity),
        "es_process_file_events" | "process_file_events" | "file_events" => {
            Some(OcsfClass::FileSystemActivity)
        }
        _ => None,
    }
}

/// How one table's columns fill the class's fields: SQL expressions over
/// the table, each already cast to the field's type.
struct Source {
    /// `CASE … END` giving `activity_id` (INT).
    activity: &'static str,
    /// The acting (OCSF "actor") process's pid.
    actor_pid: &'static str,
    /// The acting process's executable path (file events) or NULL.
    actor_path: &'static str,
    /// The subject process's pid (process events) or NULL.
    process_pid: &'static str,
    /// Its executable path.
    process_path: &'static str,
    /// Its command line.
    process_cmd_line: &'static str,
    /// Its working directory.
    process_cwd: &'static str,
    /// Its user id (TEXT, as OCSF's `user.uid` is a string).
    process_uid: &'static str,
    /// Its user name.
    process_user: &'static str,
    /// Its parent's pid.
    parent_pid: &'static str,
    /// The target file's path (file events).
    file_path: &'static str,
    /// The destination of a rename or link (file events).
    file_result_path: &'static str,
    /// The process's exit code (process events).
    exit_code: &'static str,
}

const NULL_BIGINT: &str = "CAST(NULL AS BIGINT)";
const NULL_TEXT: &str = "CAST(NULL AS VARCHAR)";
const NULL_INT: &str = "CAST(NULL AS INT)";

/// The mapping of each table (see the README's table).
fn source(table: &str) -> Option<Source> {
    Some(match table {
        "es_process_events" => Source {
            activity: "CASE event_type WHEN 'exec' THEN 1 WHEN 'fork' THEN 1 \
                       WHEN 'exit' THEN 2 ELSE 99 END",
            actor_pid: "CAST(parent AS BIGINT)",
            actor_path: NULL_TEXT,
            process_pid: "CAST(pid AS BIGINT)",
            process_path: "path",
            process_cmd_line: "cmdline",
            process_cwd: "cwd",
            process_uid: "CAST(uid AS VARCHAR)",
            process_user: "username",
            parent_pid: "CAST(parent AS BIGINT)",
            file_path: NULL_TEXT,
            file_result_path: NULL_TEXT,
            exit_code: "CAST(exit_code AS INT)",
        },
        "process_events" => Source {
            activity: "CASE WHEN syscall IN ('execve', 'exec', 'mac_execve', 'fexecve', \
                       'execveat', 'posix_spawn', 'fork', 'vfork', 'fork1', 'rfork', 'pdfork') \
                       THEN 1 WHEN syscall = 'exit' THEN 2 ELSE 99 END",
            actor_pid: "CAST(parent AS BIGINT)",
            actor_path: NULL_TEXT,
            process_pid: "CAST(pid AS BIGINT)",
            process_path: "path",
            process_cmd_line: "cmdline",
            process_cwd: "cwd",
            process_uid: "CAST(uid AS VARCHAR)",
            process_user: NULL_TEXT,
            parent_pid: "CAST(parent AS BIGINT)",
            file_path: NULL_TEXT,
            file_result_path: NULL_TEXT,
            exit_code: NULL_INT,
        },
        "es_process_file_events" => Source {
            activity: "CASE event_type WHEN 'create' THEN 1 WHEN 'link' THEN 1 \
                       WHEN 'clone' THEN 1 WHEN 'copyfile' THEN 1 WHEN 'write' THEN 3 \
                       WHEN 'truncate' THEN 3 WHEN 'close' THEN 3 WHEN 'exchangedata' THEN 3 \
                       WHEN 'unlink' THEN 4 WHEN 'rename' THEN 5 WHEN 'open' THEN 14 \
                       ELSE 99 END",
            actor_pid: "CAST(pid AS BIGINT)",
            actor_path: "path",
            process_pid: NULL_BIGINT,
            process_path: NULL_TEXT,
            process_cmd_line: NULL_TEXT,
            process_cwd: NULL_TEXT,
            process_uid: NULL_TEXT,
            process_user: NULL_TEXT,
            parent_pid: "CAST(parent AS BIGINT)",
            file_path: "filename",
            file_result_path: "dest_filename",
            exit_code: NULL_INT,
        },
        "process_file_events" => Source {
            activity: "CASE operation WHEN 'link' THEN 1 WHEN 'truncate' THEN 3 \
                       WHEN 'unlink' THEN 4 WHEN 'rename' THEN 5 WHEN 'chmod' THEN 7 \
                       WHEN 'chown' THEN 7 WHEN 'open' THEN 14 ELSE 99 END",
            actor_pid: "CAST(pid AS BIGINT)",
            actor_path: "executable",
            process_pid: NULL_BIGINT,
            process_path: NULL_TEXT,
            process_cmd_line: NULL_TEXT,
            process_cwd: NULL_TEXT,
            process_uid: NULL_TEXT,
            process_user: NULL_TEXT,
            parent_pid: "CAST(ppid AS BIGINT)",
            file_path: "path",
            file_result_path: "dest_path",
            exit_code: NULL_INT,
        },
        "file_events" => Source {
            activity: "CASE action WHEN 'CREATED' THEN 1 WHEN 'ACCESSED' THEN 2 \
                       WHEN 'UPDATED' THEN 3 WHEN 'DELETED' THEN 4 WHEN 'MOVED_FROM' THEN 5 \
                       WHEN 'MOVED_TO' THEN 5 WHEN 'ATTRIBUTES_MODIFIED' THEN 6 \
                       WHEN 'OPENED' THEN 14 ELSE 99 END",
            actor_pid: NULL_BIGINT,
            actor_path: NULL_TEXT,
            process_pid: NULL_BIGINT,
            process_path: NULL_TEXT,
            process_cmd_line: NULL_TEXT,
            process_cwd: NULL_TEXT,
            process_uid: NULL_TEXT,
            process_user: NULL_TEXT,
            parent_pid: NULL_BIGINT,
            file_path: "target_path",
            file_result_path: NULL_TEXT,
            exit_code: NULL_INT,
        },
        _ => return None,
    })
}

/// `activity_name` of each `activity_id` a class uses.
fn activity_names(class: OcsfClass) -> &'static [(i32, &'static str)] {
    match class {
        OcsfClass::ProcessActivity => &[(1, "Launch"), (2, "Terminate")],
        OcsfClass::FileSystemActivity => &[
            (1, "Create"),
            (2, "Read"),
            (3, "Update"),
            (4, "Delete"),
            (5, "Rename"),
            (6, "Set Attributes"),
            (7, "Set Security"),
            (14, "Open"),
        ],
    }
}

/// The SELECT list that turns a row of `table` into an OCSF event of its
/// class, for a query `SELECT <list> FROM table …`; `None` when the table has
/// no OCSF class. `hostname` must be a plain name (no quotes).
pub fn projection(table: &str, hostname: &str) -> Option<String> {
    let class = class_of(table)?;
    let s = source(table)?;
    let activity = format!("CAST({} AS INT)", s.activity);
    let mut activity_name = String::from("CASE ");
    activity_name.push_str(&activity);
    for (id, name) in activity_names(class) {
        activity_name.push_str(&format!(" WHEN {id} THEN '{name}'"));
    }
    activity_name.push_str(" ELSE 'Other' END");
    // Every text field is cast to Utf8 (DataFusion would make some of them
    // Utf8View), so all tables of a class write one Parquet schema.
    let text = |e: &str| format!("arrow_cast({e}, 'Utf8')");
    let basename = |e: &str| text(&format!("regexp_replace({e}, '^.*/', '')"));
    let class_fields = match class {
        OcsfClass::ProcessActivity => format!(
            "named_struct('pid', {pid}, 'cmd_line', {cmd}, 'cwd', {cwd}, \
             'file', named_struct('path', {path}, 'name', {name}), \
             'user', named_struct('uid', {uid}, 'name', {user}), \
             'parent_process', named_struct('pid', {ppid})) AS process, \
             {exit} AS exit_code",
            pid = s.process_pid,
            cmd = text(s.process_cmd_line),
            cwd = text(s.process_cwd),
            path = text(s.process_path),
            name = basename(s.process_path),
            uid = text(s.process_uid),
            user = text(s.process_user),
            ppid = s.parent_pid,
            exit = s.exit_code,
        ),
        OcsfClass::FileSystemActivity => format!(
            "named_struct('path', {path}, 'name', {name}) AS file, \
             CASE WHEN {dest} IS NULL OR {dest} = '' THEN NULL \
             ELSE named_struct('path', {dest}, 'name', {dest_name}) END AS file_result",
            path = text(s.file_path),
            name = basename(s.file_path),
            dest = text(s.file_result_path),
            dest_name = basename(s.file_result_path),
        ),
    };
    Some(format!(
        "CAST({class_uid} AS INT) AS class_uid, '{class_name}' AS class_name, \
         CAST(1 AS INT) AS category_uid, 'System Activity' AS category_name, \
         {activity} AS activity_id, {activity_name} AS activity_name, \
         CAST({class_uid} AS BIGINT) * 100 + {activity} AS type_uid, \
         CAST(1 AS INT) AS severity_id, 'Informational' AS severity, \
         COALESCE(CAST(time_ns AS BIGINT) / 1000000, CAST(time AS BIGINT) * 1000) AS time, \
         named_struct('version', '{OCSF_VERSION}', \
           'product', named_struct('name', 'sluice', 'vendor_name', 'sluice'), \
           'log_name', '{table}', 'uid', eid) AS metadata, \
         named_struct('hostname', '{hostname}') AS device, \
         named_struct('process', named_struct('pid', {actor_pid}, \
           'file', named_struct('path', {actor_path}, 'name', {actor_name}), \
           'parent_process', named_struct('pid', {parent_pid}))) AS actor, \
         {class_fields}",
        class_uid = class.uid(),
        class_name = class.name(),
        actor_pid = s.actor_pid,
        actor_path = text(s.actor_path),
        actor_name = basename(s.actor_path),
        parent_pid = s.parent_pid,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mapped_table_has_a_projection_and_others_none() {
        for def in sluice_schemas::TABLES {
            assert_eq!(
                projection(def.name, "h").is_some(),
                class_of(def.name).is_some(),
                "{}",
                def.name
            );
        }
        assert_eq!(class_of("socket_events"), None);
    }

    /// Every class's tables produce one schema, so a Security Lake source
    /// (one class) reads as one table.
    #[tokio::test]
    async fn tables_of_one_class_share_one_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = crate::catalog::open_catalog(dir.path()).expect("catalog");
        let mut schemas: std::collections::BTreeMap<OcsfClass, Vec<(String, String)>> =
            Default::default();
        for def in sluice_schemas::TABLES {
            let Some(list) = projection(def.name, "h") else {
                continue;
            };
            let df = ctx
                .sql(&format!("SELECT {list} FROM {}", def.name))
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", def.name));
            let schema = format!("{:?}", df.schema().as_arrow().fields());
            schemas
                .entry(class_of(def.name).expect("class"))
                .or_default()
                .push((def.name.to_string(), schema));
        }
        for (class, tables) in schemas {
            for (table, schema) in &tables[1..] {
                assert_eq!(
                    schema, &tables[0].1,
                    "{class:?}: {table} vs {}",
                    tables[0].0
                );
            }
        }
    }
}
