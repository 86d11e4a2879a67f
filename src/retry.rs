//! Retry policies for `Ctx::step_with`.

use std::time::Duration;

/// How often, and how patiently, `Ctx::step_with` re-runs a step body that returned
/// `Err`.
///
/// Attempts are spaced by an exponential backoff on the runtime's clock (virtual in
/// tests, so hour-long backoffs cost nothing). Only the final outcome is journaled,
/// together with the number of attempts it took.
///
/// ```
/// use ordo::RetryPolicy;
/// use std::time::Duration;
///
/// let policy = RetryPolicy::new(5)
///     .backoff(Duration::from_millis(100), 2.0)
///     .max_backoff(Duration::from_secs(2));
/// assert_eq!(policy.delay_after(1), Duration::from_millis(100));
/// assert_eq!(policy.delay_after(2), Duration::from_millis(200));
/// assert_eq!(policy.delay_after(10), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; at least 1.
    pub max_attempts: u32,
    /// The delay after the first failed attempt.
    pub initial_backoff: Duration,
    /// Each later delay is the previous one times this factor.
    pub multiplier: f64,
    /// No delay is longer than this.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Three attempts, 100 ms then 200 ms apart, never more than 10 s.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            multiplier: 2.0,
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// A policy of `max_attempts` attempts (at least one) with the default backoff.
    ///
    /// ```
    /// assert_eq!(ordo::RetryPolicy::new(0).max_attempts, 1);
    /// ```
    pub fn new(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            ..RetryPolicy::default()
        }
    }

    /// Sets the first delay and the factor each later delay grows by.
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = ordo::RetryPolicy::new(3).backoff(Duration::from_secs(1), 3.0);
    /// assert_eq!(p.delay_after(2), Duration::from_secs(3));
    /// ```
    pub fn backoff(mut self, initial: Duration, multiplier: f64) -> Self {
        self.initial_backoff = initial;
        self.multiplier = if multiplier.is_finite() && multiplier >= 1.0 {
            multiplier
        } else {
            1.0
        };
        self
    }

    /// Caps every delay.
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = ordo::RetryPolicy::new(9).max_backoff(Duration::from_millis(150));
    /// assert_eq!(p.delay_after(5), Duration::from_millis(150));
    /// ```
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max;
        self
    }

    /// The delay after failed attempt number `attempt` (1-based).
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = ordo::RetryPolicy::default();
    /// assert_eq!(p.delay_after(1), Duration::from_millis(100));
    /// ```
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let secs = self.initial_backoff.as_secs_f64() * self.multiplier.powi(exponent);
        if secs.is_finite() && secs < self.max_backoff.as_secs_f64() {
            Duration::from_secs_f64(secs)
        } else {
            self.max_backoff
        }
    }
}
