//! Parsing of comma-separated header lists with q-values (`Accept`,
//! `Accept-Encoding`), shared by error pages and compression.

/// The non-empty, trimmed items of a comma-separated header value.
pub(crate) fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// An item's value and its quality in thousandths (`q=0.5` is 500; absent is 1000).
pub(crate) fn quality_of(item: &str) -> (&str, u16) {
    let mut parts = item.split(';');
    let value = parts.next().unwrap_or("").trim();
    let mut q = 1000;
    for param in parts {
        let param = param.trim();
        if let Some(v) = param
            .strip_prefix("q=")
            .or_else(|| param.strip_prefix("Q="))
        {
            q = parse_q(v.trim()).unwrap_or(0);
        }
    }
    (value, q)
}

/// `1`, `1.0`, `0.8`, `0.125` to thousandths; anything else is `None`.
fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int: u16 = match int {
        "0" => 0,
        "1" => 1,
        _ => return None,
    };
    let mut thousandths = 0u16;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    let q = int * 1000 + thousandths;
    (q <= 1000).then_some(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_values_parse() {
        assert_eq!(quality_of("gzip"), ("gzip", 1000));
        assert_eq!(quality_of("br;q=0.8"), ("br", 800));
        assert_eq!(quality_of("zstd; q=0"), ("zstd", 0));
        assert_eq!(quality_of("x;q=1.0"), ("x", 1000));
        assert_eq!(quality_of("x;q=0.125"), ("x", 125));
        assert_eq!(quality_of("x;q=2"), ("x", 0));
        assert_eq!(split_list(" a, ,b ").collect::<Vec<_>>(), ["a", "b"]);
    }
}
