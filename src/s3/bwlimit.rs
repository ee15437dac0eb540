//! `--bwlimit`: one token bucket per direction shared by every connection, so the limit holds
//! for the bytes on the wire of all transfers together (parts, headers and retries included),
//! with rclone's syntax: `10M`, `off`, `UP:DOWN` (`10M:off`), and timetables
//! (`"08:00,512k 19:00,off"`, days as `"Mon-08:00,512k Sat-00:00,off"`) that switch while a
//! run goes on. A bare number is KiB/s; suffixes are binary, as rclone's sizes.
//!
//! The buckets are charged where bytes meet the socket ([`crate::s3::timeout`]'s stream), so
//! nothing above it needs to know a limit exists.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{Datelike, Timelike};

use crate::config::units::parse_size;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "--bwlimit {0:?}: use a rate (10M, off), UP:DOWN (10M:off), or a timetable such as \"08:00,512k 19:00,off\" or \"Mon-08:00,1M Sat-00:00,off\""
)]
pub struct BwError(String);

/// Bytes per second each way; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rate {
    pub up: Option<u64>,
    pub down: Option<u64>,
}

/// When a rate starts: a day of the week (0 = Monday) or every day, and a minute of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Start {
    day: Option<u32>,
    minute: u32,
}

/// A fixed rate, or a timetable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    entries: Vec<(Start, Rate)>,
}

fn one_rate(text: &str) -> Option<Option<u64>> {
    if text.eq_ignore_ascii_case("off") || text.is_empty() {
        return Some(None);
    }
    let bytes = parse_size(text).ok()?;
    (bytes > 0).then_some(Some(bytes))
}

fn rate(text: &str) -> Option<Rate> {
    match text.split_once(':') {
        Some((up, down)) => Some(Rate {
            up: one_rate(up)?,
            down: one_rate(down)?,
        }),
        None => {
            let r = one_rate(text)?;
            Some(Rate { up: r, down: r })
        }
    }
}

fn start(text: &str) -> Option<Start> {
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let (day, time) = match text.split_once('-') {
        Some((d, t)) => {
            let d = d.to_ascii_lowercase();
            (Some(DAYS.iter().position(|x| d.starts_with(x))? as u32), t)
        }
        None => (None, text),
    };
    let (h, m) = time.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(Start {
        day,
        minute: h * 60 + m,
    })
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, BwError> {
        let err = || BwError(text.to_string());
        let text = text.trim();
        if !text.contains(',') {
            let r = rate(text).ok_or_else(err)?;
            return Ok(Schedule {
                entries: vec![(
                    Start {
                        day: None,
                        minute: 0,
                    },
                    r,
                )],
            });
        }
        let mut entries = Vec::new();
        for item in text.split_whitespace() {
            let (when, r) = item.split_once(',').ok_or_else(err)?;
            entries.push((start(when).ok_or_else(err)?, rate(r).ok_or_else(err)?));
        }
        if entries.is_empty() {
            return Err(err());
        }
        Ok(Schedule { entries })
    }

    /// The rate in force at `day` (0 = Monday) and `minute` of the day.
    pub fn at(&self, day: u32, minute: u32) -> Rate {
        const WEEK: u32 = 7 * 24 * 60;
        let now = day * 24 * 60 + minute;
        // Minutes since each entry last started; the most recent start wins.
        let since = |s: &Start| match s.day {
            Some(d) => (now + WEEK - (d * 24 * 60 + s.minute)) % WEEK,
            None => (minute + 24 * 60 - s.minute) % (24 * 60),
        };
        self.entries
            .iter()
            .min_by_key(|(s, _)| since(s))
            .map(|(_, r)| *r)
            .unwrap_or_default()
    }

    /// The rate in force now, local time.
    pub fn now(&self) -> Rate {
        if self.entries.len() == 1 {
            return self.entries[0].1;
        }
        let t = chrono::Local::now();
        self.at(
            t.weekday().num_days_from_monday(),
            t.hour() * 60 + t.minute(),
        )
    }
}

/// Which way bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    Up,
    Down,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The shared limiter.
#[derive(Debug)]
pub struct Limiter {
    schedule: Schedule,
    buckets: Mutex<[Bucket; 2]>,
}

/// The least a waiting writer or reader waits for, so that many connections do not wake for
/// a few bytes each.
const MIN_GRANT: f64 = 4096.0;

impl Limiter {
    pub fn new(schedule: Schedule) -> Limiter {
        let now = Instant::now();
        Limiter {
            schedule,
            buckets: Mutex::new([
                Bucket {
                    tokens: 0.0,
                    last: now,
                },
                Bucket {
                    tokens: 0.0,
                    last: now,
                },
            ]),
        }
    }

