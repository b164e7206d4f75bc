//! Raw column reads against the little-endian bytes computed from the source rows.

use quarry_format::{DictionaryPolicy, WriteOptions};

use crate::support::*;

fn bit(bytes: &[u8], i: usize) -> bool {
    bytes[i / 8] >> (i % 8) & 1 == 1
}

fn start_people(
    n: usize,
    group: usize,
    dictionary: DictionaryPolicy,
) -> (tempfile::TempDir, quarry_server::ServerHandle, Vec<Person>) {
    let dir = tempfile::tempdir().unwrap();
    let rows = people(n);
    let options = WriteOptions {
        row_group_rows: group,
        dictionary,
        ..WriteOptions::default()
    };
    write_people_with(dir.path(), "people", &rows, options);
    let server = start(dir.path(), &[]);
    wait_ready(server.local_addr());
    (dir, server, rows)
}

#[test]
fn fixed_width_values_span_row_groups() {
    let (_dir, server, rows) = start_people(1000, 128, DictionaryPolicy::Auto);
    let addr = server.local_addr();
    let r = get(addr, "/v1/datasets/people/columns/id?offset=100&limit=300");
    assert_eq!(r.status, 200, "{}", r.text());
    let want: Vec<u8> = rows[100..400]
        .iter()
        .flat_map(|p| p.id.to_le_bytes())
        .collect();
    assert_eq!(r.body, want);
    assert_eq!(r.header("quarry-type"), Some("int64"));
    assert_eq!(r.header("quarry-row-start"), Some("100"));
    assert_eq!(r.header("quarry-row-end"), Some("400"));
    assert_eq!(r.header("content-length"), Some("2400"));
    let version = get(addr, "/v1/datasets/people").json()["version"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(r.header("quarry-version"), Some(version.as_str()));

    let all = get(addr, "/v1/datasets/people/columns/born");
    let want: Vec<u8> = rows.iter().flat_map(|p| p.born.to_le_bytes()).collect();
    assert_eq!(all.body, want);

    // Range requests cut the same bytes.
    let part = get_with(
        addr,
        "/v1/datasets/people/columns/born",
        &[("Range", "bytes=500-1499")],
    );
    assert_eq!(part.status, 206);
    assert_eq!(part.body, want[500..1500]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 500-1499/{}", want.len()).as_str())
    );
    let bad = get_with(
        addr,
        "/v1/datasets/people/columns/born",
        &[("Range", "bytes=999999-")],
    );
    assert_eq!(bad.status, 416);
    server.shutdown();
    server.join().unwrap();
}

#[test]
fn bitmaps_and_strings_stop_at_the_row_group() {
    let (_dir, server, rows) = start_people(1000, 128, DictionaryPolicy::Never);
    let addr = server.local_addr();
    // Bool values: rows 130.. in row group 1 (rows 128..256).
    let r = get(
        addr,
        "/v1/datasets/people/columns/active?offset=130&limit=500",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("quarry-row-end"), Some("256"));
    let bit0: usize = r.header("quarry-bit-offset").unwrap().parse().unwrap();
    for (i, p) in rows[130..256].iter().enumerate() {
        assert_eq!(bit(&r.body, bit0 + i), p.active, "row {}", 130 + i);
    }
    // Validity of a nullable column.
    let v = get(
        addr,
        "/v1/datasets/people/columns/score?part=validity&offset=0&limit=128",
    );
    let bit0: usize = v.header("quarry-bit-offset").unwrap().parse().unwrap();
    for (i, p) in rows[..128].iter().enumerate() {
        assert_eq!(bit(&v.body, bit0 + i), p.score.is_some(), "row {i}");
    }
    // Plain strings: offsets + bytes rebuild the names (nulls are empty strings).
    let offs = get(
        addr,
        "/v1/datasets/people/columns/name?part=offsets&offset=10&limit=20",
    );
    let bytes = get(addr, "/v1/datasets/people/columns/name?offset=10&limit=20");
    assert_eq!(bytes.status, 200, "{}", bytes.text());
    let o: Vec<u64> = offs
        .body
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(o.len(), 21);
    for (i, p) in rows[10..30].iter().enumerate() {
        let s = &bytes.body[(o[i] - o[0]) as usize..(o[i + 1] - o[0]) as usize];
        assert_eq!(
            std::str::from_utf8(s).unwrap(),
            p.name.as_deref().unwrap_or(""),
            "row {}",
            10 + i
        );
    }
    server.shutdown();
    server.join().unwrap();
}

#[test]
fn raw_read_errors() {
    let (_dir, server, _rows) = start_people(300, 128, DictionaryPolicy::Auto);
    let addr = server.local_addr();
    let r = get(addr, "/v1/datasets/people/columns/nope");
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "column_not_found");
    for (q, param) in [
        ("offset=x", "offset"),
        ("offset=300", "offset"),
        ("part=bits", "part"),
        ("part=offsets", "part"),
        ("what=1", "what"),
    ] {
        let r = get(addr, &format!("/v1/datasets/people/columns/id?{q}"));
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert_eq!(r.json()["error"]["param"], param, "{q}");
    }
    // Five distinct names: the writer dictionary-encodes them.
    let r = get(addr, "/v1/datasets/people/columns/name");
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "dictionary_encoded");
    server.shutdown();
    server.join().unwrap();
}

