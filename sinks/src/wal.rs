//! The write-ahead log: what makes an acknowledged batch survive `kill -9`.
//!
//! Every batch handed to [`crate::Storage`] is first appended here, as one
//! framed record, and only then acknowledged. The log lives in
//! `DATA_DIR/.wal/` as numbered segment files, `<first_seq>.wal`, each a
//! sequence of records:
//!
//! ```text
//! magic "SLW1" | payload_len u32 | crc32 u32 | seq u64 | table_len u16 | table | payload
//! ```
//!
//! (little endian). The payload is one Arrow IPC stream (schema + one batch),
//! so a record decodes on its own. Repetitive text and binary columns travel
//! in it as dictionaries, marked in their field metadata and turned back on
//! replay (the `dictionary` module): the disk, not the CPU, limits the WAL at
//! a firehose's rate. The CRC-32 covers everything after it, so
//! a record cut short by a crash, or garbage left by a failed write, is
//! detected: replay stops reading a segment at its first bad record and cuts
//! the file there ("torn tail").
//!
//! Every record carries a sequence number, increasing over the life of the
//! data dir. The storage layer names each Parquet file after the range of
//! sequence numbers it holds and, once files are published, records in the
//! `checkpoint` file the number up to which everything is in Parquet
//! (written to a temporary name, fsynced, renamed). Only then are segments
//! wholly at or below the checkpoint deleted ("trimmed"). Replay returns the
//! records above the checkpoint; the storage layer drops those whose rows a
//! published file already holds, so each batch reaches Parquet exactly once.
//!
//! How durable an acknowledgement is depends on the [`FsyncPolicy`]: with
//! `EveryBatch` an acknowledged record survives a power cut; with
//! `Interval` it survives a process crash and, after at most the interval,
//! a power cut; with `Off` it survives a process crash only.
//!
//! A `LOCK` file (an advisory `flock`) keeps two processes from writing the
//! same data dir's WAL at once.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Cursor, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::error::ArrowError;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;

use crate::publish::{create_private_dir_all, create_private_file, sync_dir};

pub(crate) mod dictionary;
mod narrowing;

/// Marks the start of every record.
const MAGIC: [u8; 4] = *b"SLW1";
/// magic + payload_len + crc32 + seq + table_len.
const HEADER_BYTES: usize = 4 + 4 + 4 + 8 + 2;
/// A record claiming a larger payload is treated as garbage, not allocated.
const MAX_PAYLOAD_BYTES: usize = 1 << 30;
/// Name of the file holding the persisted-through sequence number.
const CHECKPOINT_FILE: &str = "checkpoint";
/// First line of the checkpoint file: its format and version.
const CHECKPOINT_HEADER: &str = "sluice-wal-checkpoint v1";
/// Extension of segment files.
const SEGMENT_EXTENSION: &str = "wal";

/// When appended records are fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync after every record, before it is acknowledged: survives a power
    /// cut. Costs one fsync per batch (batches are large, so this is the
    /// default).
    EveryBatch,
    /// fsync at most this often (on the next append or maintenance tick after
    /// the interval): an acknowledged record survives a process crash at once
    /// and a power cut after the interval.
    Interval(Duration),
    /// Never fsync: the OS writes back when it likes. Survives a process
    /// crash, not a power cut.
    Off,
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;

    /// Parses `batch`, `off`, or `interval:<ms>` (e.g. `interval:100`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "batch" => Ok(FsyncPolicy::EveryBatch),
            "off" => Ok(FsyncPolicy::Off),
            _ => match s.strip_prefix("interval:") {
                Some(ms) => ms
                    .parse::<u64>()
                    .map(|ms| FsyncPolicy::Interval(Duration::from_millis(ms)))
                    .map_err(|_| format!("{ms:?} is not a number of milliseconds")),
                None => Err(format!(
                    "{s:?}: expected `batch`, `off` or `interval:<milliseconds>`"
                )),
            },
        }
    }
}

/// How the WAL is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    /// When records are fsynced.
    pub fsync: FsyncPolicy,
    /// A new segment is started once the current one is this large, so
    /// trimming can free space in steps.
    pub segment_bytes: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            fsync: FsyncPolicy::EveryBatch,
            segment_bytes: 64 << 20,
        }
    }
}

/// Why the WAL could not be opened, appended to or trimmed.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file system operation failed (a full disk shows up here).
    #[error("WAL: {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Another process holds the WAL of this data dir.
    #[error(
        "WAL {} is in use by another sluice process (its LOCK is held)",
        .0.display()
    )]
    Locked(PathBuf),
    /// A batch could not be encoded as Arrow IPC.
    #[error("WAL: encoding a batch of {table:?} as Arrow IPC: {source}")]
    Encode {
        /// The table of the batch.
        table: String,
        /// The Arrow error.
        #[source]
        source: ArrowError,
    },
    /// The checkpoint file exists but cannot be parsed.
    #[error("WAL checkpoint {}: {reason}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The table name does not fit a record header.
    #[error("WAL: table name {0:?} is longer than 65535 bytes")]
    TableName(String),
}

