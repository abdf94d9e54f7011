//! What happens to a row after an attempt: delivered, retried later, or given
//! up. Pure, so the schedule is tested without a clock or a database.

use std::time::Duration;

/// The row's next state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    /// Try again at this time (ms).
    RetryAt(i64),
    /// Every attempt of the schedule failed.
    GiveUp,
}

/// After attempt number `attempts` (1 = the first) ended at `now_ms`.
/// `schedule[i]` is the delay before attempt `i + 1`; the first entry (the
/// delay of the first attempt after the enqueue) is applied by the enqueue.
pub fn after_attempt(success: bool, attempts: i64, now_ms: i64, schedule: &[Duration]) -> Next {
    if success {
        return Next::Delivered;
    }
    let done = attempts.max(1) as usize;
    match schedule.get(done) {
        Some(delay) => Next::RetryAt(now_ms.saturating_add(delay.as_millis() as i64)),
        None => Next::GiveUp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SVIX_SCHEDULE_SECS;

    fn svix() -> Vec<Duration> {
        SVIX_SCHEDULE_SECS
            .iter()
            .map(|s| Duration::from_secs(*s))
            .collect()
    }

    #[test]
    fn failures_follow_svix_schedule_then_give_up() {
        let s = svix();
        let expected_delays_secs = [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000];
        for (i, delay) in expected_delays_secs.iter().enumerate() {
            let attempts = i as i64 + 1;
            assert_eq!(
                after_attempt(false, attempts, 1_000, &s),
                Next::RetryAt(1_000 + delay * 1_000),
                "after attempt {attempts}"
            );
        }
        assert_eq!(after_attempt(false, 8, 1_000, &s), Next::GiveUp);
        assert_eq!(after_attempt(false, 9, 1_000, &s), Next::GiveUp);
    }

    #[test]
    fn a_success_is_final_at_any_attempt() {
        for attempts in 1..=8 {
            assert_eq!(after_attempt(true, attempts, 0, &svix()), Next::Delivered);
        }
    }

    #[test]
    fn a_single_attempt_schedule_gives_up_at_once() {
        assert_eq!(after_attempt(false, 1, 0, &[Duration::ZERO]), Next::GiveUp);
    }
}
