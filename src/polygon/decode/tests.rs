//! The decoder's contract: fields, empty and failed pages, errors, decoding onto a
//! fetch's columns.

use super::*;

#[test]
fn decodes_all_fields_and_scientific_volume() {
    let json = br#"{"ticker":"AAPL","queryCount":2,"resultsCount":2,"adjusted":true,
        "results":[{"v":1.029145e+06,"vw":130.1,"o":130,"c":131.5,"h":132,"l":129.5,"t":1614556800000,"n":12.0},
                   {"v":5,"o":1,"c":1,"h":1,"l":1,"t":1614556860000,"otc":true,"extra":{"a":[1]}}],
        "status":"DELAYED","request_id":"abc","count":2,
        "next_url":"https://api.massive.com/v2/aggs/ticker/AAPL/range/1/minute/1/2?cursor=x"}"#;
    let p = decode_page(json).unwrap();
    assert!(p.is_success());
    assert_eq!(p.bars.len(), 2);
    assert_eq!(p.bars.volume, vec![1_029_145.0, 5.0]);
    assert_eq!(p.bars.timestamp, vec![1_614_556_800_000, 1_614_556_860_000]);
    assert_eq!(p.bars.vwap, vec![Some(130.1), None]);
    assert_eq!(p.bars.transactions, vec![Some(12), None]);
    assert_eq!(p.bars.otc, vec![false, true]);
    assert_eq!(p.bars.open, vec![130.0, 1.0]);
    assert_eq!(p.results_count, Some(2));
    assert_eq!(p.request_id.as_deref(), Some("abc"));
    assert!(p.next_url.unwrap().contains("cursor=x"));
}

#[test]
fn decoding_onto_appends_and_leaves_the_bars_alone_on_an_error() {
    let page = |t: i64, o: &str| {
        format!(
            r#"{{"status":"OK","results":[{{"v":1,"vw":2,"o":{o},"c":1,"h":3,"l":1,"t":{t},"n":1}}]}}"#
        )
    };
    let mut bars = Bars::default();
    // The scanner's pages, then one only serde reads (`n` given as `1.0`).
    decode_page_onto(page(1, "1").as_bytes(), &mut bars).unwrap();
    let p = decode_page_onto(page(2, "2").as_bytes(), &mut bars).unwrap();
    assert!(p.bars.is_empty() && p.is_success());
    let lenient = page(3, "3").replace(r#""n":1"#, r#""n":1.0"#);
    decode_page_onto(lenient.as_bytes(), &mut bars).unwrap();
    assert_eq!(bars.timestamp, vec![1, 2, 3]);
    assert_eq!(bars.open, vec![1.0, 2.0, 3.0]);
    // Failures of either path leave the three bars as they were.
    for bad in [
        page(4, "4").replace("}]}", "}]"),
        page(4, "4").replace(r#""l":1,"#, ""),
        format!(
            r#"{{"results":[{{"v":1,"o":1,"c":1,"h":1,"l":1,"t":5}}],"x":{}}}"#,
            "{"
        ),
    ] {
        let e = decode_page_onto(bad.as_bytes(), &mut bars).unwrap_err();
        assert_eq!(bars.timestamp, vec![1, 2, 3], "{bad}: {e}");
    }
    // A page that repeats `results` keeps only the last, as serde does.
    let twice = r#"{"results":[{"v":1,"o":1,"c":1,"h":1,"l":1,"t":7}],"results":[]}"#;
    decode_page_onto(twice.as_bytes(), &mut bars).unwrap();
    assert_eq!(bars.len(), 3);
    let e = decode_page_onto(
        br#"{"results":[{"v":1,"o":1,"c":1,"h":1,"l":1,"t":8},{"v":1}]}"#,
        &mut bars,
    )
    .unwrap_err();
    assert!(e.message.contains("bar #1 lacks"), "{e}");
}

#[test]
fn absent_null_and_empty_results_mean_no_bars() {
    for json in [
        r#"{"status":"OK","resultsCount":0}"#,
        r#"{"status":"OK","results":null}"#,
        r#"{"status":"OK","results":[]}"#,
    ] {
        let p = decode_page(json.as_bytes()).unwrap();
        assert!(p.bars.is_empty() && p.is_success(), "{json}");
    }
}

#[test]
fn error_statuses_are_not_success() {
    let p = decode_page(br#"{"status":"ERROR","error":"boom","request_id":"r"}"#).unwrap();
    assert!(!p.is_success());
    assert_eq!(p.problem(), Some("boom"));
    let p =
        decode_page(br#"{"status":"NOT_AUTHORIZED","message":"You are not entitled"}"#).unwrap();
    assert!(!p.is_success());
    assert_eq!(p.problem(), Some("You are not entitled"));
}

#[test]
fn truncated_and_malformed_input_are_reported() {
    let e = decode_page(br#"{"status":"OK","results":[{"o":1,"h":1"#).unwrap_err();
    assert!(e.truncated, "{e}");
    let e = decode_page(br#"<html>502 Bad Gateway</html>"#).unwrap_err();
    assert!(!e.truncated);
    let e =
        decode_page(br#"{"status":"OK","results":[{"o":1,"h":1,"l":1,"c":1,"v":1}]}"#).unwrap_err();
    assert!(e.message.contains("lacks field(s) t"), "{e}");
    let e = decode_page(
        br#"{"status":"OK","results":[{"o":1,"h":1,"l":1,"c":1,"v":1,"t":1,"n":1.5}]}"#,
    )
    .unwrap_err();
    assert!(e.message.contains("integer"), "{e}");
    assert!(decode_page(br#"{"status":"OK"} trailing"#).is_err());
}