/// One batch read back from the log.
#[derive(Debug, Clone)]
pub struct WalRecord {
    /// Its sequence number.
    pub seq: u64,
    /// The table it belongs to.
    pub table: String,
    /// The rows.
    pub batch: RecordBatch,
}

/// What [`Wal::open`] found.
#[derive(Debug, Default)]
pub struct WalReplay {
    /// Records above the checkpoint, oldest first.
    pub records: Vec<WalRecord>,
    /// Records at or below the checkpoint that were skipped (already in Parquet).
    pub skipped_persisted: u64,
    /// Bytes cut off segment ends because they were not whole, valid records.
    pub torn_bytes: u64,
    /// Where each cut was made: segment file and byte offset, with the reason.
    pub torn: Vec<String>,
    /// The checkpoint: every record up to this sequence number is in Parquet.
    pub persisted_through: u64,
}

/// What is known to be in Parquet: every record up to `all_tables`, and for
/// each listed table, every record of that table up to its number.
///
/// The per-table numbers matter when one table rolls often and another
/// rarely: the busy table's rolled records are then skipped on replay even
/// though an older batch of the quiet one holds the global number back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Every record up to this number, of any table, is in Parquet.
    pub all_tables: u64,
    /// Per table: every record of it up to this number is in Parquet.
    pub tables: BTreeMap<String, u64>,
}

impl Checkpoint {
    /// Whether record `seq` of `table` is already in Parquet.
    pub fn covers(&self, table: &str, seq: u64) -> bool {
        seq <= self.all_tables || self.tables.get(table).is_some_and(|&t| seq <= t)
    }
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    /// Sequence number of the last record in it, if any.
    last_seq: Option<u64>,
}

#[derive(Debug)]
struct ActiveSegment {
    path: PathBuf,
    file: File,
    /// Bytes of whole records written; the file is cut back here after a
    /// failed write.
    len: u64,
    /// A write failed and the cut-back failed too: start a new segment.
    broken: bool,
}

/// An open write-ahead log. Not shared between threads by itself: the
/// storage layer holds it behind its writer lock.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    options: WalOptions,
    /// Held for the life of the WAL; dropping it releases the lock.
    _lock: File,
    /// Sealed segments, oldest first (the active one is not in here).
    sealed: Vec<Segment>,
    active: Option<(ActiveSegment, Option<u64>)>,
    next_seq: u64,
    checkpoint: Checkpoint,
    unsynced: bool,
    last_sync: Instant,
}

