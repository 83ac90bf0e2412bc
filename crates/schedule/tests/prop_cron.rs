//! Properties of the cron dialect over generated input: no input makes the parser panic, every valid expression's
//! next tick lies strictly after the instant asked about and matches the expression's fixed fields, and a field
//! out of its range is refused with that field's name. `PROPTEST_CASES` raises the case count for longer runs.

use proptest::prelude::*;
use schedule::{FIELDS, Forms, SCF_OFFSET_SECS, Schedule};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// One field value: a number, a range, a step, a list, a wildcard, or one of the special forms.
fn field(i: usize) -> BoxedStrategy<String> {
    let (lo, hi): (i32, i32) = [
        (0, 59),
        (0, 59),
        (0, 23),
        (1, 31),
        (1, 12),
        (0, 6),
        (2026, 2099),
    ][i];
    let n = move || (lo..=hi).prop_map(|v: i32| v.to_string());
    let mut options: Vec<BoxedStrategy<String>> = vec![
        Just("*".to_string()).boxed(),
        n().boxed(),
        (lo..=hi, lo..=hi)
            .prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b)))
            .boxed(),
        (1..=10i32).prop_map(|s| format!("*/{s}")).boxed(),
        (n(), n()).prop_map(|(a, b)| format!("{a},{b}")).boxed(),
    ];
    if i == 3 {
        options.push(Just("L".to_string()).boxed());
        options.push(Just("?".to_string()).boxed());
        options.push((1..=28i32).prop_map(|d| format!("{d}W")).boxed());
    }
    if i == 5 {
        options.push(Just("?".to_string()).boxed());
        options.push(
            (0..=6i32, 1..=4i32)
                .prop_map(|(d, k)| format!("{d}#{k}"))
                .boxed(),
        );
        options.push(Just("MON-FRI".to_string()).boxed());
    }
    proptest::strategy::Union::new(options).boxed()
}

fn expression() -> impl Strategy<Value = Vec<String>> {
    (0..7).map(field).collect::<Vec<_>>()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,60}") {
        let _ = Schedule::parse(&s, Forms::SevenOrLegacyFive);
    }

    #[test]
    fn arbitrary_field_soup_never_panics(parts in proptest::collection::vec("[0-9A-Z*/,?#LW+-]{0,6}", 0..9)) {
        let _ = Schedule::parse(&parts.join(" "), Forms::SevenOrLegacyFive);
    }

    #[test]
    fn the_next_tick_is_later_and_whole_seconds(fields in expression(), after in 1_700_000_000_000i64..1_900_000_000_000) {
        let expr = fields.join(" ");
        if let Ok(s) = Schedule::parse(&expr, Forms::Seven)
            && let Some(next) = s.next_after(after, SCF_OFFSET_SECS)
        {
            prop_assert!(next > after, "{expr}: {next} <= {after}");
            prop_assert_eq!(next % 1000, 0, "{}: ticks fall on whole seconds", expr);
            // A fixed second field holds in every tick.
            if let Ok(sec) = fields[0].parse::<i64>() {
                prop_assert_eq!((next / 1000).rem_euclid(60), sec, "{}", expr);
            }
            // Nothing between `after` and `next` is a tick: the tick after (after, next - 1) is `next` again.
            prop_assert_eq!(s.next_after(next - 1, SCF_OFFSET_SECS), Some(next));
        }
    }

    #[test]
    fn an_out_of_range_field_is_named(i in 0usize..6, over in 0i32..40) {
        let bad = [60, 60, 24, 32, 13, 8][i] + over;
        let mut f = vec!["0", "0", "0", "*", "*", "*", "*"].into_iter().map(String::from).collect::<Vec<_>>();
        f[i] = bad.to_string();
        let e = Schedule::parse(&f.join(" "), Forms::Seven).expect_err("out of range");
        prop_assert_eq!(e.field, FIELDS[i]);
    }
}
