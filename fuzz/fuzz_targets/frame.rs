//! The native frame codec: header parsing never panics, never reports more than the limit
//! (125 bytes for control frames) or a header longer than 14 bytes or than the input, and
//! masking follows the role; headers it writes parse back to the same frame; close payloads
//! give a valid code and UTF-8 reason, or fail with 1002/1007.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<u8>, bool, u32, bool, u8, bool, u64)| {
    let (buf, server, limit, fin, opcode, masked, len) = input;
    let limit = limit as usize;
    if let Some((_, opcode, is_masked, plen, size)) =
        isosock::fuzz::parse_frame_header(&buf, server, limit)
    {
        // Data frames are held to the read limit; control frames (opcode 8 and up) to 125
        // bytes whatever the limit, so a ping is answered even at `read_limit(0)`.
        let bound = if opcode >= 8 { 125 } else { limit };
        assert!(plen <= bound && size <= 14 && size <= buf.len());
        assert_eq!(is_masked, server, "clients mask, servers do not");
    }
    assert!(isosock::fuzz::frame_header_round_trip(
        fin,
        opcode,
        masked,
        (len % (1 << 40)) as usize
    ));
    match isosock::fuzz::parse_close(&buf) {
        Ok(Some((code, _))) => assert!(matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)),
        Ok(None) => assert!(buf.is_empty()),
        Err(code) => assert!(code == 1002 || code == 1007),
    }
});
