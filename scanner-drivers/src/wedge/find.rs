//! Which USB device is this entry's (libusb: `usb` vid:pid plus
//! `serial_number` or `port_path`), and taking its keyboard interface from
//! the kernel: detach `usbhid`, claim, boot protocol, LEDs off.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rusb::{Context, Direction, TransferType, UsbContext};
use ybpos_config::Scanner;

use super::device::Conn;
use crate::common::Claims;
use crate::scan::ScannerInfo;

/// Finds the bound device, detaches the kernel driver and claims the
/// keyboard interface. `Ok(None)`: not plugged in.
pub(super) fn take(cfg: &Scanner, claims: &Claims) -> Result<Option<Conn>, String> {
    let ctx = Context::new().map_err(|e| format!("libusb: {e}"))?;
    let devices = ctx.devices().map_err(|e| format!("libusb: {e}"))?;
    let mut failed = None;
    for dev in devices.iter() {
        let Ok(desc) = dev.device_descriptor() else {
            continue;
        };
        if let Some(m) = &cfg.usb
            && (m.vid != desc.vendor_id() || m.pid.is_some_and(|p| p != desc.product_id()))
        {
            continue;
        }
        let ports = dev.port_numbers().unwrap_or_default();
        let port_path = format!(
            "{}-{}",
            dev.bus_number(),
            ports
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(".")
        );
        if cfg.port_path.as_ref().is_some_and(|p| *p != port_path) {
            continue;
        }
        let key = PathBuf::from(format!(
            "/dev/bus/usb/{:03}/{:03}",
            dev.bus_number(),
            dev.address()
        ));
        if claims.held(&key) {
            continue;
        }
        let handle = match dev.open() {
            Ok(h) => h,
            Err(e) => {
                // Maybe not ours (bound by serial number): look on, report
                // the failure only if nothing else matches.
                failed = Some(format!("cannot open {}: {e}", key.display()));
                continue;
            }
        };
        if let Some(want) = &cfg.serial_number {
            let sn = handle.read_serial_number_string_ascii(&desc).ok();
            if sn.as_deref() != Some(want.as_str()) {
                continue;
            }
        }
        let Some((iface, ep, packet, boot)) = keyboard_interface(&dev) else {
            return Err(format!("{} has no HID keyboard interface", key.display()));
        };
        let detached = match handle.kernel_driver_active(iface) {
            Ok(true) => {
                handle
                    .detach_kernel_driver(iface)
                    .map_err(|e| format!("cannot detach the kernel driver: {e}"))?;
                true
            }
            _ => false,
        };
        if let Err(e) = handle.claim_interface(iface) {
            if detached {
                let _ = handle.attach_kernel_driver(iface);
            }
            return Err(format!("cannot claim interface {iface}: {e}"));
        }
        let t = Duration::from_millis(500);
        if boot {
            // SET_PROTOCOL(boot): 8-byte reports whatever the report descriptor says.
            let _ = handle.write_control(0x21, 0x0B, 0, iface as u16, &[], t);
        }
        // SET_REPORT(output, LEDs off): the scanner must not think CapsLock is on.
        let _ = handle.write_control(0x21, 0x09, 0x0200, iface as u16, &[0], t);
        let Some(claim) = claims.claim(&key) else {
            let _ = handle.release_interface(iface);
            continue;
        };
        return Ok(Some(Conn {
            handle: Arc::new(handle),
            iface,
            ep,
            packet,
            detached,
            info: ScannerInfo {
                path: Some(key.clone()),
                vid: Some(desc.vendor_id()),
                pid: Some(desc.product_id()),
            },
            key,
            _claim: claim,
        }));
    }
    failed.map_or(Ok(None), Err)
}

/// The keyboard interface: (number, interrupt IN endpoint, packet size, boot subclass).
fn keyboard_interface(dev: &rusb::Device<Context>) -> Option<(u8, u8, usize, bool)> {
    let cfg = dev.active_config_descriptor().ok()?;
    let mut best: Option<(u8, u8, usize, bool, u8)> = None;
    for iface in cfg.interfaces() {
        for alt in iface.descriptors() {
            if alt.class_code() != 3 {
                continue;
            }
            let Some(ep) = alt.endpoint_descriptors().find(|e| {
                e.direction() == Direction::In && e.transfer_type() == TransferType::Interrupt
            }) else {
                continue;
            };
            // Prefer the boot keyboard protocol; otherwise the first HID interface.
            let rank = if alt.protocol_code() == 1 { 0 } else { 1 };
            if best.is_none_or(|b| rank < b.4) {
                best = Some((
                    alt.interface_number(),
                    ep.address(),
                    ep.max_packet_size().max(8) as usize,
                    alt.sub_class_code() == 1,
                    rank,
                ));
            }
        }
    }
    best.map(|(i, e, p, b, _)| (i, e, p, b))
}
