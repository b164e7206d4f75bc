//! Property tests: random datasets (real files from `FileWriter`) and random queries, run
//! through parse -> Scan -> Encoder in small slices, compared with a naive row-by-row reference
//! evaluator written independently in `common`.

mod common;

use std::cmp::Ordering;
use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use serde_json::{json, Value as Json};

const STRINGS: [&str; 8] = ["", "a", "b", "ab", "a,b", "é", "say \"hi\"", "A*_%"];

fn rv_opt(s: impl Strategy<Value = RV>, null_weight: u32) -> impl Strategy<Value = RV> {
    prop_oneof![null_weight => Just(RV::Null), 10 => s]
}

fn float_strategy() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => (-40i32..40).prop_map(|v| f64::from(v) / 4.0),
        1 => Just(f64::NAN),
        1 => Just(-0.0),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => any::<f64>(),
    ]
}

fn string_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(&STRINGS[..]).prop_map(str::to_string),
        1 => "[a-cA-C*_\\\\%,\"é]{0,6}",
    ]
}

/// One random row without its id (ids are assigned increasing afterwards).
fn row_strategy() -> impl Strategy<Value = Vec<RV>> {
    (
        rv_opt(
            proptest::sample::select(&["x", "y", "z", "w"][..]).prop_map(|s| RV::S(s.into())),
            2,
        ),
        rv_opt(string_strategy().prop_map(RV::S), 2),
        rv_opt((-20i64..20).prop_map(RV::I), 2),
        rv_opt(float_strategy().prop_map(RV::F), 2),
        rv_opt(any::<bool>().prop_map(RV::B), 2),
        rv_opt((-400i32..400).prop_map(RV::D), 2),
        rv_opt(
            (-3_000_000i64..3_000_000).prop_map(|v| RV::T(v * 1_000_000 + v % 7)),
            2,
        ),
    )
        .prop_map(|(g, s, x, f, b, d, t)| vec![g, s, x, f, b, d, t])
}

fn dataset_strategy() -> impl Strategy<Value = (Vec<Vec<RV>>, usize, bool, bool)> {
    (
        proptest::collection::vec((row_strategy(), 1i64..4), 0..160),
        -50i64..50,
        1usize..40,
        prop_oneof![4 => Just(true), 1 => Just(false)],
        prop_oneof![3 => Just(true), 1 => Just(false)],
    )
        .prop_map(|(rows, base, rg, keyed, dict)| {
            let mut id = base;
            let rows = rows
                .into_iter()
                .map(|(mut r, gap)| {
                    id += gap;
                    r.insert(0, RV::I(id));
                    r
                })
                .collect();
            (rows, rg, keyed, dict)
        })
}

/// A literal for column `col`, often one that occurs in the data.
fn literal_for(col: usize, rows: &[Vec<RV>], pick: usize, fresh: &RV) -> RV {
    let present: Vec<&RV> = rows
        .iter()
        .map(|r| &r[col])
        .filter(|v| **v != RV::Null)
        .collect();
    if !present.is_empty() && pick % 3 != 0 {
        return present[pick % present.len()].clone();
    }
    // Convert the fresh value to the column's type.
    let n = match fresh {
        RV::I(n) => *n,
        _ => 0,
    };
    match common::COLS[col].1 {
        quarry_format::DataType::Int64 => RV::I(n),
        quarry_format::DataType::Float64 => RV::F(n as f64 / 4.0),
        quarry_format::DataType::Bool => RV::B(n % 2 == 0),
        quarry_format::DataType::Utf8 => {
            RV::S(STRINGS[(n.unsigned_abs() as usize) % STRINGS.len()].into())
        }
        quarry_format::DataType::Date => RV::D(n as i32 * 13),
        quarry_format::DataType::Timestamp => RV::T(n * 1_000_000),
    }
}

#[derive(Clone, Debug)]
struct FilterSeed {
    col: usize,
    op: usize,
    not: bool,
    picks: Vec<usize>,
    fresh: i64,
    pattern: String,
}

