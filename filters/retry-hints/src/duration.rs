//! Durations as Istio writes them (`2s`, `250ms`, `1.5s`, `1m30s`): one or
//! more decimal numbers, each with a unit (`h`, `m`, `s`, `ms`, `us`/`µs`,
//! `ns`), read into whole milliseconds, the unit of Envoy's timeout headers.

/// Milliseconds in a duration, or why it is not one. Sub-millisecond
/// remainders are rounded up, so `1500us` is 2 ms and nothing nonzero
/// becomes 0.
pub fn parse_millis(text: &str) -> Result<u64, String> {
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut nanos: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale: u128 = match unit {
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            "us" | "µs" => 1_000,
            "ns" => 1,
            "" => return Err(format!("{text:?} has a number without a unit (write e.g. `2s` or `250ms`)")),
            other => return Err(format!("{text:?} has an unknown unit {other:?} (use h, m, s, ms, us, ns)")),
        };
        nanos = nanos.saturating_add(scaled(number, scale).ok_or_else(|| format!("{text:?} is not a duration"))?);
        rest = tail;
    }
    let millis = nanos.div_ceil(1_000_000);
    u64::try_from(millis).map_err(|_| format!("{text:?} is too long"))
}

/// `number` × `scale` nanoseconds, for a decimal like `1.5`.
fn scaled(number: &str, scale: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return None;
    }
    let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let mut total = whole.checked_mul(scale)?;
    // Each fractional digit is worth a tenth of the one before; digits past
    // nanosecond precision add nothing.
    let mut place = scale;
    for digit in fraction.chars() {
        let d = u128::from(digit.to_digit(10)?);
        place /= 10;
        total = total.checked_add(d.checked_mul(place)?)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn istio_forms() {
        assert_eq!(parse_millis("2s"), Ok(2000));
        assert_eq!(parse_millis("250ms"), Ok(250));
        assert_eq!(parse_millis("0.5s"), Ok(500));
        assert_eq!(parse_millis(".25s"), Ok(250));
        assert_eq!(parse_millis("1m30s"), Ok(90_000));
        assert_eq!(parse_millis("1h"), Ok(3_600_000));
        assert_eq!(parse_millis("0s"), Ok(0));
        assert_eq!(parse_millis("10s"), Ok(10_000));
    }

    #[test]
    fn sub_millisecond_rounds_up() {
        assert_eq!(parse_millis("1500us"), Ok(2));
        assert_eq!(parse_millis("1µs"), Ok(1));
        assert_eq!(parse_millis("1ns"), Ok(1));
        assert_eq!(parse_millis("0.0001s"), Ok(1));
    }

    #[test]
    fn bad_durations_say_why() {
        for bad in ["", "2", "s", "2 s", "-1s", "2sec", "1.2.3s", "2S", "ms", ".s", "1e3ms"] {
            assert!(parse_millis(bad).is_err(), "{bad:?} parsed");
        }
        assert!(parse_millis("2").unwrap_err().contains("without a unit"));
        assert!(parse_millis("2d").unwrap_err().contains("unknown unit"));
        assert!(parse_millis("99999999999999999999999h").is_err());
    }
}
