//! The wall clock as time since the Unix epoch: the one reading that timestamps, rate-limit
//! resets and the metrics analysis compare against. It imports nothing, so any layer may use it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Time since the Unix epoch (`.as_secs()`, `.as_secs_f64()`); zero for a clock set before 1970.
pub(crate) fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
