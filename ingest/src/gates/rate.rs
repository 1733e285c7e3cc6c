//! Token buckets and sampling.
//!
//! Buckets run on *event* time, not the wall clock: a replay of a capture
//! then drops exactly what a live run would have dropped, however fast the
//! replay goes, and a test can state rates without sleeping.

use std::collections::HashMap;

use super::config::{BucketConfig, ProcessBucketConfig, ProcessKey};

/// A token bucket: `burst` tokens at most, refilled at `per_second`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens_per_ns: f64,
    burst: f64,
    tokens: f64,
    last_ns: Option<i64>,
}

impl TokenBucket {
    /// A full bucket. A missing burst means one second's worth; every
    /// bucket holds at least one token, so a rate below 1/s still lets
    /// events through now and then.
    pub fn new(config: BucketConfig) -> Self {
        let per_second = config.per_second.max(0.0);
        let burst = config.burst.unwrap_or(per_second).max(1.0);
        Self {
            tokens_per_ns: per_second / 1e9,
            burst,
            tokens: burst,
            last_ns: None,
        }
    }

    /// Adds the tokens earned since the last call. Time that goes backwards
    /// (events out of order) earns nothing.
    #[inline]
    fn refill(&mut self, now_ns: i64) {
        match self.last_ns {
            Some(last) if now_ns > last => {
                self.tokens =
                    (self.tokens + (now_ns - last) as f64 * self.tokens_per_ns).min(self.burst);
                self.last_ns = Some(now_ns);
            }
            Some(_) => {}
            None => self.last_ns = Some(now_ns),
        }
    }

    /// Whether a token is available at `now_ns` (after refilling).
    #[inline]
    pub fn has_token(&mut self, now_ns: i64) -> bool {
        self.refill(now_ns);
        self.tokens >= 1.0
    }

    /// Spends one token; call only after [`has_token`](Self::has_token)
    /// said yes.
    #[inline]
    pub fn spend(&mut self) {
        self.tokens -= 1.0;
    }

    /// Takes a token if one is available.
    #[inline]
    pub fn try_take(&mut self, now_ns: i64) -> bool {
        let ok = self.has_token(now_ns);
        if ok {
            self.spend();
        }
        ok
    }
}

/// One token bucket per process, created on first sight.
#[derive(Debug, Clone)]
pub struct ProcessBuckets {
    config: BucketConfig,
    key: ProcessKey,
    by_path: HashMap<Box<[u8]>, TokenBucket, foldhash::fast::RandomState>,
    by_pid: HashMap<i64, TokenBucket, foldhash::fast::RandomState>,
}

impl ProcessBuckets {
    /// How many processes are tracked at most. Past that the map is
    /// cleared and every process starts with a full bucket again: lenient,
    /// but memory stays bounded whatever the workload.
    pub const MAX_TRACKED: usize = 16_384;

    /// Buckets shaped by `config`.
    pub fn new(config: ProcessBucketConfig) -> Self {
        Self {
            config: BucketConfig {
                per_second: config.per_second,
                burst: config.burst,
            },
            key: config.key,
            by_path: HashMap::default(),
            by_pid: HashMap::default(),
        }
    }

    /// The bucket of the process with `path` and `pid`, or `None` when the
    /// event does not say (such events are not limited per process).
    #[inline]
    pub fn bucket(&mut self, path: Option<&[u8]>, pid: Option<i64>) -> Option<&mut TokenBucket> {
        let config = self.config;
        match self.key {
            ProcessKey::Path => {
                let path = path?;
                if !self.by_path.contains_key(path) {
                    if self.by_path.len() >= Self::MAX_TRACKED {
                        self.by_path.clear();
                    }
                    // The only allocation: the first event of each program.
                    self.by_path.insert(path.into(), TokenBucket::new(config));
                }
                self.by_path.get_mut(path)
            }
            ProcessKey::Pid => {
                let pid = pid?;
                if self.by_pid.len() >= Self::MAX_TRACKED && !self.by_pid.contains_key(&pid) {
                    self.by_pid.clear();
                }
                Some(
                    self.by_pid
                        .entry(pid)
                        .or_insert_with(|| TokenBucket::new(config)),
                )
            }
        }
    }
}

/// Keeps one event in `every`.
#[derive(Debug, Clone)]
pub struct Sampler {
    every: u32,
    seen: u32,
}

impl Sampler {
    /// A sampler that keeps the first event and then one in `every`
    /// (`every` of 0 or 1 keeps all).
    pub fn new(every: u32) -> Self {
        Self {
            every: every.max(1),
            seen: 0,
        }
    }

    /// Whether to keep the next event.
    #[inline]
    pub fn keep(&mut self) -> bool {
        let keep = self.seen == 0;
        self.seen += 1;
        if self.seen == self.every {
            self.seen = 0;
        }
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    #[test]
    fn burst_then_rate() {
        let mut bucket = TokenBucket::new(BucketConfig {
            per_second: 10.0,
            burst: Some(5.0),
        });
        let t0 = 1_000 * SECOND;
        // A burst of 5 passes at once, the 6th is refused.
        assert_eq!((0..6).filter(|_| bucket.try_take(t0)).count(), 5);
        // 100 ms later one token has been earned.
        assert!(bucket.try_take(t0 + SECOND / 10));
        assert!(!bucket.try_take(t0 + SECOND / 10));
        // Over 10 s at one event every 10 ms (1,000 events), 10/s pass.
        let kept = (1..=1000)
            .filter(|i| bucket.try_take(t0 + SECOND / 10 + i * SECOND / 100))
            .count();
        assert!((99..=101).contains(&kept), "{kept}");
        // Never more than the burst, however long the quiet.
        let later = t0 + 3600 * SECOND;
        assert_eq!((0..20).filter(|_| bucket.try_take(later)).count(), 5);
    }

    #[test]
    fn time_going_backwards_earns_nothing() {
        let mut bucket = TokenBucket::new(BucketConfig {
            per_second: 1.0,
            burst: Some(1.0),
        });
        assert!(bucket.try_take(10 * SECOND));
        assert!(!bucket.try_take(5 * SECOND));
        assert!(!bucket.try_take(10 * SECOND));
        assert!(bucket.try_take(11 * SECOND));
    }

    #[test]
    fn per_process_buckets_are_separate() {
        let mut buckets = ProcessBuckets::new(ProcessBucketConfig {
            per_second: 1.0,
            burst: Some(1.0),
            key: ProcessKey::Path,
        });
        assert!(buckets.bucket(Some(b"/bin/a"), None).unwrap().try_take(0));
        assert!(!buckets.bucket(Some(b"/bin/a"), None).unwrap().try_take(0));
        assert!(buckets.bucket(Some(b"/bin/b"), None).unwrap().try_take(0));
        assert!(buckets.bucket(None, Some(1)).is_none());
        let mut by_pid = ProcessBuckets::new(ProcessBucketConfig {
            per_second: 1.0,
            burst: Some(1.0),
            key: ProcessKey::Pid,
        });
        assert!(by_pid.bucket(Some(b"/bin/a"), Some(1)).unwrap().try_take(0));
        assert!(by_pid.bucket(Some(b"/bin/a"), Some(2)).unwrap().try_take(0));
    }

    #[test]
    fn sampler_keeps_one_in_n() {
        let mut s = Sampler::new(10);
        let kept: Vec<usize> = (0..30).filter(|_| s.keep()).collect();
        assert_eq!(kept, vec![0, 10, 20]);
    }
}
