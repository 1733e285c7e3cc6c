//! Live sources: a reader thread that never waits for the rest of sluice.
//!
//! The kernel queues audit records for a reader (`/dev/auditpipe`) and
//! drops them when the reader falls behind. sluice must never be that slow
//! reader because its own sink (a WAL, a disk) is busy, so a live source is
//! read on a thread of its own, [`LiveReader`], which only frames records
//! (checking header and trailer, not decoding) and offers each one to a
//! bounded queue. When the queue is full the record is dropped and counted
//! as a backpressure drop, and the reader goes straight back to the kernel.
//! The decoding side takes records from the queue at its own pace.
//!
//! The reader works on any [`Read`], which is how it is tested on Linux; on
//! macOS and FreeBSD it reads `auditpipe::AuditPipe` (compiled there only).

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::frame::{Corruption, Frame};
use super::stream::{RecordStream, StreamError};

/// What the reader thread hands over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveItem {
    /// One well-framed record.
    Record {
        /// Offset of the record in the source's byte stream.
        offset: u64,
        /// The whole record.
        bytes: Vec<u8>,
    },
    /// A damaged span of the source's stream.
    Damage(Corruption),
}

/// Counters of a live reader, readable while it runs.
#[derive(Debug, Default)]
pub struct LiveCounters {
    /// Records read from the source.
    pub records: AtomicU64,
    /// Bytes read from the source.
    pub bytes: AtomicU64,
    /// Records dropped because the queue was full.
    pub dropped_backpressure: AtomicU64,
    /// Damaged spans found in the source's stream.
    pub damaged: AtomicU64,
}

/// A running reader thread and the queue it fills.
pub struct LiveReader {
    queue: Receiver<LiveItem>,
    counters: Arc<LiveCounters>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

/// A stream of frames was abandoned because sluice is shutting down.
#[derive(Debug, thiserror::Error)]
#[error("the live reader was stopped")]
struct Stopped;

impl LiveReader {
    /// Starts reading `source` on a new thread, keeping at most `capacity`
    /// records waiting.
    pub fn spawn<R: Read + Send + 'static>(source: R, capacity: usize) -> std::io::Result<Self> {
        let (tx, queue) = mpsc::sync_channel(capacity.max(1));
        let counters = Arc::new(LiveCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("sluice-bsm-live".into())
            .spawn({
                let counters = Arc::clone(&counters);
                let stop = Arc::clone(&stop);
                move || read_loop(source, &tx, &counters, &stop)
            })?;
        Ok(Self {
            queue,
            counters,
            stop,
            thread: Some(thread),
        })
    }

    /// The next item, waiting at most `timeout`. `Err(Disconnected)` once
    /// the source has ended and everything has been taken.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<LiveItem, RecvTimeoutError> {
        self.queue.recv_timeout(timeout)
    }

    /// The reader's counters.
    pub fn counters(&self) -> &LiveCounters {
        &self.counters
    }

    /// Asks the reader to stop after the record it is reading, and waits for
    /// it. A reader blocked in the kernel stops when its next read returns.
    pub fn stop(mut self) -> std::io::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        // Unblock a reader waiting on a full queue.
        while self.queue.try_recv().is_ok() {}
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Ok(()),
        }
    }
}

fn read_loop<R: Read>(
    mut source: R,
    tx: &SyncSender<LiveItem>,
    counters: &LiveCounters,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let mut stream = RecordStream::new();
    let mut offer = |frame: Frame<'_>| -> Result<(), Stopped> {
        if stop.load(Ordering::Relaxed) {
            return Err(Stopped);
        }
        let item = match frame {
            Frame::Record(r) => {
                counters.records.fetch_add(1, Ordering::Relaxed);
                LiveItem::Record {
                    offset: r.offset,
                    bytes: r.bytes.to_vec(),
                }
            }
            Frame::Corrupt(c) => {
                counters.damaged.fetch_add(1, Ordering::Relaxed);
                LiveItem::Damage(c)
            }
            Frame::FileToken { .. } => return Ok(()),
        };
        match tx.try_send(item) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                counters
                    .dropped_backpressure
                    .fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(TrySendError::Disconnected(_)) => Err(Stopped),
        }
    };
    loop {
        match stream.read_from(&mut source, &mut offer) {
            Ok(0) => break,
            Ok(n) => {
                counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(StreamError::Sink(Stopped)) => return Ok(()),
            Err(StreamError::Read { source, .. }) => return Err(source),
        }
    }
    match stream.finish(&mut offer) {
        Ok(()) | Err(Stopped) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bsm::encode::RecordWriter;

    #[test]
    fn a_slow_consumer_never_blocks_the_reader_and_every_record_is_accounted_for() {
        let mut trail = Vec::new();
        for i in 0..5000u32 {
            trail.extend(RecordWriter::new(23, i, 0).exec_args(["x"]).finish());
        }
        let reader = LiveReader::spawn(std::io::Cursor::new(trail), 16).unwrap();
        // Let the reader run to the end of its source before taking
        // anything: it must not wait for us.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while reader.counters().records.load(Ordering::Relaxed) < 5000 {
            assert!(std::time::Instant::now() < deadline, "reader blocked");
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut received = 0;
        while let Ok(item) = reader.recv_timeout(Duration::from_millis(200)) {
            assert!(matches!(item, LiveItem::Record { .. }));
            received += 1;
        }
        let dropped = reader
            .counters()
            .dropped_backpressure
            .load(Ordering::Relaxed);
        assert_eq!(received, 16);
        assert_eq!(received + dropped, 5000);
        reader.stop().unwrap();
    }

    #[test]
    fn damage_is_passed_on_and_counted() {
        let mut trail = RecordWriter::new(23, 1, 0).finish();
        trail.extend_from_slice(b"junk");
        trail.extend(RecordWriter::new(23, 2, 0).finish());
        let reader = LiveReader::spawn(std::io::Cursor::new(trail), 8).unwrap();
        let mut kinds = Vec::new();
        while let Ok(item) = reader.recv_timeout(Duration::from_secs(5)) {
            kinds.push(matches!(item, LiveItem::Record { .. }));
        }
        assert_eq!(kinds, [true, false, true]);
        assert_eq!(reader.counters().damaged.load(Ordering::Relaxed), 1);
        reader.stop().unwrap();
    }
}