/// The columns endpoint splits and decodes its query string as the rows endpoint does: a
/// repeated parameter is 400 `duplicate_parameter`, escapes in names and values decode (`%2C` a
/// comma, `%2B` a plus), a malformed escape is 400 `bad_encoding`.
#[test]
fn the_query_string_is_read_as_the_rows_endpoint_reads_it() {
    let (_dir, server, _rows) = start_people(300, 128, DictionaryPolicy::Auto);
    let addr = server.local_addr();
    let columns = |q: &str| get(addr, &format!("/v1/datasets/people/columns/id?{q}"));
    let rows = |q: &str| get(addr, &format!("/v1/datasets/people/rows?{q}"));
    // Repeated: refused by both, naming the parameter.
    for q in ["limit=1&limit=2", "offset=1&offset=2"] {
        let param = q.split('=').next().unwrap();
        for (endpoint, r) in [("columns", columns(q)), ("rows", rows(q))] {
            assert_eq!(r.status, 400, "{endpoint} {q}: {}", r.text());
            assert_eq!(r.error_code(), "duplicate_parameter", "{endpoint} {q}");
            assert_eq!(r.json()["error"]["param"], param, "{endpoint} {q}");
        }
    }
    // Escaped names and values decode; `+` and `%2B` are both a plus before a number.
    for q in [
        "lim%69t=2&offset=%31",
        "limit=2&offset=+1",
        "limit=2&offset=%2B1",
    ] {
        let r = columns(q);
        assert_eq!(r.status, 200, "columns {q}: {}", r.text());
        assert_eq!(r.header("quarry-row-start"), Some("1"), "{q}");
        assert_eq!(r.header("quarry-row-end"), Some("3"), "{q}");
        let r = rows(q);
        assert_eq!(r.status, 200, "rows {q}: {}", r.text());
        assert_eq!(
            r.json()["rows"].as_array().map(Vec::len),
            Some(2),
            "rows {q}"
        );
    }
    // A malformed escape: 400 bad_encoding naming the parameter, on both.
    for (endpoint, r) in [
        ("columns", columns("offset=%ZZ")),
        ("rows", rows("offset=%ZZ")),
    ] {
        assert_eq!(r.status, 400, "{endpoint}: {}", r.text());
        assert_eq!(r.error_code(), "bad_encoding", "{endpoint}");
        assert_eq!(r.json()["error"]["param"], "offset", "{endpoint}");
    }
    // `%2C` is a comma: the error quotes the decoded value.
    let r = columns("part=values%2Coffsets");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["param"], "part");
    assert!(r.text().contains("values,offsets"), "{}", r.text());
    server.shutdown();
    server.join().unwrap();
}
