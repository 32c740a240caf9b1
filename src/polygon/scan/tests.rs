//! The scanner against the serde path: same pages bit for bit where it answers, `None`
//! (and so serde's own result) everywhere else.

use fastrand::Rng;

use super::number::{digit_run, digits, eight_digits};
use super::*;
use crate::bars::Optional;
use crate::calendar::DateRange;
use crate::polygon::decode::{decode_page, decode_with_serde};
use crate::sandbox::synth::bars_for;
use crate::sandbox::{MAX_LIMIT, SandboxConfig, page_json};

/// The scanner's page with its bars in it, as `decode_page` gives it.
fn scan_page(input: &[u8]) -> Option<Page> {
    let mut bars = Bars::default();
    let page = super::scan_page(input, &mut bars)?;
    Some(Page { bars, ..page })
}

/// The scanner's f64 for the number at the start of `s`, and where it ended.
fn scan_float(s: &str) -> Option<(u64, usize)> {
    let mut f = 0.0;
    let end = float(s.as_bytes(), 0, &mut f)?;
    Some((f.to_bits(), end))
}

/// Panics unless `a` and `b` are the same page, floats compared by their bits.
fn assert_same(a: &Page, b: &Page, what: &str) {
    let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    let obits = |v: &Optional<f64>| v.iter().map(|f| f.map(f64::to_bits)).collect::<Vec<_>>();
    let (x, y) = (&a.bars, &b.bars);
    assert_eq!(x.timestamp, y.timestamp, "{what}: t");
    for (p, q, name) in [
        (&x.open, &y.open, "o"),
        (&x.high, &y.high, "h"),
        (&x.low, &y.low, "l"),
        (&x.close, &y.close, "c"),
        (&x.volume, &y.volume, "v"),
    ] {
        assert_eq!(bits(p), bits(q), "{what}: {name}");
    }
    assert_eq!(obits(&x.vwap), obits(&y.vwap), "{what}: vw");
    assert_eq!(x.transactions, y.transactions, "{what}: n");
    assert_eq!(x.otc, y.otc, "{what}: otc");
    assert_eq!(a, b, "{what}: envelope");
}

/// The scanner must answer `input`, with exactly serde's page.
fn assert_scanned(input: &[u8], what: &str) {
    let scanned = scan_page(input).unwrap_or_else(|| {
        panic!(
            "{what}: scanner gave up on {}",
            String::from_utf8_lossy(input)
        )
    });
    let serde = decode_with_serde(input).expect("serde decodes it");
    assert_same(&scanned, &serde, what);
}

/// Whatever `input` is, `decode_page` must say what serde says, and a scanner answer
/// must be serde's page.
fn assert_consistent(input: &[u8]) {
    let serde = decode_with_serde(input);
    match (scan_page(input), &serde) {
        (Some(p), Ok(q)) => assert_same(&p, q, &String::from_utf8_lossy(input)),
        (Some(_), Err(e)) => panic!("scanner accepted what serde refuses ({e}): {input:?}"),
        (None, _) => {}
    }
    match (decode_page(input), serde) {
        (Ok(p), Ok(q)) => assert_same(&p, &q, "decode_page"),
        (Err(e), Err(f)) => assert_eq!(e, f),
        (p, q) => panic!("decode_page {p:?} but serde {q:?}"),
    }
}

fn cfg() -> SandboxConfig {
    let mut c = SandboxConfig {
        today: jiff::civil::date(2025, 6, 30),
        ..SandboxConfig::default()
    };
    for t in ["AAPL", "MSFT", "TINY"] {
        c.listings.insert(t.into(), (None, None));
    }
    c
}

fn range(from: &str, to: &str) -> DateRange {
    DateRange::parse(from, to).unwrap()
}