fn filter_seed() -> impl Strategy<Value = FilterSeed> {
    (
        0usize..8,
        0usize..11,
        any::<bool>(),
        proptest::collection::vec(any::<usize>(), 0..4),
        -30i64..30,
        "[ab*_%é]{0,4}",
    )
        .prop_map(|(col, op, not, picks, fresh, pattern)| FilterSeed {
            col,
            op,
            not,
            picks,
            fresh,
            pattern,
        })
}

fn make_filter(seed: &FilterSeed, rows: &[Vec<RV>]) -> RefFilter {
    let col = seed.col;
    let t = common::COLS[col].1;
    let lit = |i: usize| {
        literal_for(
            col,
            rows,
            seed.picks.get(i).copied().unwrap_or(i),
            &RV::I(seed.fresh + i as i64),
        )
    };
    let op = match seed.op {
        0 => RefOp::Cmp("eq", lit(0)),
        1 => RefOp::Cmp("neq", lit(0)),
        2 => RefOp::Cmp("gt", lit(0)),
        3 => RefOp::Cmp("gte", lit(0)),
        4 => RefOp::Cmp("lt", lit(0)),
        5 => RefOp::Cmp("lte", lit(0)),
        6 => RefOp::In((0..seed.picks.len()).map(lit).collect()),
        7 => RefOp::IsNull,
        8 | 9 if t == quarry_format::DataType::Utf8 => {
            RefOp::Like(seed.pattern.clone(), seed.op == 9)
        }
        8 if t == quarry_format::DataType::Bool => RefOp::IsTrue,
        9 if t == quarry_format::DataType::Bool => RefOp::IsFalse,
        _ => RefOp::Cmp("gte", lit(1)),
    };
    RefFilter {
        col,
        not: seed.not,
        op,
    }
}

#[derive(Clone, Debug)]
struct QuerySeed {
    filters: Vec<FilterSeed>,
    select: Option<Vec<usize>>,
    /// Sort keys (column, desc, nulls first), distinct columns, in priority order.
    order: Vec<(usize, bool, bool)>,
    limit: usize,
    count: bool,
    budget: u64,
    max_bytes: usize,
}

fn query_seed() -> impl Strategy<Value = QuerySeed> {
    (
        proptest::collection::vec(filter_seed(), 0..4),
        proptest::option::of(proptest::sample::subsequence(
            (0..8).collect::<Vec<usize>>(),
            1..8,
        )),
        proptest::collection::vec((0usize..8, any::<bool>(), any::<bool>()), 0..4),
        0usize..12,
        any::<bool>(),
        1u64..70,
        1usize..300,
    )
        .prop_map(
            |(filters, select, mut order, limit, count, budget, max_bytes)| QuerySeed {
                filters,
                order: {
                    let mut seen = Vec::new();
                    order.retain(|o| {
                        let fresh = !seen.contains(&o.0);
                        seen.push(o.0);
                        fresh
                    });
                    order
                },
                select,
                limit,
                count,
                budget,
                max_bytes,
            },
        )
}

fn build_query(seed: &QuerySeed, filters: &[RefFilter], limit: usize) -> String {
    let mut parts: Vec<String> = filters.iter().map(RefFilter::query_text).collect();
    if let Some(sel) = &seed.select {
        let names: Vec<&str> = sel.iter().map(|&c| COLS[c].0).collect();
        parts.push(format!("select={}", names.join(",")));
    }
    if !seed.order.is_empty() {
        let items: Vec<String> = seed
            .order
            .iter()
            .map(|&(c, desc, nf)| {
                format!(
                    "{}.{}.{}",
                    COLS[c].0,
                    if desc { "desc" } else { "asc" },
                    if nf { "nullsfirst" } else { "nullslast" }
                )
            })
            .collect();
        parts.push(format!("order={}", items.join(",")));
    }
    parts.push(format!("limit={limit}"));
    parts.join("&")
}

/// Reference result: the matching rows in output order.
fn reference_rows<'a>(
    rows: &'a [Vec<RV>],
    filters: &[RefFilter],
    order: &[(usize, bool, bool)],
) -> Vec<(usize, &'a Vec<RV>)> {
    let mut out: Vec<(usize, &Vec<RV>)> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| filters.iter().all(|f| f.matches(r)))
        .collect();
    out.sort_by(|a, b| {
        order
            .iter()
            .map(|&(c, desc, nf)| ref_cmp_nulls(&a.1[c], &b.1[c], desc, nf))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
            .then(a.0.cmp(&b.0))
    });
    out
}

