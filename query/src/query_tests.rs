//! One test per parser rule: each operator, each error and the parameter it names.

use quarry_format::{DataType, Field, Schema, Version};

use super::*;
use crate::error::ErrorKind;

const V: Version = Version([1; 16]);

fn schema() -> Schema {
    let f = |name: &str, data_type, nullable| Field {
        name: name.into(),
        data_type,
        nullable,
    };
    Schema::new(
        vec![
            f("id", DataType::Int64, false),
            f("name", DataType::Utf8, true),
            f("price", DataType::Float64, true),
            f("ok", DataType::Bool, true),
            f("day", DataType::Date, true),
            f("ts", DataType::Timestamp, true),
        ],
        Some(0),
    )
    .unwrap()
}

fn parse(q: &str) -> Result<RowsQuery, QueryError> {
    parse_rows_query(q, &schema(), V, &Limits::default())
}

fn one_filter(q: &str) -> Filter {
    let mut fs = parse(q).unwrap().filters;
    assert_eq!(fs.len(), 1, "{q}");
    fs.remove(0)
}

/// Asserts a 400 naming `param` whose message contains every `needle`.
fn bad(q: &str, param: &str, needles: &[&str]) {
    let e = parse(q).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadRequest, "{q}: {e}");
    assert_eq!(e.param.as_deref(), Some(param), "{q}: {e}");
    for n in needles {
        assert!(
            e.message.contains(n),
            "{q}: message {:?} lacks {n:?}",
            e.message
        );
    }
}

#[test]
fn comparison_operators() {
    for (op, want) in [
        ("eq", CmpOp::Eq),
        ("neq", CmpOp::Neq),
        ("gt", CmpOp::Gt),
        ("gte", CmpOp::Gte),
        ("lt", CmpOp::Lt),
        ("lte", CmpOp::Lte),
    ] {
        let f = one_filter(&format!("id={op}.5"));
        assert_eq!(f.column, 0);
        assert!(
            matches!(f.pred, Predicate::Cmp(o, Literal::Int(5)) if o == want),
            "{op}"
        );
    }
}

#[test]
fn not_negates_comparisons() {
    for (op, want) in [
        ("eq", CmpOp::Neq),
        ("neq", CmpOp::Eq),
        ("gt", CmpOp::Lte),
        ("gte", CmpOp::Lt),
        ("lt", CmpOp::Gte),
        ("lte", CmpOp::Gt),
    ] {
        let f = one_filter(&format!("price=not.{op}.1.5"));
        assert!(matches!(f.pred, Predicate::Cmp(o, Literal::Float(v)) if o == want && v == 1.5));
    }
}

#[test]
fn typed_literals_per_column() {
    assert!(
        matches!(one_filter("name=eq.Oslo").pred, Predicate::Cmp(_, Literal::Str(s)) if s == "Oslo")
    );
    assert!(matches!(
        one_filter("ok=eq.true").pred,
        Predicate::Cmp(_, Literal::Bool(true))
    ));
    assert!(matches!(
        one_filter("day=gte.1970-01-11").pred,
        Predicate::Cmp(_, Literal::Int(10))
    ));
    assert!(matches!(
        one_filter("ts=lt.1970-01-01T00:00:01Z").pred,
        Predicate::Cmp(_, Literal::Int(1_000_000))
    ));
    // A dot inside the value is part of the value.
    assert!(
        matches!(one_filter("name=eq.a.b").pred, Predicate::Cmp(_, Literal::Str(s)) if s == "a.b")
    );
}

#[test]
fn wrong_types_name_the_column() {
    bad("id=eq.abc", "id", &["int64", "\"abc\""]);
    bad("price=gt.cheap", "price", &["float64", "cheap"]);
    bad("ok=eq.yes", "ok", &["bool", "yes"]);
    bad("day=eq.2024-02-30", "day", &["date", "YYYY-MM-DD"]);
    bad("ts=eq.noon", "ts", &["timestamp", "noon"]);
    bad("id=in.(1,x)", "id", &["int64", "\"x\""]);
}

