//! The netlink uevent parser under arbitrary datagrams: no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(ev) = scanner_codec::uevent::parse(data) {
        assert!(!ev.action.is_empty() && !ev.devpath.is_empty());
    }
});
