//! Registering our own file descriptors with the tokio reactor.
//!
//! A leaf module: `hotplug` (netlink, inotify) and the device back ends
//! (hidraw) both need it, and it needs nothing from the crate, so no module
//! imports another only for this.

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
