//! Quiet hours and blackouts: when a brand account must not post, and when it may again.
//!
//! Everything here is a pure function of its arguments: the caller passes `now`, and the
//! policy loader passes already-parsed windows and resolved blackout instants. Local times are
//! resolved against IANA zones so that a window keeps its wall-clock span across DST changes:
//! a `from` or `to` that does not exist (spring forward) moves to the transition instant, and
//! one that exists twice (fall back) resolves to the side that makes the window longer, because
//! an unintended quiet minute is cheap and an unintended post is not.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc,
    Weekday,
};
use chrono_tz::Tz;

/// How far `until` follows a chain of covering windows before giving up. A schedule that is
/// quiet for more than this (e.g. all day, every day) has no end worth reporting.
const HORIZON_DAYS: i64 = 400;

/// A recurring quiet window, kept in wall-clock terms so DST shifts do not move it.
///
/// `days` are the days a window *starts* on (empty means every day), so a Friday
/// 20:00–08:00 window still covers early Saturday. With both `from` and `to` omitted the window
/// is all day; if only one is omitted it stands for midnight (the loader should normally reject
/// that, but the model gives it a defined meaning rather than panicking).
#[derive(Debug, Clone)]
pub struct Window {
    pub days: Vec<Weekday>,
    pub from: Option<NaiveTime>,
    pub to: Option<NaiveTime>,
    pub tz: Tz,
    pub reason: Option<String>,
}

/// A one-off `[from, to)` interval, already pinned to UTC so it needs no zone at check time.
#[derive(Debug, Clone)]
pub struct Blackout {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub reason: Option<String>,
}

/// The quiet-time part of a policy; order matters because `covering` reports in policy order.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    pub windows: Vec<Window>,
    pub blackouts: Vec<Blackout>,
}

/// One reason a moment is quiet, with the concrete interval so the user can see when it lifts.
///
/// `index` points into `Schedule::windows` or `Schedule::blackouts` so callers can quote the
/// policy's own `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cover {
    Quiet {
        index: usize,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    Blackout {
        index: usize,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
}

impl Cover {
    fn end(&self) -> DateTime<Utc> {
        match self {
            Cover::Quiet { end, .. } | Cover::Blackout { end, .. } => *end,
        }
    }
}

/// Which edge of an interval a local time is, so ambiguous times can err on the quiet side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Earlier instant in a fold; the transition instant in a gap.
    Start,
    /// Later instant in a fold; the transition instant in a gap.
    End,
}

impl Window {
    /// The `[start, end)` occurrence of this window that starts on local date `day`, or `None`
    /// if the window is not listed for that weekday or the occurrence is empty.
    fn occurrence(&self, day: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if !self.days.is_empty() && !self.days.contains(&day.weekday()) {
            return None;
        }
        let from = self.from.unwrap_or(NaiveTime::MIN);
        let to = self.to.unwrap_or(NaiveTime::MIN);
        let end_day = if to <= from { day.succ_opt()? } else { day };
        let start = resolve_local(day.and_time(from), self.tz, Side::Start);
        let end = resolve_local(end_day.and_time(to), self.tz, Side::End);
        (start < end).then_some((start, end))
    }
}

impl Schedule {
    /// Every window occurrence and blackout covering `now`, in policy order (windows first).
    ///
    /// All of them are returned, not just the first, so the caller can explain every reason
    /// and `until` can jump past the longest one in a single step.
    pub fn covering(&self, now: DateTime<Utc>) -> Vec<Cover> {
        let mut out = Vec::new();
        for (index, window) in self.windows.iter().enumerate() {
            let local_day = now.with_timezone(&window.tz).date_naive();
            // An occurrence lasts at most a day plus a DST shift, so it started within the
            // last two local dates; the next date is included for folds that cross midnight.
            for offset in -2..=1 {
                let Some(day) = local_day.checked_add_signed(Duration::days(offset)) else {
                    continue;
                };
                if let Some((start, end)) = window.occurrence(day) {
                    if start <= now && now < end {
                        out.push(Cover::Quiet { index, start, end });
                    }
                }
            }
        }
        for (index, blackout) in self.blackouts.iter().enumerate() {
            if blackout.from <= now && now < blackout.to {
                out.push(Cover::Blackout {
                    index,
                    start: blackout.from,
                    end: blackout.to,
                });
            }
        }
        out
    }

