//! Stored bytes decoded as a session (`SerializationFormat::decode`, msgpack and JSON): no
//! panic on any input, both configured formats read the same bytes the same way, and what
//! decodes survives being written back and read again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_core::{SerializationFormat, SessionData};

const MSGPACK: SerializationFormat = SerializationFormat::Msgpack;
const JSON: SerializationFormat = SerializationFormat::Json;

fuzz_target!(|bytes: &[u8]| {
    let as_msgpack = MSGPACK.decode(bytes);
    let as_json = JSON.decode(bytes);
    // Each format falls back on the other, so the configured format only changes the order
    // of the attempts, never the outcome: switching formats logs nobody out. (Compared as
    // msgpack bytes, since NaN != NaN.)
    let data = match (as_msgpack, as_json) {
        (Ok(a), Ok(b)) => {
            assert_eq!(
                packed(&a),
                packed(&b),
                "the formats read the bytes differently"
            );
            a
        }
        (Err(_), Err(_)) => return,
        (a, b) => panic!("one format reads the bytes, the other not: {a:?} / {b:?}"),
    };

    // A msgpack map starts with a map marker; nothing JSON starts with one.
    let from_msgpack = matches!(bytes.first(), Some(0x80..=0x8f | 0xde | 0xdf));

    // Msgpack holds every value: written and read back, the data is the same, so a second
    // write gives the same bytes.
    let written = packed(&data);
    let read_back = MSGPACK
        .decode(&written)
        .expect("our own msgpack reads back");
    assert_eq!(
        packed(&read_back),
        written,
        "msgpack round trip changed the data"
    );

    if from_msgpack {
        // Writing msgpack-only values (binary, extensions, non-string keys) as JSON may be
        // refused or lossy, as with msgspec; what is written must read back, so switching
        // the format to JSON never leaves a session unreadable.
        if let Ok(json) = JSON.encode(&data) {
            JSON.decode(&json)
                .expect("JSON written from msgpack data reads back");
        }
    } else {
        // Data read from JSON is all JSON: written and read back it is the same.
        assert_eq!(read_back, data, "msgpack round trip of JSON data");
        let json = JSON.encode(&data).expect("JSON data encodes as JSON");
        let again = JSON.decode(&json).expect("our own JSON reads back");
        assert_eq!(again, data, "JSON round trip changed the data");
        assert_eq!(JSON.encode(&again).expect("encodes"), json);
    }
});

fn packed(data: &SessionData) -> Vec<u8> {
    MSGPACK
        .encode(data)
        .expect("msgpack encodes any session data")
}
