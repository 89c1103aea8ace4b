//! Hotplug messages from the kernel's uevent netlink socket, parsed.
//!
//! Two senders share `NETLINK_KOBJECT_UEVENT`: the kernel (group 1,
//! `ACTION@DEVPATH\0KEY=VALUE\0…`) and udevd (group 2, a `libudev\0` header
//! with magic 0xFEEDCAFE, then `KEY=VALUE\0` properties, sent after its rules
//! ran, so nodes have their final permissions and symlinks). Both are parsed
//! here into [`UEvent`]; the device back ends only use them as a signal to
//! look again, so a forged message can cause at most one extra look.

/// Who sent the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The kernel itself (no udevd needed).
    Kernel,
    /// udevd, after its rules ran.
    Udev,
}

/// One hotplug event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UEvent {
    /// Kernel or udevd.
    pub source: Source,
    /// `add`, `remove`, `bind`, `unbind`, `change` …
    pub action: String,
    /// Sysfs path below `/sys`, e.g. `/devices/…/hidraw/hidraw0`.
    pub devpath: String,
    /// `hidraw`, `tty`, `usb`, `input` …
    pub subsystem: String,
    /// `usb_device`, `usb_interface` … when given.
    pub devtype: Option<String>,
    /// Device node: `hidraw0`, `ttyACM0`, `bus/usb/001/002` (kernel) or
    /// `/dev/hidraw0` (udev), when given.
    pub devname: Option<String>,
}

/// The udev message header's magic (network byte order).
const UDEV_MAGIC: u32 = 0xFEED_CAFE;
/// Largest message parsed (the kernel caps a uevent at 2048 bytes of env).
pub const MAX_MESSAGE: usize = 8192;

/// Parses one netlink datagram; `None` for anything that is not a uevent.
pub fn parse(msg: &[u8]) -> Option<UEvent> {
    if msg.len() > MAX_MESSAGE {
        return None;
    }
    if msg.starts_with(b"libudev\0") {
        // struct udev_monitor_netlink_header: magic (BE) at 8, header_size,
        // properties_off, properties_len (host order) at 12, 16, 20.
        let word = |at: usize| -> Option<[u8; 4]> { msg.get(at..at + 4)?.try_into().ok() };
        if u32::from_be_bytes(word(8)?) != UDEV_MAGIC {
            return None;
        }
        let off = u32::from_ne_bytes(word(16)?) as usize;
        let len = u32::from_ne_bytes(word(20)?) as usize;
        let props = msg.get(off..off.checked_add(len)?)?;
        return from_props(Source::Udev, props);
    }
    // Kernel: "action@devpath\0" then the same properties.
    let head_end = msg.iter().position(|&b| b == 0)?;
    if !msg[..head_end].contains(&b'@') {
        return None;
    }
    from_props(Source::Kernel, &msg[head_end + 1..])
}

fn from_props(source: Source, props: &[u8]) -> Option<UEvent> {
    let mut ev = UEvent {
        source,
        action: String::new(),
        devpath: String::new(),
        subsystem: String::new(),
        devtype: None,
        devname: None,
    };
    for kv in props.split(|&b| b == 0) {
        let Ok(kv) = std::str::from_utf8(kv) else {
            continue;
        };
        let Some((k, v)) = kv.split_once('=') else {
            continue;
        };
        match k {
            "ACTION" => ev.action = v.to_string(),
            "DEVPATH" => ev.devpath = v.to_string(),
            "SUBSYSTEM" => ev.subsystem = v.to_string(),
            "DEVTYPE" => ev.devtype = Some(v.to_string()),
            "DEVNAME" => ev.devname = Some(v.to_string()),
            _ => {}
        }
    }
    (!ev.action.is_empty() && !ev.devpath.is_empty()).then_some(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_message() {
        let m = b"add@/devices/platform/dummy_hcd.0/usb1/1-1/1-1:1.0/0003:0C2E:0B87.0001/hidraw/hidraw0\0\
ACTION=add\0DEVPATH=/devices/platform/dummy_hcd.0/usb1/1-1/1-1:1.0/0003:0C2E:0B87.0001/hidraw/hidraw0\0\
SUBSYSTEM=hidraw\0MAJOR=247\0MINOR=0\0DEVNAME=hidraw0\0SEQNUM=1234\0";
        let e = parse(m).unwrap();
        assert_eq!(e.source, Source::Kernel);
        assert_eq!(e.action, "add");
        assert_eq!(e.subsystem, "hidraw");
        assert_eq!(e.devname.as_deref(), Some("hidraw0"));
        assert!(e.devpath.ends_with("/hidraw0"));
    }

    #[test]
    fn udev_message() {
        let props = b"ACTION=remove\0DEVPATH=/devices/pci0000:00/usb1/1-2\0SUBSYSTEM=usb\0DEVTYPE=usb_device\0DEVNAME=/dev/bus/usb/001/003\0";
        let mut m = b"libudev\0".to_vec();
        m.extend_from_slice(&UDEV_MAGIC.to_be_bytes());
        m.extend_from_slice(&40u32.to_ne_bytes()); // header size
        m.extend_from_slice(&40u32.to_ne_bytes()); // properties offset
        m.extend_from_slice(&(props.len() as u32).to_ne_bytes());
        m.resize(40, 0); // filter hashes and tag bloom
        m.extend_from_slice(props);
        let e = parse(&m).unwrap();
        assert_eq!(e.source, Source::Udev);
        assert_eq!((e.action.as_str(), e.subsystem.as_str()), ("remove", "usb"));
        assert_eq!(e.devtype.as_deref(), Some("usb_device"));
        // Wrong magic, or properties past the end: not a uevent.
        let mut bad = m.clone();
        bad[8] = 0;
        assert_eq!(parse(&bad), None);
        let mut short = m.clone();
        short.truncate(50);
        assert_eq!(parse(&short), None);
    }

    #[test]
    fn garbage_is_not_an_event() {
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b"no-at-sign\0ACTION=add\0"), None);
        assert_eq!(parse(b"add@/x\0SUBSYSTEM=tty\0"), None); // no ACTION/DEVPATH
        assert_eq!(parse(b"libudev\0\xfe\xed"), None);
        assert_eq!(parse(&vec![b'a'; MAX_MESSAGE + 1]), None);
    }
}