#[test]
fn sandbox_pages_match_serde() {
    let c = cfg();
    let r = range("2021-06-01", "2021-06-30");
    // A ticker with volumes of a million and more, so `1.029145e+06` is covered.
    let heavy = (0..400)
        .map(|i| format!("V{i}"))
        .find(|t| bars_for(t, r, &c).volume.iter().any(|&v| v >= 1e6))
        .expect("some ticker trades a million in a minute");
    let year = range("2024-01-01", "2024-12-31");
    for (t, r, limit) in [
        ("AAPL", year, MAX_LIMIT),
        ("MSFT", year, 777),
        (&heavy, r, 5000),
    ] {
        let json = page_json(t, r, limit, &c);
        assert_scanned(&json, t);
        assert!(!scan_page(&json).unwrap().bars.is_empty());
    }
    let weekend = page_json("AAPL", range("2024-03-09", "2024-03-10"), 10, &c);
    assert_scanned(&weekend, "no results");
}

/// Bars of the API's form read two at a time, around bars in another form anywhere
/// on the page (first, second, middle, last), on pages of odd and even length.
#[test]
fn pages_mixing_the_api_form_and_others_match_serde() {
    let c = cfg();
    for n in [1, 2, 3, 8, 9] {
        let json = page_json("AAPL", range("2024-03-04", "2024-03-08"), n, &c);
        let text = String::from_utf8(json).unwrap();
        let starts: Vec<usize> = text.match_indices("{\"v\":").map(|(i, _)| i).collect();
        assert_eq!(starts.len(), n as usize);
        for &at in &starts {
            let end = at + text[at..].find('}').unwrap();
            for odd in [",\"otc\":true", " "] {
                let mut m = text.clone();
                m.insert_str(end, odd);
                assert_scanned(m.as_bytes(), &format!("{n} bars, {odd:?} at {at}"));
            }
            // A repeated key: serde keeps the last, the scanner leaves the page to it.
            let mut twice = text.clone();
            twice.replace_range(at..at + 5, "{\"n\":1,\"v\":");
            assert!(scan_page(twice.as_bytes()).is_none());
            assert_consistent(twice.as_bytes());
        }
    }
}

/// JSON whitespace, drawn from all four kinds (mostly none).
fn ws(rng: &mut Rng, out: &mut Vec<u8>) {
    while rng.u8(..4) == 0 {
        out.push(b" \t\n\r"[rng.usize(..4)]);
    }
}

/// `v` in one of the forms APIs and serializers use.
fn number(rng: &mut Rng, v: f64) -> String {
    let v = if rng.u8(..20) == 0 { -v } else { v };
    match rng.u8(..8) {
        0 => format!("{v:e}"),
        1 => format!("{v:E}"),
        2 => format!("{v:.6}"),
        3 if v.fract() == 0.0 && v.abs() < 1e15 => format!("{}", v as i64),
        4 if v.abs() >= 1.0 => {
            // Polygon's volumes: `1.029145e+06`.
            let e = v.abs().log10().floor() as i32;
            format!(
                "{:.6}e{}{:02}",
                v / 10f64.powi(e),
                if e < 0 { '-' } else { '+' },
                e
            )
        }
        5 => format!("{v:.17}"),
        _ => ryu::Buffer::new().format(v).to_string(),
    }
}

/// One bar object: keys shuffled, optional keys sometimes left out, whitespace
/// anywhere.
fn write_bar(rng: &mut Rng, bars: &Bars, i: usize, out: &mut Vec<u8>) {
    let b = bars.get(i).unwrap();
    let mut fields: Vec<(&str, String)> = vec![
        ("o", number(rng, b.open)),
        ("h", number(rng, b.high)),
        ("l", number(rng, b.low)),
        ("c", number(rng, b.close)),
        ("v", number(rng, b.volume)),
        ("t", b.timestamp.to_string()),
    ];
    if rng.bool() {
        fields.push(("vw", number(rng, b.vwap.unwrap_or(1.5))));
    }
    if rng.bool() {
        fields.push(("n", b.transactions.unwrap_or(7).to_string()));
    }
    if rng.u8(..4) == 0 {
        fields.push(("otc", rng.bool().to_string()));
    }
    rng.shuffle(&mut fields);
    out.push(b'{');
    for (k, (key, value)) in fields.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        ws(rng, out);
        out.extend_from_slice(format!("\"{key}\"").as_bytes());
        ws(rng, out);
        out.push(b':');
        ws(rng, out);
        out.extend_from_slice(value.as_bytes());
        ws(rng, out);
    }
    out.push(b'}');
}