    /// Ask to move up to `want` bytes: how many may move now, or how long to wait.
    pub fn take(&self, way: Way, want: usize) -> Result<usize, Duration> {
        let r = self.schedule.now();
        let Some(rate) = (match way {
            Way::Up => r.up,
            Way::Down => r.down,
        }) else {
            return Ok(want);
        };
        let rate = rate as f64;
        // A tenth of a second of burst: enough to keep the pipes full, small enough that any
        // window of seconds holds to the rate.
        let cap = (rate / 10.0).max(MIN_GRANT);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let b = &mut buckets[way as usize];
        let now = Instant::now();
        b.tokens = (b.tokens + rate * now.duration_since(b.last).as_secs_f64()).min(cap);
        b.last = now;
        let need = (want as f64).min(MIN_GRANT);
        if b.tokens >= need {
            let n = (b.tokens as usize).min(want);
            b.tokens -= n as f64;
            return Ok(n);
        }
        Err(Duration::from_secs_f64((need - b.tokens) / rate))
    }

    /// Give back bytes taken but not moved.
    pub fn give_back(&self, way: Way, n: usize) {
        if n > 0 {
            let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            buckets[way as usize].tokens += n as f64;
        }
    }

    /// Whether any limit can apply (a timetable may turn one on later).
    pub fn is_limited(&self) -> bool {
        self.schedule
            .entries
            .iter()
            .any(|(_, r)| r.up.is_some() || r.down.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 1024;

    #[test]
    fn rates_and_pairs() {
        let r = |t: &str| Schedule::parse(t).unwrap().at(0, 0);
        assert_eq!(
            r("10M"),
            Rate {
                up: Some(10 << 20),
                down: Some(10 << 20)
            }
        );
        assert_eq!(
            r("512"),
            Rate {
                up: Some(512 * K),
                down: Some(512 * K)
            },
            "bare is KiB/s"
        );
        assert_eq!(r("off"), Rate::default());
        assert_eq!(
            r("10M:off"),
            Rate {
                up: Some(10 << 20),
                down: None
            }
        );
        assert_eq!(
            r("off:1M"),
            Rate {
                up: None,
                down: Some(1 << 20)
            }
        );
        for bad in ["fast", "10M:x", "25:00,1M", "08:00", "Xyz-08:00,1M", "0"] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timetables_switch_by_time_and_day() {
        let s = Schedule::parse("08:00,512k 19:00,off").unwrap();
        let at = |h: u32, m: u32| s.at(2, h * 60 + m).up;
        assert_eq!(at(8, 0), Some(512 * K));
        assert_eq!(at(18, 59), Some(512 * K));
        assert_eq!(at(19, 0), None);
        assert_eq!(
            at(3, 0),
            None,
            "before the first entry: the last one of the day before"
        );
        let w = Schedule::parse("Mon-08:00,1M Sat-00:00,off").unwrap();
        assert_eq!(
            w.at(0, 7 * 60).up,
            None,
            "Monday 07:00: still the weekend's off"
        );
        assert_eq!(w.at(0, 8 * 60).up, Some(1 << 20));
        assert_eq!(w.at(4, 23 * 60).up, Some(1 << 20), "Friday night");
        assert_eq!(w.at(6, 12 * 60).up, None, "Sunday");
        let pair = Schedule::parse("00:00,1M:2M 12:00,off").unwrap();
        assert_eq!(
            pair.at(1, 60),
            Rate {
                up: Some(1 << 20),
                down: Some(2 << 20)
            }
        );
    }

    #[test]
    fn the_bucket_holds_the_rate() {
        // 1 MiB/s: taking greedily for 0.5 s moves about 0.5 MiB.
        let l = Limiter::new(Schedule::parse("1M").unwrap());
        let start = Instant::now();
        let mut moved = 0usize;
        while start.elapsed() < Duration::from_millis(500) {
            match l.take(Way::Up, 64 * 1024) {
                Ok(n) => moved += n,
                Err(wait) => std::thread::sleep(wait),
            }
        }
        let want = 0.5 * (1 << 20) as f64;
        assert!(
            (moved as f64) > want * 0.8 && (moved as f64) < want * 1.3,
            "moved {moved} in 0.5 s at 1 MiB/s"
        );
        let up_only = Limiter::new(Schedule::parse("1M:off").unwrap());
        assert_eq!(
            up_only.take(Way::Down, 1 << 30),
            Ok(1 << 30),
            "downloads unlimited"
        );
    }
}
