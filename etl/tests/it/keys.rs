//! Keyed builds: sorting, duplicate policies, utf8 keys, spilling.

use crate::common::*;

fn dup_input(env: &Env) -> std::path::PathBuf {
    // key 5 appears on lines 3 and 6 (of b.csv), key "1" twice in a row.
    env.write("b.csv", "k,v\n9,a\n5,first\n1,x\n1,y\n5,last\n")
}

#[test]
fn duplicate_keys_error_names_both_records() {
    let env = Env::new();
    let input = dup_input(&env);
    let err = build_in(&env, "t", &[&input], &["--key", "k"]).unwrap_err();
    let msg = format!("{err:#}");
    // Key 1 sorts first: lines 4 and 5.
    assert!(
        msg.contains("duplicate key 1") && msg.contains("b.csv:4") && msg.contains("b.csv:5"),
        "{msg}"
    );
    assert_eq!(quarry_etl::error::exit_code(&err), 3);
}

#[test]
fn duplicate_keys_first_and_last() {
    let env = Env::new();
    let input = dup_input(&env);
    let r = build_in(
        &env,
        "t",
        &[&input],
        &["--key", "k", "--on-duplicate-key", "first"],
    )
    .unwrap();
    assert_eq!(r.duplicates_dropped, 2);
    let s = |x: &str| V::Str(x.into());
    assert_eq!(
        read_rows(&env.qry("t")),
        vec![
            vec![V::Int(1), s("x")],
            vec![V::Int(5), s("first")],
            vec![V::Int(9), s("a")]
        ]
    );
    build_in(
        &env,
        "t",
        &[&input],
        &["--key", "k", "--on-duplicate-key", "last"],
    )
    .unwrap();
    assert_eq!(
        read_rows(&env.qry("t")),
        vec![
            vec![V::Int(1), s("y")],
            vec![V::Int(5), s("last")],
            vec![V::Int(9), s("a")]
        ]
    );
}

/// Reference: sort (key, input position) and keep first/last per key.
fn reference(pairs: &[(String, u64)], last: bool) -> Vec<Vec<V>> {
    let mut idx: Vec<usize> = (0..pairs.len()).collect();
    idx.sort_by(|a, b| {
        pairs[*a]
            .0
            .as_bytes()
            .cmp(pairs[*b].0.as_bytes())
            .then(a.cmp(b))
    });
    let mut out: Vec<Vec<V>> = Vec::new();
    let mut prev: Option<&str> = None;
    for i in idx {
        let (k, v) = &pairs[i];
        let row = vec![V::Str(k.clone()), V::Int(*v as i64)];
        if prev == Some(k.as_str()) {
            if last {
                *out.last_mut().unwrap() = row;
            }
        } else {
            out.push(row);
        }
        prev = Some(k);
    }
    out
}

#[test]
fn utf8_keys_with_duplicates_spill_and_merge_like_in_memory() {
    let env = Env::new();
    let mut rng = Rng(42);
    let pairs: Vec<(String, u64)> = (0..40_000)
        .map(|i| {
            let k = match rng.below(4) {
                0 => format!("k{}", rng.below(5000)),
                1 => format!("prefix-shared-{}", rng.below(5000)),
                2 => format!("ü{}", rng.below(100)),
                _ => format!("{}", rng.below(100_000)),
            };
            (k, i)
        })
        .collect();
    let mut text = String::from("key,v\n");
    for (k, v) in &pairs {
        text.push_str(&format!("{k},{v}\n"));
    }
    let input = env.write("k.csv", text);
    for (policy, last) in [("first", false), ("last", true)] {
        let r = build_in(
            &env,
            "mem",
            &[&input],
            &[
                "--key",
                "key",
                "--on-duplicate-key",
                policy,
                "--schema-out",
                &env.s("s.json"),
            ],
        )
        .unwrap();
        assert_eq!(r.spilled_runs, 0);
        let schema = env.s("s.json");
        let r = build_in(
            &env,
            "spill",
            &[&input],
            &[
                "--schema",
                &schema,
                "--on-duplicate-key",
                policy,
                "--memory-limit",
                "1M",
                "--threads",
                "2",
            ],
        )
        .unwrap();
        assert!(
            r.spilled_runs > 1,
            "tiny limit must spill, got {}",
            r.spilled_runs
        );
        let want = reference(&pairs, last);
        assert_eq!(read_rows(&env.qry("mem")), want, "{policy}");
        assert_eq!(
            std::fs::read(env.qry("mem")).unwrap(),
            std::fs::read(env.qry("spill")).unwrap(),
            "{policy}"
        );
    }
}
