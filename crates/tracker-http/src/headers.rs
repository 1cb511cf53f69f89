//! [`Headers`]: read access to a request's headers, whichever parser read them: hyper's
//! `HeaderMap`, or the direct path's `httparse` list (`crate::direct`). The handler reads three
//! headers (`X-Forwarded-For`, `Accept-Encoding`, `Authorization`) through it, so both front
//! ends answer from the same code. Parsing and routing do not live here.

use hyper::HeaderMap;

/// Every value of one header, in the order received.
pub trait Headers {
    /// The values of header `name` (given in lowercase; matched without regard to case).
    fn all<'a>(&'a self, name: &'static str) -> impl DoubleEndedIterator<Item = &'a [u8]>;

    /// The first value of header `name`.
    fn first(&self, name: &'static str) -> Option<&[u8]> {
        self.all(name).next()
    }
}

impl Headers for HeaderMap {
    fn all<'a>(&'a self, name: &'static str) -> impl DoubleEndedIterator<Item = &'a [u8]> {
        self.get_all(name).iter().map(|v| v.as_bytes())
    }
}

impl Headers for [httparse::Header<'_>] {
    fn all<'a>(&'a self, name: &'static str) -> impl DoubleEndedIterator<Item = &'a [u8]> {
        self.iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

/// A header value as text, under the rule of hyper's `HeaderValue::to_str`: only visible ASCII
/// and tabs (else `None`).
pub fn text(value: &[u8]) -> Option<&str> {
    value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;
    use proptest::prelude::*;

    proptest! {
        /// `text` accepts exactly what `HeaderValue::to_str` accepts, with the same text.
        #[test]
        fn text_is_hypers_to_str(v in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(hv) = HeaderValue::from_bytes(&v) {
                prop_assert_eq!(text(&v), hv.to_str().ok());
            }
        }

        /// Both header lists give the same values in the same order, names in any case.
        #[test]
        fn both_lists_agree(lines in proptest::collection::vec(
            (prop_oneof![Just("X-Forwarded-For"), Just("x-forwarded-for"), Just("Accept-Encoding"),
                Just("AUTHORIZATION"), Just("Host")], "[ -~]{0,12}"), 0..8)) {
            let mut map = HeaderMap::new();
            let mut list = Vec::new();
            for (name, value) in &lines {
                let value = value.trim();
                map.append(hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap());
                list.push(httparse::Header { name, value: value.as_bytes() });
            }
            for name in ["x-forwarded-for", "accept-encoding", "authorization", "host"] {
                let a: Vec<_> = map.all(name).rev().collect();
                let b: Vec<_> = list[..].all(name).rev().collect();
                prop_assert_eq!(a, b);
            }
        }
    }
}
