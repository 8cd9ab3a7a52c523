//! Replays `golden/term.jsonl` (the school, then the end of its second
//! trimestre: appreciations, a closing, a reopening with a grade and an
//! appreciation corrected, a closing again) and compares the report cards
//! with reviewed insta snapshots; the figures are also computed by hand.
#![allow(clippy::unwrap_used)]

use registre_projections::ReadModel;
use registre_replay_tests::school::*;
use registre_replay_tests::term::{period, term_log};
use registre_replay_tests::{golden_dir, read_golden, to_recorded};

fn term() -> ReadModel {
    let lines = read_golden(&golden_dir().join("term.jsonl")).expect("golden log reads");
    assert_eq!(lines, term_log(), "term.jsonl is what src/term.rs writes");
    let mut model = ReadModel::new();
    model
        .apply_all(&to_recorded(&lines))
        .expect("golden log folds");
    model
}

fn close(actual: Option<f64>, expected: f64) {
    let a = actual.expect("a figure");
    assert!((a - expected).abs() < 1e-9, "{a} != {expected}");
}

#[test]
fn the_second_trimestre_report_cards_match_the_hand_computation() {
    let m = term();
    let t2 = period(2);
    let p = m.period(t2).unwrap();
    assert!(p.closed, "closed, reopened, closed again");
    let figures = m.class_figures(class(SIXIEME_A), Some(p.range()));
    let lucas = m.report_card(student("e.lucas"), t2, &figures).unwrap();
    let hugo = m.report_card(student("e.hugo"), t2, &figures).unwrap();
    let chloe = m.report_card(student("e.chloe"), t2, &figures).unwrap();
    // Maths: Lucas (12 + 2 x 14) / 3; Chloé 16; Hugo, corrected 9/20 and
    // 6/10 = 12/20 coef 2: (9 + 24) / 3 = 11.
    let maths = |c: &registre_projections::ReportCard| {
        c.subjects
            .iter()
            .find(|s| s.subject == "Mathématiques")
            .unwrap()
            .clone()
    };
    close(maths(&lucas).average, 40.0 / 3.0);
    close(maths(&hugo).average, 11.0);
    close(
        maths(&lucas).class_average,
        (40.0 / 3.0 + 16.0 + 11.0) / 3.0,
    );
    close(maths(&lucas).class_min, 11.0);
    close(maths(&lucas).class_max, 16.0);
    // Overall: Lucas (40/3 + 15) / 2, Chloé (16 + 11) / 2, Hugo 11.
    close(lucas.overall_average, (40.0 / 3.0 + 15.0) / 2.0);
    close(
        lucas.class_overall_average,
        ((40.0 / 3.0 + 15.0) / 2.0 + 13.5 + 11.0) / 3.0,
    );
    assert_eq!(
        (lucas.rank, chloe.rank, hugo.rank),
        (Some(1), Some(2), Some(3))
    );
    assert_eq!(lucas.class_size, 3);
    assert!(lucas.r#final && hugo.r#final);
    assert_eq!(
        maths(&hugo).appreciation.as_deref(),
        Some("Résultats fragiles mais en progrès : il faut travailler régulièrement.")
    );
    assert_eq!(
        lucas.general_appreciation.as_deref(),
        Some("Trimestre satisfaisant. Encouragements du conseil de classe.")
    );
    // The teacher is the one assigned to the class and subject.
    assert_eq!(maths(&lucas).teacher, Some(person("t.martin")));
    // Every assessment is in the second trimestre: the third has none.
    let t3 = m.period(period(3)).unwrap();
    let empty = m.class_figures(class(SIXIEME_A), Some(t3.range()));
    let later = m
        .report_card(student("e.lucas"), period(3), &empty)
        .unwrap();
    assert_eq!(later.overall_average, None);
    assert_eq!(later.rank, None);
    assert!(!later.r#final);
    insta::assert_json_snapshot!("report_card_lucas_T2", lucas);
    insta::assert_json_snapshot!("report_card_hugo_T2", hugo);
}

#[test]
fn the_evaluation_state_survives_a_snapshot_and_a_replay_to_before_the_correction() {
    let m = term();
    let restored = ReadModel::from_snapshot(&m.to_snapshot().unwrap()).unwrap();
    assert_eq!(restored, m);
    // As it stood between the reopening and the correction: open, the old
    // grade and appreciation.
    let lines = read_golden(&golden_dir().join("term.jsonl")).unwrap();
    let reopened = lines
        .iter()
        .position(|l| l.event_type == "PeriodReopened")
        .unwrap();
    let mut before = ReadModel::new();
    before.apply_all(&to_recorded(&lines[..=reopened])).unwrap();
    let p = before.period(period(2)).unwrap().clone();
    assert!(!p.closed);
    let figures = before.class_figures(class(SIXIEME_A), Some(p.range()));
    let hugo = before
        .report_card(student("e.hugo"), period(2), &figures)
        .unwrap();
    let maths = hugo
        .subjects
        .iter()
        .find(|s| s.subject == "Mathématiques")
        .unwrap();
    close(maths.average, (8.0 + 24.0) / 3.0);
    assert_eq!(
        maths.appreciation.as_deref(),
        Some("Résultats fragiles : il faut travailler régulièrement.")
    );
    assert!(!hugo.r#final);
}
