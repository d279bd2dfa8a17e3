//! Replies of a MongoDB server (OP_MSG / OP_REPLY framing and BSON) as
//! the `mongo` sensor reads them: an error for anything malformed, never
//! a panic or an unbounded allocation.
#![no_main]
use libfuzzer_sys::fuzz_target;
use outpost_plugin_mongo::wire;

fuzz_target!(|data: &[u8]| {
    if data.len() >= wire::HEADER_LEN {
        let head: [u8; wire::HEADER_LEN] = data[..wire::HEADER_LEN].try_into().unwrap();
        if let Ok(h) = wire::parse_header(&head) {
            let _ = wire::decode_reply(&h, &data[wire::HEADER_LEN..]);
        }
    }
    let mut r = std::io::Cursor::new(data);
    let _ = wire::read_reply(&mut r, 1);
});
