//! Which tty is this entry's: the configured path, or the tty whose USB
//! device matches `usb` / `serial_number` / `port_path` (sysfs).

use std::path::PathBuf;

use ybpos_config::Scanner;

use crate::common::Claims;
use crate::sysfs::{Sysfs, UsbId, binds_usb, usb_matches};

/// The node to open: the configured path, or the tty whose USB device matches.
pub(super) fn find(
    cfg: &Scanner,
    sysfs: &Sysfs,
    claims: &Claims,
) -> Option<(PathBuf, Option<UsbId>)> {
    if let Some(p) = &cfg.path {
        let usb = std::fs::canonicalize(p)
            .ok()
            .and_then(|real| sysfs.usb_of_node("tty", &real));
        return Some((p.clone(), usb));
    }
    if !binds_usb(cfg) {
        return None;
    }
    sysfs.nodes("tty").into_iter().find_map(|(node, usb)| {
        let usb = usb?;
        (usb_matches(cfg, &usb) && !claims.held(&node)).then_some((node, Some(usb)))
    })
}

/// The open error of a port another entry holds.
pub(super) fn held() -> std::io::Error {
    std::io::Error::other("the device is held by another [[scanner]] entry")
}