impl Wal {
    /// Opens (creating if needed) the WAL in `dir`, takes its lock, and reads
    /// back every record above the checkpoint, cutting torn tails off.
    pub fn open(dir: &Path, options: WalOptions) -> Result<(Wal, WalReplay), WalError> {
        let io = |op: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| WalError::Io { op, path, source }
        };
        let root = dir.parent().unwrap_or(dir);
        create_private_dir_all(root, dir).map_err(io("creating directory", dir))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("opening", &lock_path))?;
        if lock.try_lock().is_err() {
            return Err(WalError::Locked(dir.to_path_buf()));
        }

        let checkpoint = read_checkpoint(dir)?;
        let persisted_through = checkpoint.all_tables;
        let mut replay = WalReplay {
            persisted_through,
            ..WalReplay::default()
        };
        let mut segment_paths = Vec::new();
        for entry in fs::read_dir(dir).map_err(io("listing", dir))? {
            let entry = entry.map_err(io("listing", dir))?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(first) = name
                .strip_suffix(&format!(".{SEGMENT_EXTENSION}"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                segment_paths.push((first, path));
            } else if name.ends_with(".tmp") {
                // A checkpoint that never got renamed into place.
                let _ = fs::remove_file(&path);
            }
        }
        segment_paths.sort();

        let mut sealed = Vec::new();
        let mut max_seq = checkpoint
            .tables
            .values()
            .fold(persisted_through, |a, &b| a.max(b));
        for (_, path) in segment_paths {
            let last_seq = read_segment(&path, &checkpoint, &mut replay)?;
            match last_seq {
                Some(last) => max_seq = max_seq.max(last),
                None => {
                    // No whole record (created just before a crash, or all
                    // torn): its name would be reused by the next segment.
                    fs::remove_file(&path).map_err(io("removing empty segment", &path))?;
                    continue;
                }
            }
            sealed.push(Segment { path, last_seq });
        }
        let wal = Wal {
            dir: dir.to_path_buf(),
            options,
            _lock: lock,
            sealed,
            active: None,
            next_seq: max_seq + 1,
            checkpoint,
            unsynced: false,
            last_sync: Instant::now(),
        };
        Ok((wal, replay))
    }

    /// The sequence number the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Makes sure the next record is numbered above `seq` (recovery raises it
    /// past every number a Parquet file name already claims).
    pub fn reserve_through(&mut self, seq: u64) {
        self.next_seq = self.next_seq.max(seq + 1);
    }

    /// Every record up to this number is in Parquet.
    pub fn persisted_through(&self) -> u64 {
        self.checkpoint.all_tables
    }

    /// The last checkpoint written (or read at open).
    pub fn checkpoint_state(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// Bytes of WAL on disk (sealed segments are measured, so this lists the
    /// directory).
    pub fn disk_bytes(&self) -> u64 {
        let sealed: u64 = self
            .sealed
            .iter()
            .filter_map(|s| fs::metadata(&s.path).ok())
            .map(|m| m.len())
            .sum();
        sealed + self.active.as_ref().map_or(0, |(a, _)| a.len)
    }

    /// Appends one batch of `table` and returns its sequence number. When
    /// this returns, the record is durable as far as the [`FsyncPolicy`]
    /// promises. On error nothing was appended (a partial write is cut back).
    pub fn append(&mut self, table: &str, batch: &RecordBatch) -> Result<u64, WalError> {
        let mut record = EncodedRecord::encode(Vec::new(), table, batch)?;
        self.append_encoded(&mut record)
    }

    /// Appends a record [`EncodedRecord::encode`] made, giving it the next
    /// sequence number, and returns that number. When this returns, the
    /// record is durable as far as the [`FsyncPolicy`] promises. On error
    /// nothing was appended (a partial write is cut back).
    pub(crate) fn append_encoded(&mut self, record: &mut EncodedRecord) -> Result<u64, WalError> {
        let seq = self.next_seq;
        record.number(seq);
        self.ensure_active_segment(seq)?;
        let Some((active, last)) = self.active.as_mut() else {
            unreachable!("ensure_active_segment always leaves an active segment");
        };
        if let Err(source) = active.file.write_all(&record.bytes) {
            // Cut the partial record off so the next one follows a whole
            // record; if even that fails, seal this segment (replay cuts it
            // at the garbage) and write the next record into a new one.
            let cut = active.file.set_len(active.len).is_ok()
                && active.file.seek(SeekFrom::Start(active.len)).is_ok();
            active.broken = !cut;
            return Err(WalError::Io {
                op: "appending to",
                path: active.path.clone(),
                source,
            });
        }
        active.len += record.bytes.len() as u64;
        *last = Some(seq);
        self.next_seq += 1;
        self.unsynced = true;
        match self.options.fsync {
            FsyncPolicy::EveryBatch => self.sync()?,
            FsyncPolicy::Interval(every) if self.last_sync.elapsed() >= every => self.sync()?,
            _ => {}
        }
        Ok(seq)
    }

    /// fsyncs the active segment if anything was appended since the last sync.
    pub fn sync(&mut self) -> Result<(), WalError> {
        if !self.unsynced {
            return Ok(());
        }
        if let Some((active, _)) = &self.active {
            active.file.sync_data().map_err(|source| WalError::Io {
                op: "fsyncing",
                path: active.path.clone(),
                source,
            })?;
        }
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Under [`FsyncPolicy::Interval`], fsyncs if the interval has passed;
    /// otherwise does nothing. Called from the storage maintenance tick.
    pub fn sync_if_due(&mut self) -> Result<(), WalError> {
        match self.options.fsync {
            FsyncPolicy::Interval(every) if self.last_sync.elapsed() >= every => self.sync(),
            _ => Ok(()),
        }
    }

    /// Records what is in Parquet, then deletes the segments that hold
    /// nothing newer than `checkpoint.all_tables`: [`Wal::plan_checkpoint`]
    /// and [`CheckpointWrite::write`] in one go.
    pub fn checkpoint(&mut self, checkpoint: Checkpoint) -> Result<(), WalError> {
        match self.plan_checkpoint(checkpoint) {
            Some(write) => write.write(),
            None => Ok(()),
        }
    }

    /// Decides a checkpoint without touching the disk: merges `checkpoint`
    /// with the last one (numbers never go back; a lower number is ignored),
    /// seals the active segment if everything in it is persisted, and takes
    /// the segments that hold nothing newer out of the log. `None` when
    /// nothing changes.
    ///
    /// The file work is left to the returned [`CheckpointWrite`], so that an
    /// owner that shares the WAL under a lock can do it after releasing the
    /// lock: the fsyncs, and deleting segments (a synchronous discard on
    /// some file systems), take tens of milliseconds under a busy writer,
    /// and appends need not wait for them.
    pub fn plan_checkpoint(&mut self, mut checkpoint: Checkpoint) -> Option<CheckpointWrite> {
        checkpoint.all_tables = checkpoint.all_tables.max(self.checkpoint.all_tables);
        for (table, &seq) in &self.checkpoint.tables {
            let entry = checkpoint.tables.entry(table.clone()).or_insert(seq);
            *entry = (*entry).max(seq);
        }
        let all = checkpoint.all_tables;
        checkpoint.tables.retain(|_, seq| *seq > all);
        if checkpoint == self.checkpoint {
            return None;
        }
        self.checkpoint = checkpoint.clone();

        // Seal the active segment once everything in it is persisted, so it
        // can go too; the next append starts a new one.
        if let Some((active, last)) = &self.active
            && last.is_none_or(|last| last <= all)
        {
            let path = active.path.clone();
            let last_seq = *last;
            self.active = None;
            self.sealed.push(Segment { path, last_seq });
        }
        let (trimmed, kept): (Vec<Segment>, Vec<Segment>) = self
            .sealed
            .drain(..)
            .partition(|segment| segment.last_seq.is_none_or(|last| last <= all));
        self.sealed = kept;
        Some(CheckpointWrite {
            dir: self.dir.clone(),
            checkpoint,
            trimmed: trimmed.into_iter().map(|segment| segment.path).collect(),
        })
    }

    /// Opens a new segment if there is none, the current one is full, or a
    /// failed write left it unusable.
    fn ensure_active_segment(&mut self, seq: u64) -> Result<(), WalError> {
        let rotate = match &self.active {
            None => true,
            Some((active, _)) => active.broken || active.len >= self.options.segment_bytes,
        };
        if !rotate {
            return Ok(());
        }
        let path = self.dir.join(format!("{seq:020}.{SEGMENT_EXTENSION}"));
        let file = create_private_file(&path).map_err(|source| WalError::Io {
            op: "creating segment",
            path: path.clone(),
            source,
        })?;
        if let Err(source) = sync_dir(&self.dir) {
            let _ = fs::remove_file(&path);
            return Err(WalError::Io {
                op: "fsyncing directory",
                path: self.dir.clone(),
                source,
            });
        }
        if let Some((old, last)) = self.active.take() {
            // Make what was acknowledged under a relaxed policy durable
            // before leaving the segment behind.
            let _ = old.file.sync_data();
            self.sealed.push(Segment {
                path: old.path,
                last_seq: last,
            });
        }
        self.active = Some((
            ActiveSegment {
                path,
                file,
                len: 0,
                broken: false,
            },
            None,
        ));
        Ok(())
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        // Best effort: a clean shutdown makes everything durable.
        let _ = self.sync();
    }
}

/// A batch encoded as its WAL record, all but its sequence number: the
/// costly part of an append (dictionaries, narrowing, Arrow IPC, the
/// payload's CRC), which needs no lock, so that the next batch can be
/// encoded while the WAL waits for the fsync of this one.
#[derive(Debug)]
pub(crate) struct EncodedRecord {
    /// Header (its sequence number and CRC set by [`Wal::append_encoded`]),
    /// table name and payload.
    bytes: Vec<u8>,
    /// The CRC-32 of the payload alone; the header's bytes are folded in
    /// once the sequence number is known.
    payload_crc: crc32fast::Hasher,
    /// The batch as the record holds it: its repetitive text columns as
    /// dictionaries (see the `dictionary` module), which the roll hands to
    /// Parquet so that it need not build the same dictionaries again.
    logged: RecordBatch,
}

impl EncodedRecord {
    /// Encodes `batch` of `table` into `buffer` (cleared first; pass a
    /// spent record's buffer, from [`EncodedRecord::into_parts`], to reuse
    /// its memory).
    pub(crate) fn encode(
        mut buffer: Vec<u8>,
        table: &str,
        batch: &RecordBatch,
    ) -> Result<EncodedRecord, WalError> {
        let encode_error = |source| WalError::Encode {
            table: table.to_string(),
            source,
        };
        let table_len =
            u16::try_from(table.len()).map_err(|_| WalError::TableName(table.to_string()))?;
        buffer.clear();
        buffer.resize(HEADER_BYTES, 0);
        buffer.extend_from_slice(table.as_bytes());
        let payload_start = buffer.len();
        let logged = dictionary::shrink(batch).map_err(encode_error)?;
        {
            // Packed for the record only: the hot tail (and Parquet) take
            // the dictionary form.
            let packed = narrowing::pack(&logged).map_err(encode_error)?;
            let mut writer =
                StreamWriter::try_new(&mut buffer, &packed.schema()).map_err(encode_error)?;
            writer.write(&packed).map_err(encode_error)?;
            writer.finish().map_err(encode_error)?;
        }
        let payload_len = buffer.len() - payload_start;
        let payload_len = u32::try_from(payload_len)
            .ok()
            .filter(|&n| (n as usize) <= MAX_PAYLOAD_BYTES)
            .ok_or_else(|| WalError::Encode {
                table: table.to_string(),
                source: ArrowError::InvalidArgumentError(format!(
                    "batch of {payload_len} bytes is larger than a WAL record may be (1 GiB)"
                )),
            })?;
        buffer[0..4].copy_from_slice(&MAGIC);
        buffer[4..8].copy_from_slice(&payload_len.to_le_bytes());
        buffer[20..22].copy_from_slice(&table_len.to_le_bytes());
        let mut payload_crc = crc32fast::Hasher::new();
        payload_crc.update(&buffer[payload_start..]);
        Ok(EncodedRecord {
            bytes: buffer,
            payload_crc,
            logged,
        })
    }

    /// Gives the record sequence number `seq` and its CRC: that of
    /// everything after the CRC field, the sequence number included.
    fn number(&mut self, seq: u64) {
        self.bytes[12..20].copy_from_slice(&seq.to_le_bytes());
        let table_len = u16::from_le_bytes([self.bytes[20], self.bytes[21]]);
        let payload_start = HEADER_BYTES + usize::from(table_len);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&self.bytes[12..payload_start]);
        crc.combine(&self.payload_crc);
        self.bytes[8..12].copy_from_slice(&crc.finalize().to_le_bytes());
    }

    /// The batch as logged, for the hot tail, and the record's memory, for
    /// encoding the next one into.
    pub(crate) fn into_parts(self) -> (RecordBatch, Vec<u8>) {
        (self.logged, self.bytes)
    }
}

