//! Which USB device is behind a device node, read from sysfs; and whether it
//! is the one a `[[scanner]]` entry is bound to.
//!
//! Plain file reads under `/sys` (no libudev): `/sys/class/{tty,hidraw}/X/device`
//! leads to the USB interface, whose parent folder holds `idVendor`,
//! `idProduct`, `serial`, `busnum`, `devnum`; that folder's name (`1-2.3`)
//! is the USB port path.

use std::path::{Path, PathBuf};

use ybpos_config::Scanner;

/// The USB device a node belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbId {
    /// Vendor id.
    pub vid: u16,
    /// Product id.
    pub pid: u16,
    /// The device's serial number string, if it has one.
    pub serial: Option<String>,
    /// The port path, as the kernel names the device (`1-2.3`).
    pub port_path: String,
    /// The device's sysfs folder (absolute).
    pub syspath: PathBuf,
}

/// Where sysfs is (tests use a fake tree).
#[derive(Debug, Clone)]
pub struct Sysfs {
    root: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Sysfs {
            root: PathBuf::from("/sys"),
        }
    }
}

impl Sysfs {
    /// Sysfs at `root` instead of `/sys`.
    pub fn at(root: impl Into<PathBuf>) -> Sysfs {
        Sysfs { root: root.into() }
    }

