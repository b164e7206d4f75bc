//! One test per parser rule: each operator, each error and the parameter it names.

use quarry_format::{DataType, Field, Schema, Version};

use super::*;
use crate::error::ErrorKind;
use crate::percent::decode_query;

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
    bad("range=10", "range", &["neither"]);
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
    let one = |q: &str| {
        let o = parse(q).unwrap().order;
        assert_eq!(o.len(), 1, "{q}");
        o[0]
    };
    let o = one("order=price");
    assert_eq!(
        o,
        OrderBy {
            target: OrderTarget::Column(2),
            desc: false,
            nulls_first: false
        }
    );
    let o = one("order=price.desc");
    assert!(o.desc && !o.nulls_first);
    let o = one("order=price.desc.nullsfirst");
    assert!(o.desc && o.nulls_first);
    let o = one("order=price.nullsfirst");
    assert!(!o.desc && o.nulls_first);
    let o = one("order=price.asc.nullslast");
    assert!(!o.desc && !o.nulls_first);
    // Issue #23: an unknown column is called unknown, with the list of columns.
    bad(
        "order=nope.desc",
        "order",
        &["unknown column \"nope\"", "columns are: id, name"],
    );
    bad("order=price.nullsfirst.desc", "order", &["unknown column"]);
    bad("order=price.up", "order", &["price.up"]);
    bad("order=price,price.desc", "order", &["already named"]);
}

#[test]
fn order_by_several_columns() {
    let o = parse("order=price.desc,id.asc,name.nullsfirst")
        .unwrap()
        .order;
    assert_eq!(
        o.iter()
            .map(|o| (o.target, o.desc, o.nulls_first))
            .collect::<Vec<_>>(),
        vec![
            (OrderTarget::Column(2), true, false),
            (OrderTarget::Column(0), false, false),
            (OrderTarget::Column(1), false, true),
        ]
    );
}