proptest! {
    // 256 cases unless PROPTEST_CASES says otherwise.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        .. ProptestConfig::default()
    })]

    /// Walking `next` to the end returns exactly the reference rows, in order, with the
    /// promised value formats; one page equals the first `limit` of them.
    #[test]
    fn scans_match_the_reference((rows, rg, keyed, dict) in dataset_strategy(), seed in query_seed()) {
        let ds = build_with(rows, rg, keyed, dict);
        let filters: Vec<RefFilter> = seed.filters.iter().map(|f| make_filter(f, &ds.rows)).collect();
        let expected = reference_rows(&ds.rows, &filters, &seed.order);
        let cols: Vec<usize> = seed.select.clone().unwrap_or_else(|| (0..8).collect());
        let expected_json: Vec<Json> = expected.iter().map(|(_, r)| expected_row(r, &cols)).collect();

        let query = build_query(&seed, &filters, seed.limit);
        let page = run(&ds, &query, seed.count, seed.budget, seed.max_bytes, &quarry_query::Limits::default())
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        let want = expected_json.len().min(seed.limit);
        prop_assert_eq!(&page.rows[..], &expected_json[..want], "first page of {}", query);
        if seed.count {
            prop_assert_eq!(page.total, Some(expected.len() as u64));
        } else {
            prop_assert_eq!(page.total, None);
        }
        prop_assert_eq!(page.next.is_some(), seed.limit > 0 && expected.len() > seed.limit);

        if seed.limit > 0 {
            let (all, total) = walk(&ds, &query, seed.count, seed.budget, seed.max_bytes)
                .unwrap_or_else(|e| panic!("{query}: {e}"));
            prop_assert_eq!(&all, &expected_json, "walk of {}", query);
            if seed.count {
                prop_assert_eq!(total, Some(expected.len() as u64));
            }
        }
    }

    /// Aggregates equal a BTreeMap-based reference, in the default (group key) order, and
    /// walking their cursor returns every group once.
    #[test]
    fn aggregates_match_the_reference(
        (rows, rg, keyed, dict) in dataset_strategy(),
        fseeds in proptest::collection::vec(filter_seed(), 0..3),
        group in proptest::sample::subsequence(vec![1usize, 5, 6, 2], 0..3),
        limit in 1usize..6,
        budget in 1u64..50,
    ) {
        let ds = build_with(rows, rg, keyed, dict);
        let filters: Vec<RefFilter> = fseeds.iter().map(|f| make_filter(f, &ds.rows)).collect();
        let matching: Vec<&Vec<RV>> = ds.rows.iter().filter(|r| filters.iter().all(|f| f.matches(r))).collect();

        // Reference groups keyed by the group values; BTreeMap over an index into a sorted list.
        let mut keys: Vec<Vec<RV>> = Vec::new();
        let mut members: Vec<Vec<&Vec<RV>>> = Vec::new();
        for r in &matching {
            let k: Vec<RV> = group.iter().map(|&c| norm(&r[c])).collect();
            match keys.iter().position(|x| x == &k || same_key(x, &k)) {
                Some(i) => members[i].push(r),
                None => { keys.push(k); members.push(vec![r]); }
            }
        }
        if group.is_empty() && keys.is_empty() {
            keys.push(Vec::new());
            members.push(Vec::new());
        }
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by(|&a, &b| {
            keys[a]
                .iter()
                .zip(&keys[b])
                .map(|(x, y)| ref_cmp_nulls(x, y, false, false))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        });
        let mut expected: Vec<Json> = Vec::new();
        for &i in &order {
            let ms = &members[i];
            let mut m = serde_json::Map::new();
            for (j, &c) in group.iter().enumerate() {
                m.insert(COLS[c].0.into(), expected_json(&keys[i][j]));
            }
            m.insert("count".into(), json!(ms.len()));
            let xs: Vec<i64> = ms.iter().filter_map(|r| if let RV::I(v) = r[3] { Some(v) } else { None }).collect();
            m.insert("sum(x)".into(), if xs.is_empty() { Json::Null } else { json!(xs.iter().sum::<i64>()) });
            m.insert("avg(x)".into(), if xs.is_empty() { Json::Null } else {
                expected_json(&RV::F(xs.iter().map(|&v| i128::from(v)).sum::<i128>() as f64 / xs.len() as f64))
            });
            m.insert("count(x)".into(), json!(xs.len()));
            let fs: Vec<f64> = ms.iter().filter_map(|r| if let RV::F(v) = r[4] { Some(v) } else { None }).collect();
            let fsum = fs.iter().fold(0.0, |a, b| a + b);
            m.insert("sum(f)".into(), if fs.is_empty() { Json::Null } else { expected_json(&RV::F(fsum)) });
            let extreme = |col: usize, max: bool| -> Json {
                let vs: Vec<&RV> = ms.iter().map(|r| &r[col]).filter(|v| **v != RV::Null).collect();
                let best = vs.into_iter().reduce(|a, b| {
                    let o = ref_cmp(b, a);
                    if (max && o == Ordering::Greater) || (!max && o == Ordering::Less) { b } else { a }
                });
                best.map_or(Json::Null, expected_json)
            };
            m.insert("min(f)".into(), extreme(4, false));
            m.insert("max(f)".into(), extreme(4, true));
            m.insert("max(s)".into(), extreme(2, true));
            m.insert("min(d)".into(), extreme(6, false));
            m.insert("max(t)".into(), extreme(7, true));
            m.insert("min(b)".into(), extreme(5, false));
            expected.push(Json::Object(m));
        }

        let mut sel: Vec<String> = group.iter().map(|&c| COLS[c].0.to_string()).collect();
        sel.extend(["count()", "x.sum()", "x.avg()", "x.count()", "f.sum()", "f.min()", "f.max()", "s.max()", "d.min()", "t.max()", "b.min()"].map(String::from));
        let mut parts: Vec<String> = filters.iter().map(RefFilter::query_text).collect();
        parts.push(format!("select={}", enc(&sel.join(","))));
        parts.push(format!("limit={limit}"));
        let query = parts.join("&");
        let (all, total) = walk(&ds, &query, true, budget, 64).unwrap_or_else(|e| panic!("{query}: {e}"));
        prop_assert_eq!(total, Some(expected.len() as u64));
        prop_assert_eq!(all, expected, "{}", query);
    }
}