#[test]
fn in_lists() {
    let f = one_filter("name=in.(a,b,%22c%2Cd%22,%22e%5C%22f%22)");
    match f.pred {
        Predicate::In {
            values,
            negated: false,
        } => assert_eq!(
            values,
            vec![
                Literal::Str("a".into()),
                Literal::Str("b".into()),
                Literal::Str("c,d".into()),
                Literal::Str("e\"f".into())
            ]
        ),
        p => panic!("{p:?}"),
    }
    assert!(
        matches!(one_filter("id=in.()").pred, Predicate::In { values, .. } if values.is_empty())
    );
    assert!(matches!(
        one_filter("id=not.in.(1,2)").pred,
        Predicate::In { negated: true, .. }
    ));
    bad("id=in.1,2", "id", &["parentheses"]);
    bad("name=in.(%22a)", "name", &["not closed"]);
    bad("name=in.(a%22b)", "name", &["inside an unquoted value"]);
    bad("name=in.(%22a%22b)", "name", &["after a quoted value"]);
}

#[test]
fn is_operators() {
    assert!(matches!(
        one_filter("name=is.null").pred,
        Predicate::IsNull { negated: false }
    ));
    assert!(matches!(
        one_filter("name=not.is.null").pred,
        Predicate::IsNull { negated: true }
    ));
    assert!(matches!(
        one_filter("ok=is.true").pred,
        Predicate::IsBool {
            value: true,
            negated: false
        }
    ));
    assert!(matches!(
        one_filter("ok=not.is.false").pred,
        Predicate::IsBool {
            value: false,
            negated: true
        }
    ));
    bad("price=is.true", "price", &["bool column"]);
    bad(
        "ok=is.maybe",
        "ok",
        &["is.null, is.true or is.false", "maybe"],
    );
}

#[test]
fn like_operators() {
    assert!(matches!(
        one_filter("name=like.*sl*").pred,
        Predicate::Like { negated: false, .. }
    ));
    assert!(matches!(
        one_filter("name=not.ilike.O*").pred,
        Predicate::Like { negated: true, .. }
    ));
    bad("id=like.1*", "id", &["utf8", "int64"]);
}

#[test]
fn bad_operators_and_shapes() {
    bad("id=equals.5", "id", &["unknown operator", "equals"]);
    bad("id=5", "id", &["[not.]op.value"]);
    bad("id", "id", &["[not.]op.value"]);
    bad("id=not.5", "id", &["[not.]op.value"]);
}

#[test]
fn unknown_parameters_and_columns() {
    bad(
        "colour=eq.red",
        "colour",
        &["neither a query parameter", "columns are: id, name"],
    );
    bad("offset=10", "offset", &["neither"]);
}

#[test]
fn several_filters_are_anded_and_may_repeat_a_column() {
    let q = parse("id=gte.10&id=lt.20&name=eq.x").unwrap();
    assert_eq!(q.filters.len(), 3);
    assert_eq!(q.filters[0].column, 0);
    assert_eq!(q.filters[1].column, 0);
}

#[test]
fn percent_decoding_and_plus() {
    assert!(
        matches!(one_filter("name=eq.a%20b").pred, Predicate::Cmp(_, Literal::Str(s)) if s == "a b")
    );
    assert!(
        matches!(one_filter("name=eq.a+b").pred, Predicate::Cmp(_, Literal::Str(s)) if s == "a+b")
    );
    assert!(matches!(one_filter("%6Eame=eq.x").pred, Predicate::Cmp(..)));
    bad("name=eq.%FF", "name", &["UTF-8"]);
    let e = parse("%FF=eq.1").unwrap_err();
    assert_eq!(e.status(), 400);
    assert_eq!(e.code, "bad_encoding");
}

#[test]
fn malformed_percent_escapes_are_refused_not_taken_literally() {
    bad("name=eq.%ZZ", "name", &["two hex digits", "byte 3"]);
    bad("name=eq.ab%", "name", &["two hex digits"]);
    bad("name=eq.%4", "name", &["two hex digits"]);
    assert_eq!(parse("na%ZZme=eq.1").unwrap_err().code, "bad_encoding");
    assert!(
        matches!(one_filter("name=eq.100%25").pred, Predicate::Cmp(_, Literal::Str(s)) if s == "100%")
    );
    let key_err = crate::parse_key("12%G", &schema()).unwrap_err();
    assert_eq!(
        (key_err.code, key_err.param.as_deref()),
        ("bad_encoding", Some("key"))
    );
}

#[test]
fn select_columns_and_star() {
    let q = parse("select=price,id").unwrap();
    assert!(matches!(&q.projection, Projection::Columns(c) if c == &[2, 0]));
    assert_eq!(q.output_columns(), vec!["price", "id"]);
    let q = parse("select=*").unwrap();
    assert!(matches!(&q.projection, Projection::Columns(c) if c.len() == 6));
    let q = parse("").unwrap();
    assert!(matches!(&q.projection, Projection::Columns(c) if c.len() == 6));
    bad("select=id,nope", "select", &["unknown column", "nope"]);
    bad("select=id,,name", "select", &["empty item"]);
    bad("select=id,id", "select", &["twice"]);
    bad("select=a&select=b", "select", &["twice"]);
}