/// Reads every whole record of one segment into `replay` (those above the
/// checkpoint), cuts the file at the first bad one, and returns the last
/// sequence number seen.
fn read_segment(
    path: &Path,
    checkpoint: &Checkpoint,
    replay: &mut WalReplay,
) -> Result<Option<u64>, WalError> {
    let bytes = fs::read(path).map_err(|source| WalError::Io {
        op: "reading segment",
        path: path.to_path_buf(),
        source,
    })?;
    let mut offset = 0usize;
    let mut last_seq = None;
    let problem = loop {
        if offset == bytes.len() {
            break None;
        }
        match decode_record(&bytes[offset..]) {
            Ok((record_len, seq, table, payload)) => {
                if checkpoint.covers(table, seq) {
                    replay.skipped_persisted += 1;
                } else {
                    match decode_payload(payload) {
                        Ok(batch) => replay.records.push(WalRecord {
                            seq,
                            table: table.to_string(),
                            batch,
                        }),
                        Err(reason) => break Some(reason),
                    }
                }
                last_seq = Some(seq);
                offset += record_len;
            }
            Err(reason) => break Some(reason),
        }
    };
    if let Some(reason) = problem {
        let cut = bytes.len() - offset;
        replay.torn_bytes += cut as u64;
        replay.torn.push(format!(
            "{} at byte {offset}: {reason}; cut {cut} bytes",
            path.display()
        ));
        tracing::warn!(
            segment = %path.display(),
            offset,
            cut,
            reason,
            "WAL segment has a torn tail; cutting it off"
        );
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|source| WalError::Io {
                op: "opening segment to cut its torn tail",
                path: path.to_path_buf(),
                source,
            })?;
        file.set_len(offset as u64)
            .and_then(|()| file.sync_all())
            .map_err(|source| WalError::Io {
                op: "cutting torn tail of",
                path: path.to_path_buf(),
                source,
            })?;
    }
    Ok(last_seq)
}