/// Group keys compare floats with NaN == NaN and -0 == 0.
fn norm(v: &RV) -> RV {
    match v {
        RV::F(f) if *f == 0.0 => RV::F(0.0),
        other => other.clone(),
    }
}

fn same_key(a: &[RV], b: &[RV]) -> bool {
    a.iter().zip(b).all(|(x, y)| match (x, y) {
        (RV::Null, RV::Null) => true,
        (RV::Null, _) | (_, RV::Null) => false,
        _ => ref_cmp(x, y) == Ordering::Equal,
    })
}

/// BTreeMap is only used to show group keys are independent of insertion order.
#[test]
fn aggregate_order_by_count_desc_breaks_ties_by_group_key() {
    let mut rows = Vec::new();
    for (i, g) in ["z", "y", "y", "x", "x", "w"].iter().enumerate() {
        rows.push(vec![
            RV::I(i as i64),
            RV::S((*g).into()),
            RV::Null,
            RV::I(1),
            RV::Null,
            RV::Null,
            RV::Null,
            RV::Null,
        ]);
    }
    let ds = build(rows.clone(), 2, true);
    let (all, _) = walk(&ds, "select=g,count()&order=count().desc", false, 3, 10).unwrap();
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for r in &rows {
        if let RV::S(g) = &r[1] {
            *counts.entry(g.clone()).or_default() += 1;
        }
    }
    let mut expected: Vec<(String, i64)> = counts.into_iter().collect();
    expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let got: Vec<(String, i64)> = all
        .iter()
        .map(|r| {
            (
                r["g"].as_str().unwrap().to_string(),
                r["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expected);
}