#[test]
fn select_aggregates() {
    let q = parse("select=name,ok,price.sum(),price.avg(),id.min(),day.max(),count(),name.count()")
        .unwrap();
    let Projection::Aggregate { group_by, aggs } = &q.projection else {
        panic!()
    };
    assert_eq!(group_by, &[1, 3]);
    let names: Vec<&str> = aggs.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "sum(price)",
            "avg(price)",
            "min(id)",
            "max(day)",
            "count",
            "count(name)"
        ]
    );
    assert_eq!(
        q.output_columns()[..2],
        ["name".to_string(), "ok".to_string()]
    );
    bad("select=name.sum()", "select", &["int64 or float64", "utf8"]);
    bad("select=day.avg()", "select", &["int64 or float64", "date"]);
    bad(
        "select=price.median()",
        "select",
        &["unknown aggregate", "median"],
    );
    bad("select=nope.sum()", "select", &["unknown column", "nope"]);
    bad("select=*,count()", "select", &["cannot be combined"]);
    bad("select=count(),count()", "select", &["twice"]);
}

#[test]
fn order_forms() {
    let o = parse("order=price").unwrap().order.unwrap();
    assert_eq!(
        o,
        OrderBy {
            target: OrderTarget::Column(2),
            desc: false,
            nulls_first: false
        }
    );
    let o = parse("order=price.desc").unwrap().order.unwrap();
    assert!(o.desc && !o.nulls_first);
    let o = parse("order=price.desc.nullsfirst").unwrap().order.unwrap();
    assert!(o.desc && o.nulls_first);
    let o = parse("order=price.nullsfirst").unwrap().order.unwrap();
    assert!(!o.desc && o.nulls_first);
    let o = parse("order=price.asc.nullslast").unwrap().order.unwrap();
    assert!(!o.desc && !o.nulls_first);
    bad("order=nope.desc", "order", &["a column", "nope.desc"]);
    bad("order=price.nullsfirst.desc", "order", &["a column"]);
    bad("order=price,id", "order", &["one column"]);
    bad("order=price.up", "order", &["price.up"]);
}

#[test]
fn order_with_aggregates() {
    let q = parse("select=name,price.sum()&order=price.sum().desc").unwrap();
    assert_eq!(q.order.unwrap().target, OrderTarget::Aggregate(0));
    let q = parse("select=name,price.sum()&order=sum(price)").unwrap();
    assert_eq!(q.order.unwrap().target, OrderTarget::Aggregate(0));
    let q = parse("select=name,price.sum()&order=name.desc").unwrap();
    assert_eq!(q.order.unwrap().target, OrderTarget::Column(1));
    // Not a group column nor a selected aggregate.
    bad(
        "select=name,price.sum()&order=id",
        "order",
        &["group column"],
    );
    bad(
        "select=name,price.sum()&order=price.max()",
        "order",
        &["group column"],
    );
}

#[test]
fn limits() {
    assert_eq!(parse("").unwrap().limit, 100);
    assert_eq!(parse("limit=0").unwrap().limit, 0);
    assert_eq!(parse("limit=10000").unwrap().limit, 10_000);
    bad("limit=10001", "limit", &["maximum 10000"]);
    bad("limit=-1", "limit", &["whole number", "-1"]);
    bad("limit=ten", "limit", &["whole number"]);
    bad("limit=1&limit=2", "limit", &["twice"]);
}

#[test]
fn cursors() {
    bad("cursor=garbage", "cursor", &["malformed cursor"]);
    let other = crate::cursor::Cursor::Row(3).encode(Version([2; 16]), None);
    let e = parse(&format!("cursor={other}")).unwrap_err();
    assert_eq!(
        (e.status(), e.code, e.param.as_deref()),
        (409, "stale_cursor", Some("cursor"))
    );
    let mine = crate::cursor::Cursor::Row(3).encode(V, None);
    assert_eq!(
        parse(&format!("cursor={mine}")).unwrap().cursor,
        Some(crate::cursor::Cursor::Row(3))
    );
    // A row-order cursor replayed with order=.
    bad(
        &format!("cursor={mine}&order=price"),
        "cursor",
        &["another select or order"],
    );
}

#[test]
fn count_exact_toggles() {
    let mut q = parse("").unwrap();
    assert!(!q.count_exact);
    q.count_exact(true);
    assert!(q.count_exact);
}