/// Splits one record off the front of `bytes`: (record length, seq, table,
/// payload), or why it is not a whole, valid record.
fn decode_record(bytes: &[u8]) -> Result<(usize, u64, &str, &[u8]), &'static str> {
    if bytes.len() < HEADER_BYTES {
        return Err("record header cut short");
    }
    if bytes[0..4] != MAGIC {
        return Err("no record magic");
    }
    let le_u32 =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let payload_len = le_u32(4) as usize;
    let crc = le_u32(8);
    let table_len = u16::from_le_bytes([bytes[20], bytes[21]]) as usize;
    if payload_len > MAX_PAYLOAD_BYTES {
        return Err("implausible payload length");
    }
    let record_len = HEADER_BYTES + table_len + payload_len;
    if bytes.len() < record_len {
        return Err("record cut short");
    }
    if crc32(&bytes[12..record_len]) != crc {
        return Err("checksum mismatch");
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&bytes[12..20]);
    let table = std::str::from_utf8(&bytes[HEADER_BYTES..HEADER_BYTES + table_len])
        .map_err(|_| "table name is not UTF-8")?;
    Ok((
        record_len,
        u64::from_le_bytes(seq),
        table,
        &bytes[HEADER_BYTES + table_len..record_len],
    ))
}

/// Decodes the one batch of a record's IPC stream.
fn decode_payload(payload: &[u8]) -> Result<RecordBatch, &'static str> {
    let mut reader = StreamReader::try_new(Cursor::new(payload), None)
        .map_err(|_| "payload is not Arrow IPC")?;
    match reader.next() {
        Some(Ok(batch)) => narrowing::unpack(batch)
            .map_err(|_| "payload's packed columns do not decode")
            .and_then(|batch| {
                dictionary::restore(batch)
                    .map_err(|_| "payload's dictionary-encoded columns do not decode")
            }),
        _ => Err("payload holds no readable batch"),
    }
}