/// A whole page of `bars` with the envelope's keys shuffled and unknown scalar keys.
fn write_page(rng: &mut Rng, bars: &Bars) -> Vec<u8> {
    let mut results = b"[".to_vec();
    for i in 0..bars.len() {
        ws(rng, &mut results);
        if i > 0 {
            results.push(b',');
            ws(rng, &mut results);
        }
        write_bar(rng, bars, i, &mut results);
    }
    ws(rng, &mut results);
    results.push(b']');
    let mut fields: Vec<(&str, Vec<u8>)> = vec![
        ("ticker", br#""AAPL""#.to_vec()),
        ("queryCount", b"-0.5e3".to_vec()),
        ("adjusted", b"true".to_vec()),
        ("unused", b"null".to_vec()),
        ("status", br#""DELAYED""#.to_vec()),
        ("request_id", "\"r\u{e9}q\"".as_bytes().to_vec()),
        ("next_url", br#""http://h/v2?cursor=x""#.to_vec()),
        ("results", results),
    ];
    if rng.bool() {
        fields.push(("resultsCount", bars.len().to_string().into_bytes()));
    }
    rng.shuffle(&mut fields);
    let mut out = Vec::new();
    ws(rng, &mut out);
    out.push(b'{');
    for (k, (key, value)) in fields.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        ws(rng, &mut out);
        out.extend_from_slice(format!("\"{key}\"").as_bytes());
        ws(rng, &mut out);
        out.push(b':');
        ws(rng, &mut out);
        out.extend_from_slice(value);
        ws(rng, &mut out);
    }
    out.push(b'}');
    ws(rng, &mut out);
    out
}

#[test]
fn reformatted_pages_match_serde() {
    let c = cfg();
    let mut rng = Rng::with_seed(7);
    for (t, from, to) in [
        ("AAPL", "2021-03-01", "2021-03-05"),
        ("TINY", "2008-10-06", "2008-10-10"),
        ("MSFT", "2024-12-30", "2025-01-03"),
    ] {
        let bars = bars_for(t, range(from, to), &c);
        assert!(bars.len() > 100, "{t}");
        for round in 0..20 {
            let json = write_page(&mut rng, &bars);
            assert_scanned(&json, &format!("{t} round {round}"));
        }
    }
}

#[test]
fn numbers_are_serde_json_numbers_bit_for_bit() {
    let mut rng = Rng::with_seed(11);
    let digits = |rng: &mut Rng| -> String {
        let n = rng.usize(1..22);
        (0..n).map(|_| char::from(b'0' + rng.u8(..10))).collect()
    };
    for _ in 0..100_000 {
        let mut s = String::new();
        if rng.bool() {
            s.push('-');
        }
        let int = digits(&mut rng);
        s.push_str(int.trim_start_matches('0'));
        if s.is_empty() || s == "-" {
            s.push('0');
        }
        if rng.bool() {
            s = format!("{s}.{}", digits(&mut rng));
        }
        if rng.u8(..3) == 0 {
            let sign = ["", "+", "-"][rng.usize(..3)];
            s = format!("{s}e{sign}{}", rng.u16(..400));
        }
        let theirs = serde_json::from_str::<f64>(&s).ok().map(f64::to_bits);
        assert_eq!(scan_float(&s), theirs.map(|f| (f, s.len())), "{s}");
    }
}

/// Numbers as bars hold them, followed by what follows them in a page: the 8-byte
/// reads of the usual path, at every length, near the end of the input and not.
#[test]
fn numbers_in_context_are_serde_json_numbers() {
    let mut rng = Rng::with_seed(13);
    let digits = |rng: &mut Rng, n: usize| -> String {
        (0..n).map(|_| char::from(b'0' + rng.u8(..10))).collect()
    };
    let tails = [
        "",
        ",",
        "}",
        "]",
        " ,",
        "}]}",
        ",\"o\":1}",
        "x1234567",
        ",\"vw\":94.4681,\"o\":9",
    ];
    for _ in 0..200_000 {
        let mut num = String::new();
        if rng.u8(..8) == 0 {
            num.push('-');
        }
        match rng.usize(0..18) {
            0 => num.push('0'),
            n => num = format!("{num}{}{}", rng.u8(1..10), digits(&mut rng, n - 1)),
        }
        if rng.bool() {
            let n = rng.usize(1..10);
            num = format!("{num}.{}", digits(&mut rng, n));
        }
        if rng.u8(..10) == 0 {
            num = format!("{num}e{}", rng.i8(-30..30));
        }
        let text = format!("{num}{}", tails[rng.usize(..tails.len())]);
        let want = serde_json::from_str::<f64>(&num).unwrap().to_bits();
        assert_eq!(scan_float(&text), Some((want, num.len())), "{text}");
    }
}

#[test]
fn swar_digit_runs_and_values() {
    let mut rng = Rng::with_seed(17);
    for _ in 0..50_000 {
        let bytes: [u8; 8] = std::array::from_fn(|_| match rng.u8(..4) {
            0 => rng.u8(..),
            _ => b'0' + rng.u8(..10),
        });
        let word = u64::from_le_bytes(bytes);
        let run = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
        assert_eq!(digit_run(word), run, "{bytes:?}");
        if run > 0 {
            let want = bytes[..run]
                .iter()
                .fold(0u64, |a, d| a * 10 + u64::from(d - b'0'));
            assert_eq!(eight_digits(word, run), want, "{bytes:?}");
        }
    }
}

#[test]
fn where_serde_json_is_not_correctly_rounded_the_scanner_follows_it() {
    // The shortest form of an f64 (16-17 digits): serde_json (without
    // `float_roundtrip`) rounds twice and lands an ulp away from the correctly rounded
    // value that `str::parse` gives.
    let s = "949.4460776201503";
    let serde: f64 = serde_json::from_str(s).unwrap();
    assert_ne!(serde.to_bits(), s.parse::<f64>().unwrap().to_bits());
    assert_eq!(scan_float(s), Some((serde.to_bits(), s.len())));
}

#[test]
fn unusual_pages_are_left_to_serde() {
    let bar = r#""o":1,"h":2,"l":0.5,"c":1.5,"v":10,"t":1614556800000"#;
    let cases = [
        format!(r#"{{"results":[{{{bar},"x":1}}]}}"#),
        format!(r#"{{"results":[{{{bar},"vw":null}}]}}"#),
        format!(r#"{{"results":[{{{bar},"n":null}}]}}"#),
        format!(r#"{{"results":[{{{bar},"otc":null}}]}}"#),
        format!(r#"{{"results":[{{{bar},"n":12.0}}]}}"#),
        format!(r#"{{"results":[{{{bar},"n":1.5}}]}}"#),
        format!(r#"{{"results":[{{{bar},"o":3}}]}}"#),
        format!(r#"{{"results":[{{{bar},"n":99999999999999999999}}]}}"#),
        format!(r#"{{"results":[{{{bar},"otc":1}}]}}"#),
        format!(r#"{{"results":[{{{bar},"\u0076w":1}}]}}"#),
        format!(r#"{{"results":[{{{bar}}},]}}"#),
        format!(r#"{{"results":[{{{bar}}}],"results":[]}}"#),
        format!(r#"{{"results":[{{{bar}}}],"status":"OK","status":"ERROR"}}"#),
        format!(r#"{{"results":[{{{bar}}}],"next_url":"http:\/\/h"}}"#),
        format!(r#"{{"results":[{{{bar}}}],"extra":{{"a":[1]}}}}"#),
        format!(r#"{{"results":[{{{bar}}}],"extra":[]}}"#),
        format!(r#"{{"results":[{{{bar}}}]}} x"#),
        format!(r#"{{"results":[{{{bar}}}],"v":01}}"#),
        format!(r#"{{"results":[{{{bar}}}],"v":1.}}"#),
        format!("{{\"results\":[{{{bar}}}],\"s\":\"a\tb\"}}"),
        format!("\u{feff}{{\"results\":[{{{bar}}}]}}"),
        r#"{"status":"OK","results":null}"#.to_string(),
        r#"{"status":null,"results":[]}"#.to_string(),
        r#"{"results":[{}]}"#.to_string(),
        r#"{"results":[{"o":1,"h":1,"l":1,"c":1,"v":1}]}"#.to_string(),
        r#"{"results":[{"o":1e400,"h":1,"l":1,"c":1,"v":1,"t":1}]}"#.to_string(),
        r#"<html>502 Bad Gateway</html>"#.to_string(),
        String::new(),
    ];
    for json in &cases {
        assert!(scan_page(json.as_bytes()).is_none(), "{json}");
        assert_consistent(json.as_bytes());
    }
    let mut bad_utf8 = br#"{"status":"OK","x":"#.to_vec();
    bad_utf8.extend_from_slice(b"\"\xff\"}");
    assert!(scan_page(&bad_utf8).is_none());
    assert_consistent(&bad_utf8);
}

#[test]
fn every_truncation_is_serdes_error() {
    let json = page_json("AAPL", range("2021-03-01", "2021-03-01"), 3, &cfg());
    for end in 0..json.len() {
        let cut = &json[..end];
        assert!(scan_page(cut).is_none(), "{}", String::from_utf8_lossy(cut));
        let err = decode_page(cut).unwrap_err();
        assert!(err.truncated, "{err}");
        assert_eq!(Err(err), decode_with_serde(cut));
    }
}

#[test]
fn mutated_pages_agree_with_serde() {
    let json = page_json("AAPL", range("2021-03-01", "2021-03-01"), 4, &cfg());
    let alphabet = b"{}[],:\"\\ \t0123456789.eE+-otcnvwhlrue\xff";
    let mut rng = Rng::with_seed(3);
    for _ in 0..30_000 {
        let mut m = json.clone();
        for _ in 0..rng.usize(1..4) {
            let at = rng.usize(..m.len());
            match rng.u8(..3) {
                0 => m[at] = alphabet[rng.usize(..alphabet.len())],
                1 => {
                    m.remove(at);
                }
                _ => m.insert(at, alphabet[rng.usize(..alphabet.len())]),
            }
        }
        assert_consistent(&m);
    }
}

#[test]
fn digit_runs_of_every_length_and_position() {
    let mut rng = Rng::with_seed(5);
    for _ in 0..20_000 {
        let n = rng.usize(0..24);
        let run: String = (0..n).map(|_| char::from(b'0' + rng.u8(..10))).collect();
        let tail = ["", ",", "}", ".5", "e1", "/", ":", "\u{e9}", "        "][rng.usize(..9)];
        let text = format!("{run}{tail}");
        let mut sig = 0u64;
        let end = digits(text.as_bytes(), 0, &mut sig);
        assert_eq!(end, n, "{text}");
        let want = run.bytes().fold(0u64, |a, d| {
            a.wrapping_mul(10).wrapping_add(u64::from(d - b'0'))
        });
        assert_eq!(sig, want, "{text}");
    }
}
