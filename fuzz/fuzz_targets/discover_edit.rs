//! Discovery + edit on arbitrary bytes: never panic, and a successful edit keeps every byte
//! outside the changed value (or the one inserted line / flow entry).
#![no_main]

use std::path::PathBuf;

use gitops_canary::manifest::{edit, SourceFile};
use gitops_canary::router::default_router;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&w, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let Ok(file) = SourceFile::parse(PathBuf::from("f.yaml"), text.to_string()) else { return };
    let router = default_router();
    let _ = router.discover(std::slice::from_ref(&file), &[]);
    for route in router.routes(&file) {
        let Ok(e) = router.weight_edit(&file, &route, u32::from(w % 101)) else { continue };
        let Ok(out) = edit::apply(&file, &[e]) else { continue };
        let Some((_, after)) = out.changed.first() else { continue };
        // Every byte before the first change and after the last one is kept, and the change
        // is no larger than the old scalar plus one inserted line.
        let (a, b) = (text.as_bytes(), after.as_bytes());
        let pre = a.iter().zip(b).take_while(|(x, y)| x == y).count();
        let max = a.len().min(b.len()) - pre;
        let suf = a.iter().rev().zip(b.iter().rev()).take(max).take_while(|(x, y)| x == y).count();
        let removed = a.len() - suf - pre;
        let old_len = route.weight_raw.as_deref().map_or(0, str::len);
        assert!(removed <= old_len * 4 + 8, "removed {removed} bytes for a {old_len}-byte value");
        let back = SourceFile::parse(PathBuf::from("f.yaml"), after.clone()).expect("edited text parses");
        assert_eq!(back.stream.docs.len(), file.stream.docs.len());
        let again = router.routes(&back);
        let same = again
            .iter()
            .find(|r| r.document == route.document && r.item == route.item && r.name == route.name)
            .expect("the route is still there");
        assert_eq!(same.weight, Some(u32::from(w % 101)));
    }
});