pub(crate) fn read_checkpoint(dir: &Path) -> Result<Checkpoint, WalError> {
    let path = dir.join(CHECKPOINT_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Checkpoint::default()),
        Err(source) => {
            return Err(WalError::Io {
                op: "reading",
                path,
                source,
            });
        }
    };
    let bad = |reason: &str| WalError::Checkpoint {
        path: path.clone(),
        reason: reason.to_string(),
    };
    let mut lines = text.lines();
    if lines.next() != Some(CHECKPOINT_HEADER) {
        return Err(bad("unknown format (expected `sluice-wal-checkpoint v1`)"));
    }
    let all_tables = lines
        .next()
        .and_then(|l| l.strip_prefix("persisted_through "))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .ok_or_else(|| bad("no `persisted_through <seq>` line"))?;
    let mut tables = BTreeMap::new();
    for line in lines {
        let (table, seq) = line
            .strip_prefix("table ")
            .and_then(|l| l.rsplit_once(' '))
            .and_then(|(t, n)| Some((t, n.parse::<u64>().ok()?)))
            .ok_or_else(|| bad("a line is not `table <name> <seq>`"))?;
        tables.insert(table.to_string(), seq);
    }
    Ok(Checkpoint { all_tables, tables })
}

/// A checkpoint [`Wal::plan_checkpoint`] decided, still to be written.
///
/// Writes must happen one at a time and in the order they were planned
/// (the storage holds one lock from plan to write). A write that fails
/// part way leaves the old or the new checkpoint file and some of the
/// segments it meant to delete, which is safe: replay skips what the
/// Parquet files already claim. Those segments are no longer in the log's
/// list, so they stay on disk until the next open finds them and the first
/// checkpoint after it deletes them.
#[derive(Debug)]
#[must_use = "a planned checkpoint does nothing until it is written"]
pub struct CheckpointWrite {
    dir: PathBuf,
    checkpoint: Checkpoint,
    trimmed: Vec<PathBuf>,
}

impl CheckpointWrite {
    /// Writes the checkpoint whole (temporary file, fsync, rename,
    /// directory fsync), then deletes the segments it makes redundant. The
    /// order is what makes a crash in between harmless: segments that
    /// outlive their checkpoint hold only records replay skips.
    pub fn write(self) -> Result<(), WalError> {
        write_checkpoint(&self.dir, &self.checkpoint)?;
        if self.trimmed.is_empty() {
            return Ok(());
        }
        for path in &self.trimmed {
            fs::remove_file(path).map_err(|source| WalError::Io {
                op: "trimming",
                path: path.clone(),
                source,
            })?;
        }
        sync_dir(&self.dir).map_err(|source| WalError::Io {
            op: "fsyncing directory",
            path: self.dir.clone(),
            source,
        })
    }
}

fn write_checkpoint(dir: &Path, checkpoint: &Checkpoint) -> Result<(), WalError> {
    use std::fmt::Write as _;
    let mut text = format!(
        "{CHECKPOINT_HEADER}\npersisted_through {}\n",
        checkpoint.all_tables
    );
    for (table, seq) in &checkpoint.tables {
        let _ = writeln!(text, "table {table} {seq}");
    }
    let path = dir.join(CHECKPOINT_FILE);
    let temp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| WalError::Io { op, path, source }
    };
    let _ = fs::remove_file(&temp);
    let mut file = create_private_file(&temp).map_err(io("creating", &temp))?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(source) = written {
        let _ = fs::remove_file(&temp);
        return Err(WalError::Io {
            op: "writing",
            path: temp,
            source,
        });
    }
    fs::rename(&temp, &path).map_err(io("renaming into place", &path))?;
    sync_dir(dir).map_err(io("fsyncing directory", dir))
}

