//! Waiting through the tokio reactor: our own file descriptors, and the
//! deadlines of the sans-IO decoders.
//!
//! A leaf module: `hotplug` (netlink, inotify) and the device back ends
//! (hidraw, framer and HID-POS deadlines) need it, and it needs nothing from
//! the crate, so no module imports another only for these.

use std::time::Instant;

/// Registers an fd we own with the tokio reactor.
///
/// `AsyncFd::new` is deprecated because a caller could close the fd while it
/// is registered; every `T` here owns its fd (`File`, `OwnedFd`, `Inotify`)
/// and the fd is closed only when the `AsyncFd` drops, so the concern does
/// not arise, and the replacement is `unsafe`, which this workspace forbids.
#[allow(deprecated)]
pub(crate) fn async_fd<T: std::os::fd::AsRawFd>(
    t: T,
) -> std::io::Result<tokio::io::unix::AsyncFd<T>> {
    tokio::io::unix::AsyncFd::new(t)
}

/// Sleeps until `deadline` (a std instant, as the sans-IO decoders use);
/// never wakes for `None`, so a `select!` arm costs nothing while idle.
pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}