#[test]
fn postgrest_dialect_nulls_and_aggregate_names() {
    let pg = |q: &str| parse_rows_query_in(q, &schema(), V, &Limits::default(), Dialect::PostgRest);
    // PostgreSQL: NULLS FIRST is the default for DESC, NULLS LAST for ASC.
    let o = pg("order=price.desc,name").unwrap().order;
    assert!(o[0].desc && o[0].nulls_first);
    assert!(!o[1].desc && !o[1].nulls_first);
    assert!(!pg("order=price.desc.nullslast").unwrap().order[0].nulls_first);
    assert!(!parse("order=price.desc").unwrap().order[0].nulls_first);
    // `+` is a space on the PostgREST face (form encoding, as PostgREST and its clients do),
    // a literal plus in /v1.
    let lit = |q: &RowsQuery| match &q.filters[0].pred {
        Predicate::Cmp(_, Literal::Str(s)) => s.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(lit(&pg("name=eq.a+b%2Bc").unwrap()), "a b+c");
    assert_eq!(lit(&parse("name=eq.a+b%2Bc").unwrap()), "a+b+c");
    let q = pg("select=name,price.avg(),id.count(),count()").unwrap_err();
    assert_eq!(q.code, "bad_select", "count twice needs an alias");
    let q = pg("select=name,price.avg(),n:id.count()").unwrap();
    assert_eq!(q.output_columns(), ["name", "avg", "n"]);
    let q = parse("select=name,price.avg(),n:id.count()").unwrap();
    assert_eq!(q.output_columns(), ["name", "avg(price)", "n"]);
    // The /v1 name is accepted in order= on both faces.
    assert_eq!(
        pg("select=name,price.sum()&order=sum(price).desc")
            .unwrap()
            .order[0]
            .target,
        OrderTarget::Aggregate(0)
    );
}

#[test]
fn aliases() {
    let q = parse("select=who:name,p:price,id").unwrap();
    assert_eq!(q.output_columns(), ["who", "p", "id"]);
    let q = parse("select=a:name,b:name").unwrap();
    assert_eq!(q.output_columns(), ["a", "b"]);
    let q = parse("select=who:name,total:price.sum()&order=total.desc").unwrap();
    assert_eq!(q.output_columns(), ["who", "total"]);
    assert_eq!(q.order[0].target, OrderTarget::Aggregate(0));
    let q = parse("select=p:price&order=p.desc").unwrap();
    assert_eq!(q.order[0].target, OrderTarget::Column(2));
    bad("select=name,name", "select", &["twice"]);
    bad("select=name::text", "select", &["casts"]);
    bad(
        "select=name,other(id)",
        "select",
        &["embedded", "no embedding"],
    );
}

#[test]
fn logic_trees() {
    let q = parse("or=(price.gt.3,name.eq.\"a,b\",and(id.lt.5,ok.is.true))").unwrap();
    assert!(q.filters.is_empty());
    assert_eq!(q.trees.len(), 1);
    let Cond::Any(items) = &q.trees[0] else {
        panic!("{:?}", q.trees)
    };
    assert_eq!(items.len(), 3);
    match &items[1] {
        Cond::Leaf(Filter {
            pred: Predicate::Cmp(CmpOp::Eq, Literal::Str(s)),
            ..
        }) => assert_eq!(s, "a,b"),
        other => panic!("{other:?}"),
    }
    // and= at the top level is plain filters (key ranges and zone maps use them).
    let q = parse("and=(id.gte.2,id.lt.9)").unwrap();
    assert_eq!((q.filters.len(), q.trees.len()), (2, 0));
    // not.and = or of the negations (De Morgan).
    let q = parse("not.and=(id.gte.2,price.not.is.null)").unwrap();
    let Cond::Any(items) = &q.trees[0] else {
        panic!("{:?}", q.trees)
    };
    assert!(matches!(
        items[..],
        [
            Cond::Leaf(Filter {
                pred: Predicate::Cmp(CmpOp::Lt, _),
                ..
            }),
            Cond::Leaf(Filter {
                pred: Predicate::IsNull { negated: false },
                ..
            })
        ]
    ));
    assert!(parse("or=(id.in.(1,2),not.or(id.eq.3,name.like.*x*))").is_ok());
    bad("or=id.eq.1", "or", &["or=(filter"]);
    bad("or=(id.eq.1,)", "or", &["empty item"]);
    bad("or=(nope.eq.1)", "or", &["unknown column \"nope\""]);
    bad("or=(id.eq.x)", "or", &["x"]);
    bad("or=(not.id.eq.1)", "or", &["after the column"]);
    bad("or=(id.eq.1", "or", &["or=(filter"]);
    bad("or=(name.eq.\"a)", "or", &["not closed"]);
    let deep = format!("or=({}id.eq.1{})", "or(".repeat(40), ")".repeat(40));
    bad(&deep, "or", &["nested"]);
}

#[test]
fn isdistinct_and_unsupported_operators() {
    let q = parse("price=isdistinct.3").unwrap();
    assert!(matches!(&q.trees[..], [Cond::Any(items)] if items.len() == 2));
    let f = one_filter("price=not.isdistinct.3");
    assert!(matches!(f.pred, Predicate::Cmp(CmpOp::Eq, _)));
    let f = one_filter("price=isdistinct.null");
    assert!(matches!(f.pred, Predicate::IsNull { negated: true }));
    assert!(matches!(
        one_filter("name=match.^a").pred,
        Predicate::Regex { negated: false, .. }
    ));
    assert!(matches!(
        one_filter("name=not.imatch.B$").pred,
        Predicate::Regex { negated: true, .. }
    ));
    bad("name=match.(", "name", &["invalid regular expression"]);
    bad("price=match.1", "price", &["utf8 column"]);
    bad(
        "name=cs.{a}",
        "name",
        &["not supported", "isdistinct", "match"],
    );
    bad("name=fts.cat", "name", &["not supported"]);
}

#[test]
fn offsets() {
    assert_eq!(parse("offset=7").unwrap().offset, 7);
    assert_eq!(parse("").unwrap().offset, 0);
    bad("offset=x", "offset", &["whole number"]);
    bad(
        "offset=100001",
        "offset",
        &["maximum 100000", "cursor", "next"],
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

fn pairs(q: &str) -> Vec<(String, String)> {
    let mut p = decode_query(q).unwrap();
    p.sort();
    p
}

#[test]
fn cursors() {
    bad("cursor=garbage", "cursor", &["malformed cursor"]);
    let other = crate::cursor::Cursor::Row(3).encode(Version([2; 16]), &[]);
    let e = parse(&format!("cursor={other}")).unwrap_err();
    assert_eq!(
        (e.status(), e.code, e.param.as_deref()),
        (409, "stale_cursor", Some("cursor"))
    );
    let mine = crate::cursor::Cursor::Row(3).encode(V, &[]);
    assert_eq!(
        parse(&format!("cursor={mine}")).unwrap().cursor,
        Some(crate::cursor::Cursor::Row(3))
    );
    // A row-order cursor replayed with order=: the parameter that differs is named.
    let e = parse(&format!("cursor={mine}&order=price")).unwrap_err();
    assert_eq!(
        (e.code, e.param.as_deref()),
        ("cursor_mismatch", Some("order"))
    );
    bad(
        &format!("cursor={mine}&cursor={mine}"),
        "cursor",
        &["twice"],
    );
    bad(
        &format!("cursor={mine}&offset=3"),
        "offset",
        &["cannot be combined"],
    );
}

/// Issue #23: a cursor alone continues the query that made it, filters and select included.
#[test]
fn a_cursor_alone_continues_its_query() {
    let made_by = "name=eq.JFK&price=gt.300&select=id,price&limit=3&order=price.desc";
    let c = crate::cursor::Cursor::Ordered(5).encode(V, &pairs(made_by));
    let q = parse(&format!("cursor={c}")).unwrap();
    assert_eq!(q.output_columns(), ["id", "price"]);
    assert_eq!((q.filters.len(), q.limit, q.order.len()), (2, 3, 1));
    assert_eq!(q.cursor, Some(crate::cursor::Cursor::Ordered(5)));
    // The same parameters in another order (and encoded differently) are the same query.
    let q = parse(&format!(
        "select=id%2Cprice&order=price.desc&price=gt.300&name=eq.JFK&cursor={c}"
    ))
    .unwrap();
    assert_eq!(q.limit, 3);
    // limit may change the page size.
    assert_eq!(parse(&format!("cursor={c}&limit=50")).unwrap().limit, 50);
    // Any other difference is a 400 naming the parameter.
    for (q, param) in [
        (
            "name=eq.LGA&price=gt.300&select=id,price&order=price.desc",
            "name",
        ),
        ("name=eq.JFK&select=id,price&order=price.desc", "price"),
        (
            "name=eq.JFK&price=gt.300&select=id&order=price.desc",
            "select",
        ),
        ("name=eq.JFK&price=gt.300&select=id,price", "order"),
        (
            "name=eq.JFK&price=gt.300&price=lt.900&select=id,price&order=price.desc",
            "price",
        ),
    ] {
        let e = parse(&format!("{q}&cursor={c}")).unwrap_err();
        assert_eq!(
            (e.status(), e.code, e.param.as_deref()),
            (400, "cursor_mismatch", Some(param)),
            "{q}: {}",
            e.message
        );
        assert!(e.message.contains("send the cursor alone"), "{}", e.message);
    }
    // A cursor whose kind does not fit its query.
    let r = crate::cursor::Cursor::Row(5).encode(V, &pairs(made_by));
    bad(&format!("cursor={r}"), "cursor", &["kind"]);
}

#[test]
fn count_exact_toggles() {
    let mut q = parse("").unwrap();
    assert!(!q.count_exact);
    q.count_exact(true);
    assert!(q.count_exact);
}