    /// The first instant at or after `now` that nothing covers; None if nothing ends within the
    /// horizon.
    ///
    /// Adjacent or overlapping windows and blackouts chain, because a post held "until 08:00"
    /// that is then held again at 08:00 would be a broken promise.
    pub fn until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.until_within(now, Duration::days(HORIZON_DAYS))
    }

    fn until_within(&self, now: DateTime<Utc>, horizon: Duration) -> Option<DateTime<Utc>> {
        let limit = now + horizon;
        let mut t = now;
        loop {
            // Every cover ends after `t`, so `t` strictly increases and the limit ends the loop.
            match self.covering(t).iter().map(Cover::end).max() {
                None => return Some(t),
                Some(end) if end > limit => return None,
                Some(end) => t = end,
            }
        }
    }
}

/// Pins a zone-less local time to one instant, choosing by `side` where the clock repeats and
/// using the transition instant where the clock skips, so `[Start, End)` never loses quiet time.
///
/// The policy loader uses it for blackouts written without an offset; windows use it per
/// occurrence.
pub fn resolve_local(naive: NaiveDateTime, tz: Tz, side: Side) -> DateTime<Utc> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => {
            let (a, b) = (a.with_timezone(&Utc), b.with_timezone(&Utc));
            match side {
                Side::Start => a.min(b),
                Side::End => a.max(b),
            }
        }
        LocalResult::None => gap_end(naive, tz),
    }
}

/// The first instant whose local time is at or after `naive`, for a `naive` inside a gap.
///
/// UTC offsets lie within -12h..+14h, so the instant is bracketed by `naive` read as UTC
/// minus 15h (local time surely earlier) and plus 13h (surely later); a binary search over
/// whole seconds then finds the jump, which is the only place local time can pass a
/// non-existent `naive`.
fn gap_end(naive: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    let local = |secs: i64| {
        DateTime::from_timestamp(secs, 0)
            .map(|t| t.with_timezone(&tz).naive_local())
            .unwrap_or(NaiveDateTime::MAX)
    };
    let base = naive.and_utc().timestamp();
    let (mut lo, mut hi) = (base - 15 * 3600, base + 13 * 3600);
    // Invariant: local(lo) < naive <= local(hi).
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if local(mid) >= naive {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::from_timestamp(hi, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Parses a policy time of day; strict `HH:MM` so typos like `8:00pm` fail loudly.
///
/// `24:00` is rejected: "until midnight" is written `to = "00:00"`, which already means the
/// next day because `to <= from`.
pub fn parse_hhmm(s: &str) -> Option<NaiveTime> {
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' {
        return None;
    }
    let two = |x: u8, y: u8| {
        (x.is_ascii_digit() && y.is_ascii_digit())
            .then(|| u32::from(x - b'0') * 10 + u32::from(y - b'0'))
    };
    let h = two(b[0], b[1])?;
    let m = two(b[3], b[4])?;
    if h > 23 || m > 59 {
        return None;
    }
    NaiveTime::from_hms_opt(h, m, 0)
}

/// Parses a policy day name; accepts `mon` or `monday` in any case since people write both.
pub fn parse_weekday(s: &str) -> Option<Weekday> {
    const NAMES: [(&str, &str, Weekday); 7] = [
        ("mon", "monday", Weekday::Mon),
        ("tue", "tuesday", Weekday::Tue),
        ("wed", "wednesday", Weekday::Wed),
        ("thu", "thursday", Weekday::Thu),
        ("fri", "friday", Weekday::Fri),
        ("sat", "saturday", Weekday::Sat),
        ("sun", "sunday", Weekday::Sun),
    ];
    NAMES
        .iter()
        .find(|(short, long, _)| s.eq_ignore_ascii_case(short) || s.eq_ignore_ascii_case(long))
        .map(|&(_, _, day)| day)
}
