//! Connection limits of `keygate serve`: the timeouts and the connection cap,
//! from the command line and the process's open-file limit.

use std::time::Duration;

use crate::cli::ServeArgs;

/// Timeouts and the connection cap, as resolved at start-up.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// A complete request head must arrive within this, counted from the
    /// accept (first request) or from its first byte (later requests on a
    /// keep-alive connection).
    pub header_timeout: Duration,
    /// A keep-alive connection with no byte of a new request within this
    /// after its last response is closed.
    pub idle_timeout: Duration,
    /// A request body must have fully arrived within this after its head
    /// (else 408); a response the client stops reading for this long closes
    /// the connection.
    pub body_timeout: Duration,
    /// Connections open at once; at the cap, the longest-waiting idle or
    /// stalled connections are closed to make room (see `server.rs`).
    pub max_connections: usize,
    /// Where `max_connections` comes from, for the start-up log.
    pub cap_source: CapSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CapSource {
    /// `--max-connections`.
    Flag,
    /// Derived from this open-file soft limit.
    OpenFileLimit(u64),
    /// The limit could not be read (or is not a thing on this platform).
    Fallback,
}

/// The cap when the open-file limit cannot be read.
const FALLBACK_MAX_CONNECTIONS: usize = 1024;
/// Upper bound of the derived cap (an "unlimited" soft limit included).
const MAX_DERIVED_CONNECTIONS: u64 = 1 << 20;

impl Limits {
    pub(super) fn from_args(args: &ServeArgs) -> Self {
        let (max_connections, cap_source) = match args.max_connections {
            Some(n) => (usize::try_from(n).unwrap_or(usize::MAX), CapSource::Flag),
            None => match open_file_limit() {
                Some(soft) => (max_connections_for(soft), CapSource::OpenFileLimit(soft)),
                None => (FALLBACK_MAX_CONNECTIONS, CapSource::Fallback),
            },
        };
        Self {
            header_timeout: Duration::from_secs(args.header_timeout),
            idle_timeout: Duration::from_secs(args.idle_timeout),
            body_timeout: Duration::from_secs(args.body_timeout),
            max_connections,
            cap_source,
        }
    }

    /// The cap derived from the open-file limit, whatever the flag says
    /// (to warn about a `--max-connections` above it).
    pub(super) fn derived_cap(&self) -> Option<usize> {
        match self.cap_source {
            CapSource::OpenFileLimit(soft) => Some(max_connections_for(soft)),
            CapSource::Flag => open_file_limit().map(max_connections_for),
            CapSource::Fallback => None,
        }
    }
}

/// File descriptors kept out of the connection cap for everything else the
/// process opens: the database pool (a SQLite connection holds up to three
/// files: database, WAL, shared memory; the default pool has at most 16), the
/// listener, stdio, the runtime's epoll/eventfd/signal pipes, and the
/// connections just evicted but not yet closed, or accepted in a burst before
/// the evictions caught up. 64 plus 1/16th of the limit: 128 of 1024.
fn reserve_for(soft: u64) -> u64 {
    64 + soft / 16
}

/// The connection cap for an open-file soft limit: the limit minus the
/// reserve (896 for 1024, 61 376 for 65 536), or half of a limit too small
/// for the reserve.
pub(super) fn max_connections_for(soft: u64) -> usize {
    let soft = soft.min(MAX_DERIVED_CONNECTIONS);
    let reserve = reserve_for(soft);
    let cap = if soft >= 2 * reserve {
        soft - reserve
    } else {
        soft / 2
    };
    usize::try_from(cap.max(1)).unwrap_or(usize::MAX)
}

/// The process's open-file soft limit (`ulimit -n`).
#[cfg(unix)]
#[allow(unsafe_code)] // getrlimit(2): libc has no safe wrapper.
pub(super) fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes into the struct we own and pass by pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur == libc::RLIM_INFINITY {
        return Some(u64::MAX);
    }
    #[allow(clippy::useless_conversion)] // rlim_t is u64 on Linux, not everywhere
    u64::try_from(limit.rlim_cur).ok()
}

#[cfg(not(unix))]
pub fn open_file_limit() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_keeps_a_reserve_below_the_open_file_limit() {
        assert_eq!(max_connections_for(1024), 896);
        assert_eq!(max_connections_for(4096), 3776);
        assert_eq!(max_connections_for(65_536), 61_376);
        // Too small for the reserve: half of it, never 0.
        assert_eq!(max_connections_for(100), 50);
        assert_eq!(max_connections_for(1), 1);
        assert_eq!(max_connections_for(0), 1);
        // "Unlimited" is bounded.
        assert!(max_connections_for(u64::MAX) < 1 << 20);
        for soft in [64, 128, 256, 512, 1024, 2048, 1 << 20] {
            let cap = max_connections_for(soft) as u64;
            assert!(
                cap < soft && soft - cap >= soft.min(128) / 2,
                "{soft}: {cap}"
            );
        }
    }

    #[test]
    fn the_limit_is_readable() {
        #[cfg(unix)]
        assert!(open_file_limit().is_some_and(|n| n > 0));
    }
}
