//! The direct path's request check (`tracker_http::direct::classify`) on arbitrary bytes.
//!
//! Properties: it never panics; it takes only a head no longer than `max_head`, whose bytes all
//! belong to that one head (httparse completes exactly there); and what it takes, hyper reads
//! the same way: the target is a URI hyper's `Uri` accepts, with the same path and query, every
//! header name is one `HeaderName` accepts, and the request asks to close.
//!
//! Input layout: bytes 0-1 `max_head` (u16 LE), the rest is the request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracker_http::direct::{MAX_HEADERS, classify};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let max_head = usize::from(u16::from_le_bytes([data[0], data[1]]));
    let bytes = &data[2..];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let Some((simple, n)) = classify(bytes, max_head, &mut headers) else {
        return;
    };
    assert!(bytes.len() <= max_head);
    let mut again = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut again);
    assert_eq!(req.parse(bytes), Ok(httparse::Status::Complete(bytes.len())));
    assert_eq!(req.method, Some("GET"));
    assert_eq!(req.version, Some(1));
    let target = req.path.expect("a target");
    let uri: hyper::Uri = target.parse().expect("hyper takes the target");
    assert_eq!(uri.path(), simple.path);
    assert_eq!(uri.query(), simple.query);
    assert_eq!(n, req.headers.len());
    for h in &headers[..n] {
        hyper::header::HeaderName::from_bytes(h.name.as_bytes()).expect("hyper takes the name");
        hyper::header::HeaderValue::from_bytes(h.value).expect("hyper takes the value");
    }
    assert!(headers[..n]
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("connection") && h.value.eq_ignore_ascii_case(b"close")));
});