    /// Device nodes of `class` (`tty`, `hidraw`) backed by real devices,
    /// with their USB identity when they are on USB.
    pub fn nodes(&self, class: &str) -> Vec<(PathBuf, Option<UsbId>)> {
        let Ok(dir) = std::fs::read_dir(self.root.join("class").join(class)) else {
            return Vec::new();
        };
        let mut out: Vec<_> = dir
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                // Virtual consoles and ptys have no `device`.
                let dev = std::fs::canonicalize(e.path().join("device")).ok()?;
                Some((PathBuf::from("/dev").join(name), self.usb_above(&dev)))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The USB identity of a `/dev/<class-node>` (e.g. `/dev/hidraw0`).
    pub fn usb_of_node(&self, class: &str, node: &Path) -> Option<UsbId> {
        let name = node.file_name()?;
        let dev = std::fs::canonicalize(
            self.root
                .join("class")
                .join(class)
                .join(name)
                .join("device"),
        )
        .ok()?;
        self.usb_above(&dev)
    }

    /// Walks up from a device folder to the USB device that holds it.
    pub fn usb_above(&self, dev: &Path) -> Option<UsbId> {
        let mut p = Some(dev);
        while let Some(d) = p {
            if !d.starts_with(&self.root) {
                return None;
            }
            if d.join("idVendor").is_file() {
                return read_usb(d);
            }
            p = d.parent();
        }
        None
    }
}

fn read_usb(d: &Path) -> Option<UsbId> {
    let attr = |n: &str| {
        std::fs::read_to_string(d.join(n))
            .ok()
            .map(|s| s.trim().to_string())
    };
    let hex = |n: &str| attr(n).and_then(|s| u16::from_str_radix(&s, 16).ok());
    Some(UsbId {
        vid: hex("idVendor")?,
        pid: hex("idProduct")?,
        serial: attr("serial").filter(|s| !s.is_empty()),
        port_path: d.file_name()?.to_str()?.to_string(),
        syspath: d.to_path_buf(),
    })
}

/// Does the USB device `id` satisfy every binding the entry gives
/// (`usb` vid[:pid], `serial_number`, `port_path`)?
pub fn usb_matches(cfg: &Scanner, id: &UsbId) -> bool {
    cfg.usb
        .as_ref()
        .is_none_or(|m| m.vid == id.vid && m.pid.is_none_or(|p| p == id.pid))
        && cfg
            .serial_number
            .as_ref()
            .is_none_or(|s| id.serial.as_deref() == Some(s.as_str()))
        && cfg.port_path.as_ref().is_none_or(|p| *p == id.port_path)
}

/// True when the entry binds by USB attributes (and so needs a USB device).
pub fn binds_usb(cfg: &Scanner) -> bool {
    cfg.usb.is_some() || cfg.serial_number.is_some() || cfg.port_path.is_some()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;
    use ybpos_config::{AltCodeMode, Framing, Parity, ScannerTransport, SerialLine, UsbMatch};

    pub(crate) fn entry(transport: ScannerTransport) -> Scanner {
        Scanner {
            id: "s".into(),
            transport,
            path: None,
            usb: None,
            serial_number: None,
            port_path: None,
            line: SerialLine {
                baud: 9600,
                data_bits: 8,
                parity: Parity::None,
                stop_bits: 1,
            },
            framing: Framing::Suffix(b"\r".to_vec()),
            idle_gap: Duration::from_millis(100),
            max_frame: 4096,
            continued_timeout: Duration::from_millis(ybpos_config::DEFAULT_CONTINUED_TIMEOUT_MS),
            alt_codes: AltCodeMode::Unicode,
            trigger_on_wait: false,
            beep_on_wait: false,
            trigger_command: None,
        }
    }

    /// A fake sysfs: two CDC-ACM scanners of the same model on different
    /// ports, one with a serial number, plus a virtual console.
    fn fake() -> (tempfile::TempDir, Sysfs) {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for (port, serial, tty) in [("1-2", Some("SN1"), "ttyACM0"), ("1-3.1", None, "ttyACM1")] {
            let dev = r.join("devices/pci0000:00/usb1").join(port);
            let intf = dev.join(format!("{port}:1.0"));
            std::fs::create_dir_all(intf.join("tty").join(tty)).unwrap();
            std::fs::write(dev.join("idVendor"), "0c2e\n").unwrap();
            std::fs::write(dev.join("idProduct"), "0b6a\n").unwrap();
            if let Some(s) = serial {
                std::fs::write(dev.join("serial"), format!("{s}\n")).unwrap();
            }
            let class = r.join("class/tty").join(tty);
            std::fs::create_dir_all(&class).unwrap();
            std::os::unix::fs::symlink(&intf, class.join("device")).unwrap();
        }
        std::fs::create_dir_all(r.join("class/tty/tty1")).unwrap();
        let s = Sysfs::at(std::fs::canonicalize(r).unwrap());
        (t, s)
    }

    #[test]
    fn nodes_carry_their_usb_identity() {
        let (_t, s) = fake();
        let nodes = s.nodes("tty");
        assert_eq!(nodes.len(), 2, "{nodes:?}");
        let (node, id) = &nodes[0];
        assert_eq!(node, Path::new("/dev/ttyACM0"));
        let id = id.as_ref().unwrap();
        assert_eq!((id.vid, id.pid), (0x0c2e, 0x0b6a));
        assert_eq!(id.serial.as_deref(), Some("SN1"));
        assert_eq!(id.port_path, "1-2");
        assert_eq!(
            s.usb_of_node("tty", Path::new("/dev/ttyACM1"))
                .unwrap()
                .port_path,
            "1-3.1"
        );
        assert_eq!(s.usb_of_node("tty", Path::new("/dev/tty1")), None);
    }

    #[test]
    fn binding_by_serial_number_or_port_path() {
        let (_t, s) = fake();
        let nodes = s.nodes("tty");
        let pick = |cfg: &Scanner| {
            nodes
                .iter()
                .filter(|(_, id)| id.as_ref().is_some_and(|id| usb_matches(cfg, id)))
                .map(|(n, _)| n.clone())
                .collect::<Vec<_>>()
        };
        let mut cfg = entry(ScannerTransport::Serial);
        cfg.usb = Some(UsbMatch {
            vid: 0x0c2e,
            pid: Some(0x0b6a),
        });
        assert_eq!(pick(&cfg).len(), 2);
        cfg.serial_number = Some("SN1".into());
        assert_eq!(pick(&cfg), [PathBuf::from("/dev/ttyACM0")]);
        cfg.serial_number = None;
        cfg.port_path = Some("1-3.1".into());
        assert_eq!(pick(&cfg), [PathBuf::from("/dev/ttyACM1")]);
        cfg.usb = Some(UsbMatch {
            vid: 0x05e0,
            pid: None,
        });
        assert!(pick(&cfg).is_empty());
    }
}
