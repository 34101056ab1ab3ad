//! Rate limits: `[limits] max_posts_per_hour` (every account together) and
//! `[accounts.NAME] max_posts_per_hour`, counted from the journal's sends in the last hour.
//!
//! The shell reads the ledger from the state store (`Store::ledger`: `sent`, `retracted`,
//! `pending` and `unknown` deliveries); the pure core ([`held`]) decides with them and `now`.
//! A send counts while `now - 1 h < sent_at <= now`; a retracted post still counts, because it
//! went out. The post being judged never counts against itself, so re-running a `gate post`
//! that already went out still prints its URL instead of being held by its own send.

use chrono::{DateTime, Duration, Utc};

/// A delivery that went out or may have (`sent`, `retracted`, `pending`, `unknown`), as the
/// state store reports it for rate limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    pub digest: String,
    pub account: String,
    pub at: DateTime<Utc>,
}

/// The window a limit counts over.
pub const WINDOW: Duration = Duration::hours(1);

/// The journal's sends that may count at `now`, passed to the core in `evaluate::Context`.
#[derive(Debug, Clone, Default)]
pub struct Sends(pub Vec<Send>);

/// A limit that is reached: how many sends count, and when enough of them leave the window
/// for one more post to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub count: usize,
    pub until: DateTime<Utc>,
}

/// Whether one more send at `now` would exceed `limit`, given the times of the sends that
/// may count (any order; those outside the window are ignored).
pub fn held(
    limit: u32,
    times: impl IntoIterator<Item = DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<Held> {
    let mut times: Vec<DateTime<Utc>> = times
        .into_iter()
        .filter(|t| *t > now - WINDOW && *t <= now)
        .collect();
    let limit = limit as usize;
    if times.len() < limit {
        return None;
    }
    times.sort();
    // Once the oldest `count - limit + 1` sends have left the window, `limit - 1` remain.
    let count = times.len();
    Some(Held {
        count,
        until: times[count - limit] + WINDOW,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(m: i64) -> DateTime<Utc> {
        "2026-11-23T10:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::minutes(m)
    }

    #[test]
    fn a_limit_holds_until_the_oldest_counted_send_leaves_the_hour() {
        /// limit, minutes of the sends, minute of `now`, expected (count, minute of `until`)
        type Case = (u32, &'static [i64], i64, Option<(usize, i64)>);
        let cases: &[Case] = &[
            (2, &[], 30, None),
            (2, &[0], 30, None),
            (2, &[0, 10], 30, Some((2, 60))),
            (2, &[10, 0], 30, Some((2, 60))),
            // Three sends against a limit of two: two must leave before one more fits.
            (2, &[0, 10, 20], 30, Some((3, 70))),
            (1, &[0, 10, 20], 30, Some((3, 80))),
            // A send exactly an hour old has left the window; one in the future does not count.
            (2, &[0, 10], 60, None),
            (2, &[1, 10], 60, Some((2, 61))),
            (2, &[0, 90], 30, None),
        ];
        for (limit, sends, now, expected) in cases {
            let got = held(*limit, sends.iter().map(|m| at(*m)), at(*now));
            let expected = expected.map(|(count, until)| Held {
                count,
                until: at(until),
            });
            assert_eq!(got, expected, "limit {limit}, sends {sends:?}, now {now}");
        }
    }

    #[test]
    fn held_until_is_the_first_instant_one_more_send_fits() {
        // Against a minute-by-minute reference: at `until` the post fits, a minute before it does not.
        let sends = [0, 5, 5, 17, 42, 43];
        for limit in 1..=6 {
            for now in 43..120 {
                let times = sends.iter().map(|m| at(*m));
                let fits =
                    |t: DateTime<Utc>| held(limit, sends.iter().map(|m| at(*m)), t).is_none();
                match held(limit, times, at(now)) {
                    None => assert!(fits(at(now))),
                    Some(h) => {
                        assert!(fits(h.until), "limit {limit} now {now}");
                        assert!(
                            !fits(h.until - Duration::minutes(1)),
                            "limit {limit} now {now}"
                        );
                    }
                }
            }
        }
    }
}
