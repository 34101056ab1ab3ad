//! Quiet hours and blackouts: when a brand account must not post, and when it may again.
//!
//! Everything here is a pure function of its arguments: the caller passes `now`, and the
//! policy loader passes already-parsed windows and resolved blackout instants. Local times are
//! resolved against IANA zones so that a window keeps its wall-clock span across DST changes:
//! a `from` or `to` that does not exist (spring forward) moves to the transition instant, and
//! one that exists twice (fall back) resolves to the side that makes the window longer, because
//! an unintended quiet minute is cheap and an unintended post is not.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone, Utc, Weekday,
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
    /// Days an occurrence may start on, judged in `tz`; empty means every day.
    pub days: Vec<Weekday>,
    /// Wall-clock start; `None` with `to` also `None` makes the window all day.
    pub from: Option<NaiveTime>,
    /// Wall-clock end, exclusive; at or before `from` it falls on the next day.
    pub to: Option<NaiveTime>,
    /// The zone the wall clock is read in, already defaulted from the policy by the loader.
    pub tz: Tz,
    /// Shown to the author so a hold explains itself.
    pub reason: Option<String>,
}

/// A one-off `[from, to)` interval, already pinned to UTC so it needs no zone at check time.
#[derive(Debug, Clone)]
pub struct Blackout {
    /// First covered instant.
    pub from: DateTime<Utc>,
    /// First instant no longer covered; at or before `from` the blackout covers nothing.
    pub to: DateTime<Utc>,
    /// Shown to the author so a hold explains itself.
    pub reason: Option<String>,
}

/// The quiet-time part of a policy; order matters because `covering` reports in policy order.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    /// Recurring quiet hours, in policy order.
    pub windows: Vec<Window>,
    /// One-off blackouts, in policy order.
    pub blackouts: Vec<Blackout>,
}

