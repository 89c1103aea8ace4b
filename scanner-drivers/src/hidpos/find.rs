//! Which HID-POS device is this entry's: hidapi enumerates hidraw nodes
//! with usage page 0x8C; the entry's `path`, `usb`, `serial_number` or
//! `port_path` (sysfs) narrow the choice; devices another entry holds or is
//! bound to are left alone. The report descriptor is read here too, while
//! hidapi has the device open.

use std::path::PathBuf;

use hidapi::HidApi;
use ybpos_config::Scanner;

use super::USAGE_PAGE_POS;
use crate::common::Claims;
use crate::sysfs::{Sysfs, UsbId, binds_usb, usb_matches};

/// A HID-POS device this entry may take, with its report descriptor as
/// hidapi read it (or why it could not).
pub(super) struct Found {
    /// The hidraw node.
    pub(super) path: PathBuf,
    /// The USB device behind it, when sysfs tells.
    pub(super) usb: Option<UsbId>,
    /// The report descriptor, or why hidapi could not read it.
    pub(super) descriptor: Result<Vec<u8>, String>,
}

/// Enumerates with hidapi (usage page 0x8C) and picks the device this entry
/// is bound to; one enumeration per look.
pub(super) fn find(
    cfg: &Scanner,
    reserved: &[Scanner],
    sysfs: &Sysfs,
    claims: &Claims,
) -> Result<Option<Found>, String> {
    let api = HidApi::new().map_err(|e| e.to_string())?;
    let want_path = cfg
        .path
        .as_ref()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()));
    for d in api.device_list() {
        if d.usage_page() != USAGE_PAGE_POS {
            continue;
        }
        let Ok(p) = d.path().to_str() else {
            continue;
        };
        let path = PathBuf::from(p);
        if want_path.as_ref().is_some_and(|w| *w != path) || claims.held(&path) {
            continue;
        }
        let usb = sysfs.usb_of_node("hidraw", &path);
        if binds_usb(cfg) && !usb.as_ref().is_some_and(|u| usb_matches(cfg, u)) {
            continue;
        }
        if !cfg.is_bound() && reserved.iter().any(|r| binds(r, &path, usb.as_ref())) {
            continue;
        }
        let descriptor = d
            .open_device(&api)
            .and_then(|dev| {
                let mut buf = vec![0u8; scanner_codec::hid::descriptor::MAX_DESCRIPTOR];
                let n = dev.get_report_descriptor(&mut buf)?;
                buf.truncate(n);
                Ok(buf)
            })
            .map_err(|e| e.to_string());
        return Ok(Some(Found {
            path,
            usb,
            descriptor,
        }));
    }
    Ok(None)
}

/// Is the device at `path` the one entry `r` is bound to?
fn binds(r: &Scanner, path: &std::path::Path, usb: Option<&UsbId>) -> bool {
    match &r.path {
        Some(p) => std::fs::canonicalize(p).is_ok_and(|p| p == path),
        None => binds_usb(r) && usb.is_some_and(|u| usb_matches(r, u)),
    }
}