/// CRC-32 (IEEE 802.3, as zlib) of `bytes`. A record's checksum only has
/// to catch torn and garbage tails, which any CRC does; it is computed over
/// every byte the WAL writes and reads, so it must not be the bottleneck:
/// `crc32fast` folds 64 bytes at a time with the CPU's carry-less multiply
/// (PCLMULQDQ on x86-64, PMULL on ARMv8) and falls back to a
/// slice-by-16 table elsewhere. The polynomial is the one the WAL has
/// always used, so segments written before keep replaying.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(times: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("time", DataType::Int64, true),
            Field::new("path", DataType::Utf8, true),
        ]));
        let paths: Vec<String> = times.iter().map(|t| format!("/tmp/{t}")).collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(times.to_vec())),
                Arc::new(StringArray::from(paths)),
            ],
        )
        .unwrap()
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    /// The bit-at-a-time definition the WAL's first (table-driven) CRC
    /// implemented: the fast one must agree on every length and alignment,
    /// or segments written before would not replay.
    #[test]
    fn crc32_agrees_with_the_bitwise_definition() {
        fn bitwise(bytes: &[u8]) -> u32 {
            let mut crc = !0u32;
            for &byte in bytes {
                crc ^= u32::from(byte);
                for _ in 0..8 {
                    crc = if crc & 1 != 0 {
                        0xEDB8_8320 ^ (crc >> 1)
                    } else {
                        crc >> 1
                    };
                }
            }
            !crc
        }
        let data: Vec<u8> = (0..4099u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for start in 0..5 {
            for len in [0, 1, 7, 15, 16, 63, 64, 65, 127, 128, 1000, 4090] {
                let slice = &data[start..start + len];
                assert_eq!(crc32(slice), bitwise(slice), "start {start}, len {len}");
            }
        }
    }

    #[test]
    fn records_replay_in_order_and_torn_tails_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let wal_dir = dir.path().join(".wal");
        {
            let (mut wal, replay) = Wal::open(&wal_dir, WalOptions::default()).unwrap();
            assert!(replay.records.is_empty());
            assert_eq!(wal.append("t", &batch(&[1, 2])).unwrap(), 1);
            assert_eq!(wal.append("u", &batch(&[3])).unwrap(), 2);
        }
        // Half a third record: a crash in the middle of a write.
        let segment = wal_dir.join(format!("{:020}.wal", 1));
        let whole = fs::metadata(&segment).unwrap().len();
        let mut record = EncodedRecord::encode(Vec::new(), "t", &batch(&[4])).unwrap();
        record.number(3);
        let (_, tail) = record.into_parts();
        let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
        file.write_all(&tail[..tail.len() / 2]).unwrap();
        drop(file);

        let (mut wal, replay) = Wal::open(&wal_dir, WalOptions::default()).unwrap();
        let seqs: Vec<(u64, &str, usize)> = replay
            .records
            .iter()
            .map(|r| (r.seq, r.table.as_str(), r.batch.num_rows()))
            .collect();
        assert_eq!(seqs, vec![(1, "t", 2), (2, "u", 1)]);
        assert_eq!(replay.torn_bytes, (tail.len() / 2) as u64);
        assert_eq!(fs::metadata(&segment).unwrap().len(), whole);
        // Numbering continues after the last whole record.
        assert_eq!(wal.append("t", &batch(&[5])).unwrap(), 3);
    }

    /// A record holds repetitive text once, as a dictionary, and replays
    /// as the batch that was appended: same types, same schema.
    #[test]
    fn repetitive_text_is_written_once_and_replays_as_appended() {
        let rows = 4096;
        let times: Vec<i64> = (0..rows).collect();
        let paths = StringArray::from_iter_values(
            (0..rows).map(|i| format!("/Applications/App{}.app/Contents/MacOS/App", i % 8)),
        );
        let plain = batch(&times);
        let appended = RecordBatch::try_new(
            plain.schema(),
            vec![Arc::clone(plain.column(0)), Arc::new(paths)],
        )
        .unwrap();
        let mut ipc = Vec::new();
        {
            let mut writer = StreamWriter::try_new(&mut ipc, &appended.schema()).unwrap();
            writer.write(&appended).unwrap();
            writer.finish().unwrap();
        }

        let dir = tempfile::tempdir().unwrap();
        let wal_dir = dir.path().join(".wal");
        {
            let (mut wal, _) = Wal::open(&wal_dir, WalOptions::default()).unwrap();
            wal.append("t", &appended).unwrap();
        }
        let segment = fs::metadata(wal_dir.join(format!("{:020}.wal", 1))).unwrap();
        assert!(
            segment.len() * 2 < ipc.len() as u64,
            "record {} bytes, plain IPC {}",
            segment.len(),
            ipc.len()
        );
        let (_, replay) = Wal::open(&wal_dir, WalOptions::default()).unwrap();
        assert_eq!(replay.records.len(), 1);
        assert_eq!(replay.records[0].batch, appended);
    }

    /// A file event's numbers and id are narrowed in the record, replay
    /// gives back the appended batch, and the batch handed on for Parquet
    /// keeps its integer types.
    #[test]
    fn numbers_and_ids_are_narrowed_in_the_record_only() {
        use arrow::array::{Int64Array, TimestampNanosecondArray};
        use arrow::datatypes::TimeUnit;
        let rows = 8192i64;
        let schema = Arc::new(Schema::new(vec![
            Field::new("pid", DataType::Int64, true),
            Field::new("eid", DataType::Utf8, false),
            Field::new(
                "time_ns",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                false,
            ),
        ]));
        let appended = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter(
                    (0..rows).map(|i| (i % 9 != 4).then_some(300 + (i * 7919) % 60_000)),
                )),
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| format!("{:010}", 1_000 + i)),
                )),
                Arc::new(
                    TimestampNanosecondArray::from_iter_values(
                        (0..rows).map(|i| 1_714_564_800_000_000_000 + i * 50_000),
                    )
                    .with_timezone("UTC"),
                ),
            ],
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let wal_dir = dir.path().join(".wal");
        {
            let (mut wal, _) = Wal::open(&wal_dir, WalOptions::default()).unwrap();
            let mut record = EncodedRecord::encode(Vec::new(), "t", &appended).unwrap();
            wal.append_encoded(&mut record).unwrap();
            let (logged, _) = record.into_parts();
            assert_eq!(logged, appended, "the hot tail's batch is not packed");
        }
        let segment = fs::metadata(wal_dir.join(format!("{:020}.wal", 1))).unwrap();
        // 2 bytes of pid, 2 of time's steps, none of eid, where plain IPC
        // takes 30.
        assert!(
            segment.len() < 5 * rows as u64,
            "record {} bytes for {rows} rows",
            segment.len()
        );
        let (_, replay) = Wal::open(&wal_dir, WalOptions::default()).unwrap();
        assert_eq!(replay.records.len(), 1);
        assert_eq!(replay.records[0].batch, appended);
        assert_eq!(replay.records[0].batch.schema(), appended.schema());
    }

    /// The WAL segments in `dir`.
    fn segment_count(dir: &Path) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("wal".as_ref()))
            .count()
    }

    #[test]
    fn checkpoint_skips_and_trims_persisted_records() {
        let dir = tempfile::tempdir().unwrap();
        let wal_dir = dir.path().join(".wal");
        let options = WalOptions {
            fsync: FsyncPolicy::Off,
            segment_bytes: 1, // every record in its own segment
        };
        {
            let (mut wal, _) = Wal::open(&wal_dir, options.clone()).unwrap();
            for t in 0..4 {
                wal.append("t", &batch(&[t])).unwrap();
            }
            wal.checkpoint(Checkpoint {
                all_tables: 2,
                tables: BTreeMap::new(),
            })
            .unwrap();
            assert_eq!(
                segment_count(&wal_dir),
                2,
                "segments of records 1 and 2 are trimmed"
            );
        }
        let (wal, replay) = Wal::open(&wal_dir, options).unwrap();
        assert_eq!(replay.persisted_through, 2);
        let seqs: Vec<u64> = replay.records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![3, 4]);
        assert_eq!(wal.next_seq(), 5);
    }

    #[test]
    fn a_planned_checkpoint_touches_the_disk_only_when_written() {
        let dir = tempfile::tempdir().unwrap();
        let wal_dir = dir.path().join(".wal");
        let options = WalOptions {
            fsync: FsyncPolicy::Off,
            segment_bytes: 1, // every record in its own segment
        };
        let segments = || segment_count(&wal_dir);
        {
            let (mut wal, _) = Wal::open(&wal_dir, options.clone()).unwrap();
            for t in 0..4 {
                wal.append("t", &batch(&[t])).unwrap();
            }
            let through = |all_tables| Checkpoint {
                all_tables,
                tables: BTreeMap::new(),
            };
            let planned = wal
                .plan_checkpoint(through(2))
                .expect("the checkpoint moves");
            assert!(
                wal.plan_checkpoint(through(2)).is_none(),
                "planning the same checkpoint again changes nothing"
            );
            assert!(
                wal.plan_checkpoint(through(1)).is_none(),
                "numbers never go back"
            );
            assert_eq!(segments(), 4, "nothing is trimmed before the write");
            // Appends carry on between the plan and the write.
            wal.append("t", &batch(&[4])).unwrap();
            drop(planned); // a crash before the write
        }
        {
            let (mut wal, replay) = Wal::open(&wal_dir, options.clone()).unwrap();
            assert_eq!(
                replay.persisted_through, 0,
                "the old checkpoint is still on disk"
            );
            assert_eq!(replay.records.len(), 5);
            wal.plan_checkpoint(Checkpoint {
                all_tables: 3,
                tables: BTreeMap::new(),
            })
            .expect("the checkpoint moves")
            .write()
            .unwrap();
            assert_eq!(segments(), 2, "segments of records 1 to 3 are trimmed");
        }
        let (_, replay) = Wal::open(&wal_dir, options).unwrap();
        assert_eq!(replay.persisted_through, 3);
        let seqs: Vec<u64> = replay.records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![4, 5]);
    }

    #[test]
    fn a_second_process_cannot_open_a_held_wal() {
        let dir = tempfile::tempdir().unwrap();
        let (_wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        assert!(matches!(
            Wal::open(dir.path(), WalOptions::default()),
            Err(WalError::Locked(_))
        ));
    }

    #[test]
    fn fsync_policies_parse() {
        assert_eq!("batch".parse(), Ok(FsyncPolicy::EveryBatch));
        assert_eq!("off".parse(), Ok(FsyncPolicy::Off));
        assert_eq!(
            "interval:250".parse(),
            Ok(FsyncPolicy::Interval(Duration::from_millis(250)))
        );
        assert!("sometimes".parse::<FsyncPolicy>().is_err());
    }
}