/// One reason a moment is quiet, with the concrete interval so the user can see when it lifts.
///
/// `index` points into `Schedule::windows` or `Schedule::blackouts` so callers can quote the
/// policy's own `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cover {
    /// An occurrence of `windows[index]`, resolved to the instants it runs between.
    Quiet {
        index: usize,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    /// `blackouts[index]`, with its own endpoints.
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
            let Some(local_day) = wall_time(now, window.tz).map(|t| t.date()) else {
                continue; // only at the very ends of chrono's range
            };
            // An occurrence ends by the local day after it starts, so it started on this local
            // date or the one before; one more date each way is cheap insurance for zones
            // whose clocks jump across midnight.
            for offset in -2..=1 {
                let Some(day) = local_day.checked_add_signed(Duration::days(offset)) else {
                    continue;
                };
                if let Some((start, end)) = window.occurrence(day)
                    && start <= now
                    && now < end
                {
                    out.push(Cover::Quiet { index, start, end });
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
        let limit = now
            .checked_add_signed(horizon)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
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
/// Every offset in the tz database (old local mean times included) is under 18 hours either
/// way, so `naive` read as UTC minus 18h has an earlier wall time and plus 18h a later one,
/// however long the gap; a binary search over whole seconds then finds the jump, which is the
/// only place local time can pass a non-existent `naive`.
fn gap_end(naive: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    let local = |secs: i64| {
        DateTime::from_timestamp(secs, 0)
            .and_then(|t| wall_time(t, tz))
            .unwrap_or(NaiveDateTime::MAX)
    };
    let base = naive.and_utc().timestamp();
    let (mut lo, mut hi) = (base - 18 * 3600, base + 18 * 3600);
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

/// The wall-clock reading of `t` in `tz`; `None` instead of chrono's panic when that reading
/// falls outside chrono's range, because a malformed policy must not crash the gate.
fn wall_time(t: DateTime<Utc>, tz: Tz) -> Option<NaiveDateTime> {
    let offset = tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    t.naive_utc().checked_add_offset(offset)
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{
        America::New_York, Asia::Tokyo, Australia::Lord_Howe, Europe::London, Pacific,
    };

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("bad test instant {s}: {e}"))
            .with_timezone(&Utc)
    }

    fn naive(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
            .unwrap_or_else(|e| panic!("bad test local time {s}: {e}"))
    }

    fn hm(s: &str) -> Option<NaiveTime> {
        if s.is_empty() {
            None
        } else {
            Some(parse_hhmm(s).unwrap_or_else(|| panic!("bad test time {s}")))
        }
    }

    /// `days` is comma-separated ("" = every day); empty `from`/`to` = omitted.
    fn win(days: &str, from: &str, to: &str, tz: Tz) -> Window {
        Window {
            days: days
                .split(',')
                .filter(|d| !d.is_empty())
                .map(|d| parse_weekday(d).unwrap_or_else(|| panic!("bad test day {d}")))
                .collect(),
            from: hm(from),
            to: hm(to),
            tz,
            reason: None,
        }
    }

    fn blackout(from: &str, to: &str) -> Blackout {
        Blackout {
            from: utc(from),
            to: utc(to),
            reason: None,
        }
    }

    fn only(windows: Vec<Window>) -> Schedule {
        Schedule {
            windows,
            blackouts: vec![],
        }
    }

    #[test]
    fn parses_times_strictly() {
        let cases: &[(&str, Option<(u32, u32)>)] = &[
            ("00:00", Some((0, 0))),
            ("08:05", Some((8, 5))),
            ("23:59", Some((23, 59))),
            ("24:00", None),
            ("23:60", None),
            ("8:00", None),
            ("08:0", None),
            ("0800", None),
            ("08.00", None),
            (" 08:00", None),
            ("08:00 ", None),
            ("+8:00", None),
            ("08:00:00", None),
            ("", None),
            ("ab:cd", None),
            ("０８:00", None),
        ];
        for &(s, want) in cases {
            let want = want.map(|(h, m)| NaiveTime::from_hms_opt(h, m, 0).unwrap());
            assert_eq!(parse_hhmm(s), want, "{s:?}");
        }
    }

    #[test]
    fn parses_weekdays() {
        let cases: &[(&str, Option<Weekday>)] = &[
            ("mon", Some(Weekday::Mon)),
            ("TUE", Some(Weekday::Tue)),
            ("Wednesday", Some(Weekday::Wed)),
            ("thu", Some(Weekday::Thu)),
            ("FRIDAY", Some(Weekday::Fri)),
            ("sat", Some(Weekday::Sat)),
            ("sunday", Some(Weekday::Sun)),
            ("tues", None),
            ("mo", None),
            ("", None),
            (" mon", None),
            ("monday ", None),
        ];
        for &(s, want) in cases {
            assert_eq!(parse_weekday(s), want, "{s:?}");
        }
    }

    /// (schedule, instant, covered?, expected until)
    type Case = (
        &'static str,
        Schedule,
        &'static str,
        bool,
        Option<&'static str>,
    );

    fn check(cases: Vec<Case>) {
        for (name, schedule, at, covered, until) in cases {
            let t = utc(at);
            assert_eq!(
                !schedule.covering(t).is_empty(),
                covered,
                "{name}: covering {at}"
            );
            assert_eq!(schedule.until(t), until.map(utc), "{name}: until {at}");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn start_days_and_past_midnight() {
        // 2026-11-20 is a Friday; London is on GMT then.
        let fri = || only(vec![win("fri", "20:00", "08:00", London)]);
        let mon_thu = || only(vec![win("mon,tue,wed,thu", "20:00", "08:00", London)]);
        let weekdays = || only(vec![win("mon,tue,wed,thu,fri", "20:00", "08:00", London)]);
        check(vec![
            ("fri sat 07:59", fri(), "2026-11-21T07:59:00Z", true, Some("2026-11-21T08:00:00Z")),
            ("fri sat 08:00", fri(), "2026-11-21T08:00:00Z", false, Some("2026-11-21T08:00:00Z")),
            ("fri fri 19:59", fri(), "2026-11-20T19:59:59Z", false, Some("2026-11-20T19:59:59Z")),
            ("fri fri 20:00", fri(), "2026-11-20T20:00:00Z", true, Some("2026-11-21T08:00:00Z")),
            ("fri fri 23:59", fri(), "2026-11-20T23:59:00Z", true, Some("2026-11-21T08:00:00Z")),
            ("fri thu 21:00", fri(), "2026-11-19T21:00:00Z", false, Some("2026-11-19T21:00:00Z")),
            ("mon-thu sat 07:59", mon_thu(), "2026-11-21T07:59:00Z", false, Some("2026-11-21T07:59:00Z")),
            ("mon-thu fri 07:59", mon_thu(), "2026-11-20T07:59:00Z", true, Some("2026-11-20T08:00:00Z")),
            ("mon-thu fri 20:00", mon_thu(), "2026-11-20T20:00:00Z", false, Some("2026-11-20T20:00:00Z")),
            ("mon-thu mon 07:00", mon_thu(), "2026-11-23T07:00:00Z", false, Some("2026-11-23T07:00:00Z")),
            ("weekdays sat 07:00", weekdays(), "2026-11-21T07:00:00Z", true, Some("2026-11-21T08:00:00Z")),
            ("weekdays sun 07:00", weekdays(), "2026-11-22T07:00:00Z", false, Some("2026-11-22T07:00:00Z")),
            // Within the day, not past midnight.
            ("lunch", only(vec![win("", "12:00", "13:30", London)]), "2026-11-22T13:29:00Z", true, Some("2026-11-22T13:30:00Z")),
            // to == from is a full 24 hours, not empty.
            ("24h", only(vec![win("sun", "09:00", "09:00", London)]), "2026-11-23T08:59:00Z", true, Some("2026-11-23T09:00:00Z")),
            ("24h start", only(vec![win("sun", "09:00", "09:00", London)]), "2026-11-22T09:00:00Z", true, Some("2026-11-23T09:00:00Z")),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn all_day_windows() {
        let weekend = || only(vec![win("sat,sun", "", "", London)]);
        let every = || only(vec![win("", "", "", London)]);
        let six = || only(vec![win("mon,tue,wed,thu,fri,sat", "", "", London)]);
        check(vec![
            ("weekend fri", weekend(), "2026-11-20T23:59:59Z", false, Some("2026-11-20T23:59:59Z")),
            ("weekend sat", weekend(), "2026-11-21T00:00:00Z", true, Some("2026-11-23T00:00:00Z")),
            ("weekend sun", weekend(), "2026-11-22T23:59:00Z", true, Some("2026-11-23T00:00:00Z")),
            ("weekend mon", weekend(), "2026-11-23T00:00:00Z", false, Some("2026-11-23T00:00:00Z")),
            ("every day", every(), "2026-11-22T12:00:00Z", true, None),
            // Six all-day windows chain to the one free day.
            ("six days", six(), "2026-11-23T12:00:00Z", true, Some("2026-11-29T00:00:00Z")),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn per_window_zone_and_zones_without_dst() {
        // 2026-11-23 is a Monday; New York is UTC-5, Tokyo UTC+9.
        let ny = || only(vec![win("mon", "09:00", "17:00", New_York)]);
        let tokyo = || only(vec![win("mon", "22:00", "06:00", Tokyo)]);
        let mixed = || {
            only(vec![
                win("mon", "09:00", "17:00", London),
                win("mon", "09:00", "17:00", New_York),
            ])
        };
        check(vec![
            ("ny before", ny(), "2026-11-23T13:59:00Z", false, Some("2026-11-23T13:59:00Z")),
            ("ny in", ny(), "2026-11-23T14:00:00Z", true, Some("2026-11-23T22:00:00Z")),
            ("ny end", ny(), "2026-11-23T22:00:00Z", false, Some("2026-11-23T22:00:00Z")),
            ("tokyo in", tokyo(), "2026-11-23T13:00:00Z", true, Some("2026-11-23T21:00:00Z")),
            ("tokyo before", tokyo(), "2026-11-23T12:59:00Z", false, Some("2026-11-23T12:59:00Z")),
            // Sunday 23:00 in Tokyo is Sunday UTC 14:00: the Monday window has not started.
            ("tokyo sunday", tokyo(), "2026-11-22T14:00:00Z", false, Some("2026-11-22T14:00:00Z")),
            // London 09:00-17:00 then New York 14:00Z-22:00Z overlap: chain to 22:00Z.
            ("mixed", mixed(), "2026-11-23T10:00:00Z", true, Some("2026-11-23T22:00:00Z")),
        ]);
        let covers = mixed().covering(utc("2026-11-23T15:00:00Z"));
        assert_eq!(
            covers,
            vec![
                Cover::Quiet { index: 0, start: utc("2026-11-23T09:00:00Z"), end: utc("2026-11-23T17:00:00Z") },
                Cover::Quiet { index: 1, start: utc("2026-11-23T14:00:00Z"), end: utc("2026-11-23T22:00:00Z") },
            ]
        );
    }

    #[test]
    #[rustfmt::skip]
    fn blackouts_and_chains() {
        // Blackout endpoints written with offsets end up as plain UTC instants.
        let xmas = || Schedule {
            windows: vec![],
            blackouts: vec![blackout("2026-12-24T00:00:00+01:00", "2026-12-27T00:00:00-05:00")],
        };
        // Evening window, then an adjacent morning window, then a blackout to noon, then
        // an overlapping blackout.
        let chain = || Schedule {
            windows: vec![
                win("mon", "20:00", "08:00", London),
                win("tue", "08:00", "09:00", London),
            ],
            blackouts: vec![
                blackout("2026-11-24T09:00:00Z", "2026-11-24T12:00:00Z"),
                blackout("2026-11-24T11:00:00+00:00", "2026-11-24T14:30:00+02:00"),
            ],
        };
        check(vec![
            ("xmas before", xmas(), "2026-12-23T22:59:59Z", false, Some("2026-12-23T22:59:59Z")),
            ("xmas start", xmas(), "2026-12-23T23:00:00Z", true, Some("2026-12-27T05:00:00Z")),
            ("xmas end", xmas(), "2026-12-27T05:00:00Z", false, Some("2026-12-27T05:00:00Z")),
            ("chain", chain(), "2026-11-23T21:00:00Z", true, Some("2026-11-24T12:30:00Z")),
            ("chain mid", chain(), "2026-11-24T08:30:00Z", true, Some("2026-11-24T12:30:00Z")),
            ("chain after", chain(), "2026-11-24T12:30:00Z", false, Some("2026-11-24T12:30:00Z")),
        ]);
        let covers = chain().covering(utc("2026-11-24T11:30:00Z"));
        assert_eq!(
            covers,
            vec![
                Cover::Blackout { index: 0, start: utc("2026-11-24T09:00:00Z"), end: utc("2026-11-24T12:00:00Z") },
                Cover::Blackout { index: 1, start: utc("2026-11-24T11:00:00Z"), end: utc("2026-11-24T12:30:00Z") },
            ]
        );
        // A gap of one second breaks the chain.
        let broken = Schedule {
            windows: vec![win("mon", "20:00", "08:00", London)],
            blackouts: vec![blackout("2026-11-24T08:00:01Z", "2026-11-24T12:00:00Z")],
        };
        assert_eq!(broken.until(utc("2026-11-23T21:00:00Z")), Some(utc("2026-11-24T08:00:00Z")));
    }

    #[test]
    fn resolves_local_times_across_transitions() {
        use Side::{End, Start};
        let cases: &[(Tz, &str, Side, &str)] = &[
            // Plain times.
            (London, "2026-07-01T12:00", Start, "2026-07-01T11:00:00Z"),
            (Tokyo, "2026-03-29T01:30", End, "2026-03-28T16:30:00Z"),
            // London gap 01:00 -> 02:00 on 2026-03-29: both sides move to the transition.
            (London, "2026-03-29T01:00", Start, "2026-03-29T01:00:00Z"),
            (London, "2026-03-29T01:30", Start, "2026-03-29T01:00:00Z"),
            (London, "2026-03-29T01:59", End, "2026-03-29T01:00:00Z"),
            (London, "2026-03-29T02:00", Start, "2026-03-29T01:00:00Z"),
            // London fold 01:00-02:00 twice on 2026-10-25.
            (London, "2026-10-25T01:30", Start, "2026-10-25T00:30:00Z"),
            (London, "2026-10-25T01:30", End, "2026-10-25T01:30:00Z"),
            (London, "2026-10-25T02:00", End, "2026-10-25T02:00:00Z"),
            (London, "2026-10-25T02:00", Start, "2026-10-25T02:00:00Z"),
            // The bottom of the fold exists twice too: 01:00 BST and 01:00 GMT.
            (London, "2026-10-25T01:00", Start, "2026-10-25T00:00:00Z"),
            (London, "2026-10-25T01:00", End, "2026-10-25T01:00:00Z"),
            // New York gap 02:00 -> 03:00 on 2026-03-08, fold 01:00-02:00 on 2026-11-01.
            (New_York, "2026-03-08T02:30", Start, "2026-03-08T07:00:00Z"),
            (New_York, "2026-03-08T02:30", End, "2026-03-08T07:00:00Z"),
            (New_York, "2026-11-01T01:30", Start, "2026-11-01T05:30:00Z"),
            (New_York, "2026-11-01T01:30", End, "2026-11-01T06:30:00Z"),
            // Lord Howe shifts by 30 minutes: gap 02:00 -> 02:30 on 2026-10-04,
            // fold 01:30-02:00 on 2026-04-05.
            (Lord_Howe, "2026-10-04T02:15", Start, "2026-10-03T15:30:00Z"),
            (Lord_Howe, "2026-10-04T02:30", Start, "2026-10-03T15:30:00Z"),
            (Lord_Howe, "2026-04-05T01:45", Start, "2026-04-04T14:45:00Z"),
            (Lord_Howe, "2026-04-05T01:45", End, "2026-04-04T15:15:00Z"),
            (Lord_Howe, "2026-04-05T01:30", End, "2026-04-04T15:00:00Z"),
            // Samoa skipped all of 2011-12-30 when it crossed the date line.
            (
                Pacific::Apia,
                "2011-12-30T12:00",
                Start,
                "2011-12-30T10:00:00Z",
            ),
            (
                Pacific::Apia,
                "2011-12-30T00:00",
                End,
                "2011-12-30T10:00:00Z",
            ),
            (
                Pacific::Apia,
                "2011-12-31T00:00",
                Start,
                "2011-12-30T10:00:00Z",
            ),
        ];
        for &(tz, local, side, want) in cases {
            assert_eq!(
                resolve_local(naive(local), tz, side),
                utc(want),
                "{tz} {local} {side:?}"
            );
        }
    }

    #[test]
    #[rustfmt::skip]
    fn windows_across_dst() {
        check(vec![
            // A window from 01:30 on the London gap day starts at 02:00 BST = 01:00Z.
            ("gap from", only(vec![win("sun", "01:30", "06:00", London)]), "2026-03-29T00:59:00Z", false, Some("2026-03-29T00:59:00Z")),
            ("gap from", only(vec![win("sun", "01:30", "06:00", London)]), "2026-03-29T01:00:00Z", true, Some("2026-03-29T05:00:00Z")),
            // Ending in the gap ends at the transition.
            ("gap to", only(vec![win("sat", "22:00", "01:30", London)]), "2026-03-29T00:59:00Z", true, Some("2026-03-29T01:00:00Z")),
            // Wholly inside the gap: empty that day.
            ("gap inside", only(vec![win("sun", "01:15", "01:45", London)]), "2026-03-29T01:00:00Z", false, Some("2026-03-29T01:00:00Z")),
            // Same wall-clock span: 22:00-06:00 is 7 hours on the spring night...
            ("spring span", only(vec![win("sat", "22:00", "06:00", London)]), "2026-03-28T22:00:00Z", true, Some("2026-03-29T05:00:00Z")),
            // ...and 9 hours on the autumn night.
            ("autumn span", only(vec![win("sat", "22:00", "06:00", London)]), "2026-10-24T21:00:00Z", true, Some("2026-10-25T06:00:00Z")),
            // Fold: from 01:30 takes the first 01:30 (BST, 00:30Z)...
            ("fold from", only(vec![win("sun", "01:30", "03:00", London)]), "2026-10-25T00:30:00Z", true, Some("2026-10-25T03:00:00Z")),
            ("fold from", only(vec![win("sun", "01:30", "03:00", London)]), "2026-10-25T00:29:00Z", false, Some("2026-10-25T00:29:00Z")),
            // ...and to 01:30 takes the second (GMT, 01:30Z).
            ("fold to", only(vec![win("sat", "23:00", "01:30", London)]), "2026-10-25T01:29:00Z", true, Some("2026-10-25T01:30:00Z")),
            ("fold to", only(vec![win("sat", "23:00", "01:30", London)]), "2026-10-24T22:00:00Z", true, Some("2026-10-25T01:30:00Z")),
            // `to` at the very bottom of the fold still waits for the second pass.
            ("fold bottom", only(vec![win("sat", "23:00", "01:00", London)]), "2026-10-25T00:59:00Z", true, Some("2026-10-25T01:00:00Z")),
            // New York, 01:00-02:00 happens twice on 2026-11-01 and is quiet both times.
            ("ny fold", only(vec![win("sun", "01:00", "02:00", New_York)]), "2026-11-01T05:00:00Z", true, Some("2026-11-01T07:00:00Z")),
            ("ny gap", only(vec![win("sun", "02:00", "03:00", New_York)]), "2026-03-08T07:00:00Z", false, Some("2026-03-08T07:00:00Z")),
            // Lord Howe: 01:00-03:00 across its half-hour spring forward is 90 minutes.
            ("lhi gap", only(vec![win("sun", "01:00", "03:00", Lord_Howe)]), "2026-10-03T14:30:00Z", true, Some("2026-10-03T16:00:00Z")),
            // ...and across its half-hour fall back 150 minutes.
            ("lhi fold", only(vec![win("sun", "01:00", "03:00", Lord_Howe)]), "2026-04-04T14:00:00Z", true, Some("2026-04-04T16:30:00Z")),
        ]);
    }

    #[test]
    fn horizon_is_inclusive() {
        // Quiet all Monday and Tuesday (2026-11-23, 24): free exactly two days after Monday 00:00.
        let s = only(vec![win("mon,tue", "", "", London)]);
        let now = utc("2026-11-23T00:00:00Z");
        let free = Some(utc("2026-11-25T00:00:00Z"));
        assert_eq!(s.until(now), free);
        assert_eq!(s.until_within(now, Duration::days(2)), free);
        assert_eq!(
            s.until_within(now, Duration::days(2) - Duration::seconds(1)),
            None
        );
    }

    #[test]
    fn fold_at_start_and_end_can_overlap_occurrences() {
        // A 24-hour window at 01:30 on the London fold day: yesterday's ends at the second
        // 01:30 and today's starts at the first, so both cover the hour in between.
        let s = only(vec![win("", "01:30", "01:30", London)]);
        let covers = s.covering(utc("2026-10-25T01:00:00Z"));
        assert_eq!(covers.len(), 2, "{covers:?}");
        assert!(
            covers
                .iter()
                .all(|c| matches!(c, Cover::Quiet { index: 0, .. }))
        );
    }

    #[test]
    fn extreme_instants_do_not_panic() {
        let s = Schedule {
            windows: vec![
                Window {
                    days: vec![],
                    from: None,
                    to: None,
                    tz: chrono_tz::Pacific::Kiritimati,
                    reason: None,
                },
                Window {
                    days: vec![],
                    from: parse_hhmm("20:00"),
                    to: parse_hhmm("08:00"),
                    tz: chrono_tz::Etc::GMTPlus12,
                    reason: None,
                },
            ],
            blackouts: vec![],
        };
        for t in [DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MIN_UTC] {
            let _ = s.covering(t);
            let _ = s.until(t);
        }
    }

    /// A brute-force model of the spec, deliberately sharing nothing with the code under
    /// test but the data types: it never calls `resolve_local` or `Window::occurrence`, and
    /// finds every edge by scanning UTC minutes and comparing their local wall times.
    mod reference {
        use super::*;
        use std::collections::HashMap;

        const MINUTE: i64 = 60;

        pub struct Model {
            /// Minute number (seconds since the epoch / 60) of the first scanned minute.
            lo: i64,
            /// Per window: its occurrences as `[start, end)` minute numbers, by start date.
            occurrences: Vec<Vec<(i64, i64)>>,
            blackouts: Vec<(DateTime<Utc>, DateTime<Utc>)>,
            /// Whether each scanned minute is covered by anything.
            covered: Vec<bool>,
        }

        fn at_minute(m: i64) -> DateTime<Utc> {
            DateTime::from_timestamp(m * MINUTE, 0).expect("minute in range")
        }

        impl Model {
            /// Scans the minutes `[first, last)` and every start date whose occurrence could
            /// touch `[probe_lo, probe_hi]`; the caller leaves days of slack on both sides.
            pub fn new(
                s: &Schedule,
                first: DateTime<Utc>,
                last: DateTime<Utc>,
                probe_lo: DateTime<Utc>,
                probe_hi: DateTime<Utc>,
            ) -> Model {
                let lo = first.timestamp().div_euclid(MINUTE);
                let n = usize::try_from(last.timestamp().div_euclid(MINUTE) - lo).unwrap();
                let mut local: HashMap<Tz, Vec<NaiveDateTime>> = HashMap::new();
                for w in &s.windows {
                    local.entry(w.tz).or_insert_with(|| {
                        (0..n as i64)
                            .map(|i| at_minute(lo + i).with_timezone(&w.tz).naive_local())
                            .collect()
                    });
                }
                let first_day = probe_lo.date_naive() - Duration::days(3);
                let last_day = probe_hi.date_naive() + Duration::days(2);
                let mut occurrences = Vec::new();
                for w in &s.windows {
                    let wall = &local[&w.tz];
                    let from = w.from.unwrap_or(NaiveTime::MIN);
                    let to = w.to.unwrap_or(NaiveTime::MIN);
                    let mut occ = Vec::new();
                    let mut day = first_day;
                    while day <= last_day {
                        let listed = w.days.is_empty() || w.days.contains(&day.weekday());
                        if listed {
                            let start_wall = day.and_time(from);
                            let end_day = if to <= from {
                                day + Duration::days(1)
                            } else {
                                day
                            };
                            let end_wall = end_day.and_time(to);
                            // First minute whose wall time has reached the start.
                            let s_i = wall.iter().position(|l| *l >= start_wall).unwrap();
                            // The end is the earliest minute that has reached the end wall
                            // time and after which the wall clock never again reads the end
                            // or earlier: so in a fold, the later pass. (Merely "never again
                            // falls short of it" would pick the first pass when `to` is the
                            // very bottom of the fold, e.g. 01:00 on a London fall-back
                            // night, which exists twice and whose later instant is wanted.)
                            let k = wall.iter().rposition(|l| *l <= end_wall).unwrap();
                            let e_i = if wall[k] == end_wall { k } else { k + 1 };
                            assert!(s_i > 0 && e_i < n, "scan range too small for {day}");
                            if s_i < e_i {
                                occ.push((lo + s_i as i64, lo + e_i as i64));
                            }
                        }
                        day += Duration::days(1);
                    }
                    occurrences.push(occ);
                }
                let blackouts: Vec<_> = s.blackouts.iter().map(|b| (b.from, b.to)).collect();
                let mut covered = vec![false; n];
                for &(a, b) in occurrences.iter().flatten() {
                    for c in &mut covered[(a - lo) as usize..(b - lo) as usize] {
                        *c = true;
                    }
                }
                for (i, c) in covered.iter_mut().enumerate() {
                    let t = at_minute(lo + i as i64);
                    // Minute-aligned blackouts only, so checking the minute's first second
                    // is exact.
                    if blackouts.iter().any(|&(a, b)| a <= t && t < b) {
                        *c = true;
                    }
                }
                Model {
                    lo,
                    occurrences,
                    blackouts,
                    covered,
                }
            }

            pub fn covering(&self, t: DateTime<Utc>) -> Vec<Cover> {
                let m = t.timestamp().div_euclid(MINUTE);
                let mut out = Vec::new();
                for (index, occ) in self.occurrences.iter().enumerate() {
                    for &(a, b) in occ {
                        if a <= m && m < b {
                            out.push(Cover::Quiet {
                                index,
                                start: at_minute(a),
                                end: at_minute(b),
                            });
                        }
                    }
                }
                for (index, &(start, end)) in self.blackouts.iter().enumerate() {
                    if start <= t && t < end {
                        out.push(Cover::Blackout { index, start, end });
                    }
                }
                out
            }

            /// First uncovered instant at or after `t`, looking no further than `horizon`
            /// minutes past it.
            pub fn until(&self, t: DateTime<Utc>, horizon: i64) -> Option<DateTime<Utc>> {
                let m = t.timestamp().div_euclid(MINUTE);
                if !self.covered[(m - self.lo) as usize] {
                    return Some(t);
                }
                let limit = t + Duration::minutes(horizon);
                (m + 1..)
                    .map(at_minute)
                    .take_while(|u| *u <= limit)
                    .find(|u| !self.covered[(u.timestamp() / MINUTE - self.lo) as usize])
            }
        }
    }

    /// The 2026 DST transitions of the zones the property test draws from, as UTC instants.
    const TRANSITIONS_2026: [(Tz, &str); 6] = [
        (New_York, "2026-03-08T07:00:00Z"),
        (New_York, "2026-11-01T06:00:00Z"),
        (London, "2026-03-29T01:00:00Z"),
        (London, "2026-10-25T01:00:00Z"),
        (Lord_Howe, "2026-04-04T15:00:00Z"),
        (Lord_Howe, "2026-10-03T15:30:00Z"),
    ];
    const ZONES: [Tz; 4] = [New_York, London, Lord_Howe, Tokyo];

    #[test]
    fn transition_table_is_right() {
        use chrono::Offset;
        for (tz, at) in TRANSITIONS_2026 {
            let t = utc(at);
            let before = tz.offset_from_utc_datetime(&(t - Duration::seconds(1)).naive_utc());
            let after = tz.offset_from_utc_datetime(&t.naive_utc());
            assert_ne!(before.fix(), after.fix(), "{tz} {at}");
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// Horizon for `until` in the property test: long enough to chain a few windows and
        /// blackouts, short enough for the minute-by-minute reference.
        const HORIZON_MINUTES: i64 = 3 * 1440;

        fn slot(i: u32) -> NaiveTime {
            NaiveTime::from_hms_opt(i / 4, (i % 4) * 15, 0).unwrap()
        }

        /// Slots 0..16 (00:00-03:45) hold every 2026 transition of the test zones, so half the
        /// draws land on or near a gap or fold.
        fn slot_index() -> impl Strategy<Value = u32> {
            prop_oneof![0u32..96, 0u32..16]
        }

        /// A random window, in `zone` three times out of four so it meets the anchor's
        /// transition.
        fn window(zone: Tz) -> impl Strategy<Value = Window> {
            let tz = prop_oneof![3 => Just(zone), 1 => (0..ZONES.len()).prop_map(|i| ZONES[i])];
            (0u8..128, slot_index(), slot_index(), 0u8..10, tz).prop_map(
                |(mask, from, to, kind, tz)| {
                    let days = (0..7)
                        .filter(|i| mask & (1 << i) != 0)
                        .map(|i| Weekday::try_from(i).unwrap())
                        .collect();
                    let (from, to) = match kind {
                        0 | 1 => (None, None),
                        2 => (Some(slot(from)), None),
                        3 => (None, Some(slot(to))),
                        _ => (Some(slot(from)), Some(slot(to))),
                    };
                    Window {
                        days,
                        from,
                        to,
                        tz,
                        reason: None,
                    }
                },
            )
        }

        /// The instant the probes cluster around, and the zone windows mostly use.
        fn anchor() -> impl Strategy<Value = (DateTime<Utc>, Tz)> {
            let start_2026 = utc("2026-01-01T00:00:00Z");
            prop_oneof![
                3 => (0..TRANSITIONS_2026.len()).prop_map(|i| {
                    let (tz, at) = TRANSITIONS_2026[i];
                    (utc(at), tz)
                }),
                1 => (0i64..365 * 96, 0..ZONES.len())
                    .prop_map(move |(q, z)| (start_2026 + Duration::minutes(q * 15), ZONES[z])),
            ]
        }

        /// (anchor, windows, blackouts as (start, length) in quarter hours from the anchor,
        /// probes as (minutes from the anchor, extra seconds)).
        type Case = (DateTime<Utc>, Vec<Window>, Vec<(i64, i64)>, Vec<(i64, i64)>);

        fn case() -> impl Strategy<Value = Case> {
            let probe = prop_oneof![
                (-2880i64..=2880, Just(0i64)),
                (-192i64..=192, -1i64..=1).prop_map(|(q, d)| (q * 15 + d, 0)),
                (-2880i64..=2880, 1i64..60),
            ];
            (
                anchor(),
                prop::collection::vec((-384i64..=384, -8i64..=192), 0..=2),
            )
                .prop_flat_map(move |((anchor, zone), blackouts)| {
                    (
                        Just(anchor),
                        prop::collection::vec(window(zone), 1..=3),
                        Just(blackouts),
                        prop::collection::vec(probe.clone(), 12),
                    )
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

            #[test]
            fn matches_minute_by_minute_reference((anchor, windows, blackouts, probes) in case()) {
                let schedule = Schedule {
                    windows,
                    blackouts: blackouts
                        .iter()
                        .map(|&(q, len)| {
                            let from = anchor + Duration::minutes(q * 15);
                            Blackout { from, to: from + Duration::minutes(len * 15), reason: None }
                        })
                        .collect(),
                };
                let probe_lo = anchor - Duration::days(2);
                let probe_hi = anchor + Duration::days(2) + Duration::minutes(HORIZON_MINUTES);
                let model = reference::Model::new(
                    &schedule,
                    probe_lo - Duration::days(5),
                    probe_hi + Duration::days(5),
                    probe_lo,
                    probe_hi,
                );
                for (minutes, secs) in probes {
                    let t = anchor + Duration::minutes(minutes) + Duration::seconds(secs);
                    let got = schedule.covering(t);
                    let want = model.covering(t);
                    prop_assert_eq!(got.is_empty(), want.is_empty(), "covered? at {}", t);
                    prop_assert_eq!(&got, &want, "covers at {}", t);
                    let want_until = model.until(t, HORIZON_MINUTES);
                    prop_assert_eq!(
                        schedule.until_within(t, Duration::minutes(HORIZON_MINUTES)),
                        want_until,
                        "until from {}", t
                    );
                    // Within the short horizon the public, 400-day `until` must agree too.
                    if want_until.is_some() {
                        prop_assert_eq!(schedule.until(t), want_until, "public until from {}", t);
                    }
                }
            }
        }
    }
}
