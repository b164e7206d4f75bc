//! Same input and options => byte-identical file for any --threads, spilled or not.

use crate::common::*;

fn input(env: &Env) -> std::path::PathBuf {
    let mut rng = Rng(5);
    let mut text = String::from("id,cat,amount,day,note\n");
    for i in 0..110_000u64 {
        let id = (i * 48_271) % 110_000;
        text.push_str(&format!(
            "{id},cat{},{}.{:02},2024-{:02}-{:02},\"n {}\nline\"\n",
            rng.below(20),
            rng.below(10_000),
            rng.below(100),
            1 + rng.below(12),
            1 + rng.below(28),
            rng.below(1_000_000)
        ));
    }
    env.write("in.csv", text)
}

#[test]
fn output_is_identical_across_thread_counts_and_spills() {
    let env = Env::new();
    let input = input(&env);
    for key in [None, Some("id")] {
        let mut files = vec![];
        for (threads, mem) in [("1", "1G"), ("2", "1M"), ("4", "1M"), ("4", "1G")] {
            let mut args = vec![
                "--threads",
                threads,
                "--memory-limit",
                mem,
                "--row-group-rows",
                "5000",
            ];
            if let Some(k) = key {
                args.extend(["--key", k]);
            }
            let r = build_in(&env, "t", &[&input], &args).unwrap();
            assert_eq!(r.rows, 110_000);
            if key.is_some() && mem == "1M" {
                // More runs than the merge fan-in (64): the multi-pass merge runs.
                assert!(r.spilled_runs > 64, "{} runs", r.spilled_runs);
            }
            files.push(std::fs::read(env.qry("t")).unwrap());
        }
        for f in &files[1..] {
            assert!(f == &files[0], "key {key:?}: files differ");
        }
    }
}
