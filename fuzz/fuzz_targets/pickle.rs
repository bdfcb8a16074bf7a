//! session-cachelib's pickle reader (`pickle::loads`), which reads files a Flask app wrote:
//! no panic and no allocation beyond the input's worth on any bytes, and what it reads
//! survives being written back (`dumps`) and read again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_cachelib::pickle::{dumps, loads};

fuzz_target!(|bytes: &[u8]| {
    let Ok(value) = loads(bytes) else {
        return;
    };
    let written = dumps(&value).expect("what the reader produced can be written");
    let again = loads(&written).expect("what the writer produced can be read");
    assert_eq!(
        format!("{again:?}"),
        format!("{value:?}"),
        "a pickle changed on a write and a read"
    );
});
