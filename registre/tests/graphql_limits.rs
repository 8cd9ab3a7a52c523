//! Query limits over the real schema (PostgreSQL store, seeded school): a
//! fragment fan-out is refused before it is expanded, anonymous requests get a
//! small budget, expensive fields weigh more, every error carries
//! `extensions.code`, and introspection can be turned off.
#![allow(clippy::unwrap_used)]

mod common;

use async_graphql::{Request, Response, Variables};
use common::{codes, World};
use registre_api::context::Caller;
use registre_api::graphql::{build_schema_with, QueryLimits, RegistreSchema};
use serde_json::{json, Value};

/// `query{me{...F24}}` where each fragment spreads the previous one twice:
/// 1 KB that expands to 2^26 selections.
fn fan_out(levels: usize) -> String {
    let mut q = format!("query{{me{{...F{levels}}}}} fragment F0 on Person{{id displayName}}");
    for i in 1..=levels {
        q.push_str(&format!(
            " fragment F{i} on Person{{...F{} ...F{}}}",
            i - 1,
            i - 1
        ));
    }
    q
}

fn as_caller(who: &str, query: &str, vars: Value) -> Request {
    Request::new(query)
        .variables(Variables::from_json(vars))
        .data(Caller {
            subject: who.to_owned(),
            admin: who == "admin",
        })
}

async fn anonymous(schema: &RegistreSchema, query: &str) -> Response {
    schema.execute(Request::new(query)).await
}

/// Every error has a code, and it is INVALID_INPUT; answers the messages.
#[track_caller]
fn invalid_input(r: &Response) -> String {
    assert!(!r.errors.is_empty(), "expected errors, got {:?}", r.data);
    assert_eq!(
        codes(r).len(),
        r.errors.len(),
        "an error without a code: {:?}",
        r.errors
    );
    assert!(
        codes(r).iter().all(|c| c == "INVALID_INPUT"),
        "{:?}",
        r.errors
    );
    r.errors
        .iter()
        .map(|e| e.message.clone())
        .collect::<Vec<_>>()
        .join(" | ")
}

#[tokio::test]
async fn a_fragment_fan_out_is_refused_before_it_is_expanded() {
    let w = World::postgres().await;
    let q = fan_out(24);
    assert!(q.len() < 1_100, "the probe's document is about 1 KB");
    let started = std::time::Instant::now();
    let r = anonymous(&w.node.schema, &q).await;
    let anonymous_time = started.elapsed();
    let m = invalid_input(&r);
    assert!(m.contains("selections"), "{m}");
    assert_eq!(r.data, async_graphql::Value::Null);
    let started = std::time::Instant::now();
    let r = w.node.run("teacher1", &q, json!({})).await;
    let caller_time = started.elapsed();
    let m = invalid_input(&r);
    assert!(m.contains("selections") && m.contains("2000"), "{m}");
    // Reported, not asserted (speed belongs to benchmarks): before the limits
    // this took 6.2 s of CPU.
    eprintln!("fan-out refused in {anonymous_time:?} (anonymous), {caller_time:?} (teacher)");
    // A cycle is refused as well, not left to recursion.
    let r = w
        .node
        .run(
            "teacher1",
            "{ me { ...A } } fragment A on Person { id ...B } fragment B on Person { ...A }",
            json!({}),
        )
        .await;
    assert!(invalid_input(&r).contains("spreads itself"));
    w.node.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_fan_outs_in_parallel_do_not_stall_another_request() {
    let w = World::postgres().await;
    let q = fan_out(24);
    let spawn_fan_out = || {
        let schema = w.node.schema.clone();
        let q = q.clone();
        tokio::spawn(async move { schema.execute(Request::new(q)).await })
    };
    let (a, b) = (spawn_fan_out(), spawn_fan_out());
    let other = {
        let schema = w.node.schema.clone();
        tokio::spawn(async move {
            schema
                .execute(as_caller("guardian1", "{ me { displayName } }", json!({})))
                .await
        })
    };
    let other = other.await.unwrap();
    assert!(other.errors.is_empty(), "{:?}", other.errors);
    assert_eq!(
        other.data.into_json().unwrap(),
        json!({"me": {"displayName": "guardian1"}})
    );
    for r in [a.await.unwrap(), b.await.unwrap()] {
        invalid_input(&r);
    }
    w.node.app.shutdown().await;
}

#[tokio::test]
async fn anonymous_requests_get_a_small_budget() {
    let w = World::postgres().await;
    let schema = &w.node.schema;
    // What an anonymous caller may run is answered as before.
    let r = anonymous(schema, "{ me { id } }").await;
    assert_eq!(codes(&r), ["UNAUTHENTICATED"]);
    // Anything larger is refused before any work.
    let big = format!("{{ me {{ id }} }} # {}", "x".repeat(9_000));
    let m = invalid_input(&anonymous(schema, &big).await);
    assert!(m.contains("bytes") && m.contains("8192"), "{m}");
    let aliased: String = (0..11).map(|n| format!("a{n}: me {{ id }} ")).collect();
    let aliased = format!("{{ {aliased} }}");
    let m = invalid_input(&anonymous(schema, &aliased).await);
    assert!(m.contains("aliases") && m.contains("10"), "{m}");
    let many: String = (0..700).map(|n| format!("f{n} ")).collect();
    let m = invalid_input(&anonymous(schema, &format!("{{ me {{ {many} }} }}")).await);
    assert!(m.contains("selections") && m.contains("600"), "{m}");
    // The same documents with a token are within the caller's budget.
    let r = w.node.run("guardian1", &aliased, json!({})).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let r = w.node.run("guardian1", &big, json!({})).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    w.node.app.shutdown().await;
}

#[tokio::test]
async fn documents_are_bounded_before_validation() {
    let w = World::postgres().await;
    let node = &w.node;
    let run = |q: String| async move { node.run("teacher1", &q, json!({})).await };
    let m = invalid_input(&run(format!("{{ me {{ id }} }} # {}", "x".repeat(70_000))).await);
    assert!(m.contains("bytes") && m.contains("65536"), "{m}");
    let m = invalid_input(&run(format!("{{ me {{ id {} }} }}", "id ".repeat(10_001))).await);
    assert!(m.contains("tokens") && m.contains("10000"), "{m}");
    let aliased: String = (0..101).map(|n| format!("a{n}: me {{ id }} ")).collect();
    let m = invalid_input(&run(format!("{{ {aliased} }}")).await);
    assert!(m.contains("101 aliases") && m.contains("100"), "{m}");
    let spreads = "...P ".repeat(201);
    let m = invalid_input(
        &run(format!(
            "{{ me {{ {spreads} }} }} fragment P on Person {{ id }}"
        ))
        .await,
    );
    assert!(m.contains("201 fragment spreads"), "{m}");
    let directives = "id @skip(if: false) ".repeat(101);
    let m = invalid_input(&run(format!("{{ me {{ {directives} }} }}")).await);
    assert!(m.contains("101 directives"), "{m}");
    // Depth through fragments counts as written out.
    let mut frags = String::new();
    for i in 0..13 {
        frags.push_str(&format!(
            " fragment D{i} on SchoolClass {{ students {{ schoolClass {{ ...D{} }} }} }}",
            i + 1
        ));
    }
    frags.push_str(" fragment D13 on SchoolClass { id }");
    let m = invalid_input(&run(format!("{{ schoolClass(id: \"x\") {{ ...D0 }} }}{frags}")).await);
    assert!(m.contains("nested too deep") && m.contains("12"), "{m}");
    let m = invalid_input(&run(format!("{{ me {}", "{ ".repeat(60))).await);
    assert!(m.contains("nested too deep"), "{m}");
    w.node.app.shutdown().await;
}

/// What a guardian's home screen asks for (bench/src/api.rs).
const DASHBOARD: &str = r#"query Dashboard {
  myChildren {
    id
    person { displayName }
    schoolClass { name }
    averages { subject average classAverage }
    overallAverage
    grades { score status assessment { subject title date coefficient } }
    absences { id kind start end minutesLate state }
    homework(from: "2026-03-02", to: "2026-03-15") { subject title due }
  }
}"#;

#[tokio::test]
async fn expensive_fields_weigh_more() {
    let w = World::postgres().await;
    // A dashboard and a teacher's class listing are well within the budget.
    w.node.ok("guardian1", DASHBOARD, json!({})).await;
    w.node
        .ok(
            "teacher1",
            "query($c: ID!) { schoolClass(id: $c) { students { id person { displayName } grades { score status assessment { title } } } } }",
            json!({"c": w.id("C1")}),
        )
        .await;
    // One studentAsOf is fine; ten refold the log ten times.
    let one = "query($s: ID!) { studentAsOf(id: $s, at: \"2100-01-01T00:00:00Z\") { id } }";
    w.node.ok("auditor", one, json!({"s": w.id("s1")})).await;
    let ten: String = (0..10)
        .map(|n| format!("a{n}: studentAsOf(id: $s, at: \"2100-01-01T00:00:00Z\") {{ id }} "))
        .collect();
    let r = w
        .node
        .run(
            "auditor",
            &format!("query($s: ID!) {{ {ten} }}"),
            json!({"s": w.id("s1")}),
        )
        .await;
    let m = invalid_input(&r);
    assert!(m.contains("costs 200010") && m.contains("50000"), "{m}");
    assert_eq!(r.data, async_graphql::Value::Null);
    // Every grade of a whole establishment, a hundred times over.
    let hundred: String = (0..100)
        .map(|n| format!("a{n}: establishment(id: $e) {{ classes {{ students {{ grades {{ score }} }} }} }} "))
        .collect();
    let r = w
        .node
        .run(
            "staff1",
            &format!("query($e: ID!) {{ {hundred} }}"),
            json!({"e": w.id("E1")}),
        )
        .await;
    let m = invalid_input(&r);
    assert!(
        m.contains("costs") && m.contains("the limit is 50000"),
        "{m}"
    );
    // Nothing was read, so nothing was logged as read.
    assert!(r.data == async_graphql::Value::Null);
    w.node.app.shutdown().await;
}

#[tokio::test]
async fn the_limits_are_parameters_of_the_schema() {
    let w = World::postgres().await;
    let limits = QueryLimits {
        max_cost: 100,
        ..QueryLimits::default()
    };
    let schema = build_schema_with(w.node.app.clone(), limits);
    let r = schema
        .execute(as_caller("guardian1", DASHBOARD, json!({})))
        .await;
    let m = invalid_input(&r);
    // The figure docs/operations.md gives for a dashboard.
    assert!(m.contains("costs 2705, the limit is 100"), "{m}");
    let r = schema
        .execute(as_caller("guardian1", "{ me { id } }", json!({})))
        .await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    w.node.app.shutdown().await;
}

/// Every kind of error async-graphql raises by itself gets INVALID_INPUT.
#[tokio::test]
async fn every_error_carries_a_code() {
    let w = World::postgres().await;
    let (c1, s1) = (w.id("C1"), w.id("s1"));
    let stats = |from: &str| {
        format!("{{ absenceStats(classId: \"{c1}\", from: {from}, to: \"2026-11-30\") {{ halfDaysMissed }} }}")
    };
    let report = |extra: &str| {
        format!(
            "mutation {{ reportAbsence(input: {{ studentId: \"{s1}\", kind: LATENESS, {extra} }}) {{ id }} }}"
        )
    };
    let deep = {
        let mut q = String::from("id");
        for _ in 0..8 {
            q = format!("schoolClass {{ students {{ {q} }} }}");
        }
        format!("{{ student(id: \"{s1}\") {{ {q} }} }}")
    };
    let inline_nest = format!(
        "{{ me {{ {} id {} }} }}",
        "... on Person { ".repeat(40),
        "} ".repeat(40)
    );
    let cases: Vec<(&str, String, Value)> = vec![
        ("depth", deep, json!({})),
        (
            "complexity",
            format!(
                "{{ {} }}",
                (0..3)
                    .map(|n| format!("a{n}: studentAsOf(id: \"{s1}\", at: \"2100-01-01T00:00:00Z\") {{ id }}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            json!({}),
        ),
        ("recursion", inline_nest, json!({})),
        ("parse", "{ me { id }".into(), json!({})),
        ("parse, stray byte", "{ me { id } } ^".into(), json!({})),
        ("Date literal", stats("\"2026-02-30\""), json!({})),
        (
            "Date variable",
            format!("query($f: Date!) {{ absenceStats(classId: \"{c1}\", from: $f, to: \"2026-11-30\") {{ halfDaysMissed }} }}"),
            json!({"f": "2026-02-30"}),
        ),
        (
            "DateTime literal",
            report("start: \"2026-02-30T08:00:00Z\", end: \"2026-11-02T09:00:00Z\", minutesLate: 5"),
            json!({}),
        ),
        (
            "Int 2^31",
            report("start: \"2026-11-02T08:00:00Z\", end: \"2026-11-02T09:00:00Z\", minutesLate: 2147483648"),
            json!({}),
        ),
        (
            "Int variable 2^31",
            format!("mutation($m: Int) {{ reportAbsence(input: {{ studentId: \"{s1}\", kind: LATENESS, start: \"2026-11-02T08:00:00Z\", end: \"2026-11-02T09:00:00Z\", minutesLate: $m }}) {{ id }} }}"),
            json!({"m": 2_147_483_648_i64}),
        ),
        ("wrong argument type", stats("true"), json!({})),
        ("unknown field", "{ me { nope } }".into(), json!({})),
        ("unknown argument", "{ me(x: 1) { id } }".into(), json!({})),
        ("missing argument", "{ student { id } }".into(), json!({})),
        ("undefined variable", "{ student(id: $x) { id } }".into(), json!({})),
        ("unknown operation type", "subscription { me { id } }".into(), json!({})),
        ("several operations, no name", "query A { me { id } } query B { me { id } }".into(), json!({})),
    ];
    for (case, query, vars) in cases {
        let r = w.node.run("staff1", &query, vars.clone()).await;
        assert!(!r.errors.is_empty(), "{case}: no error");
        assert_eq!(
            codes(&r).len(),
            r.errors.len(),
            "{case}: an error without a code: {:?}",
            r.errors
        );
        assert!(
            codes(&r).iter().all(|c| c == "INVALID_INPUT"),
            "{case}: {:?}",
            r.errors
        );
    }
    // Nothing was written by the refused mutations.
    let d = w
        .node
        .ok(
            "staff1",
            &format!("{{ student(id: \"{s1}\") {{ absences {{ id }} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(d["student"]["absences"], json!([]));
    // Codes already set are kept.
    let r = w
        .node
        .run(
            "guardian2",
            &format!("{{ student(id: \"{s1}\") {{ id }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(codes(&r), ["FORBIDDEN"]);
    // And subscriptions are coded the same way.
    use futures::StreamExt;
    let mut stream = w.node.schema.execute_stream(as_caller(
        "staff1",
        "subscription { absenceReported { nope } }",
        json!({}),
    ));
    let first = stream.next().await.unwrap();
    invalid_input(&first);
    w.node.app.shutdown().await;
}

/// The query GraphiQL sends to learn the schema (graphql-js' getIntrospectionQuery).
const INTROSPECTION: &str = r#"query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name } } } } } } }
}"#;

#[tokio::test]
async fn introspection_is_on_by_default_and_can_be_turned_off() {
    let w = World::postgres().await;
    // GraphiQL may introspect before a token is pasted; its query is 13
    // deep, which the depth limit alone refused.
    let r = anonymous(&w.node.schema, INTROSPECTION).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let types = r.data.into_json().unwrap()["__schema"]["types"].clone();
    assert!(types
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "Student"));
    let limits = QueryLimits {
        introspection: false,
        ..QueryLimits::default()
    };
    let closed = build_schema_with(w.node.app.clone(), limits);
    for r in [
        anonymous(&closed, INTROSPECTION).await,
        closed
            .execute(as_caller(
                "admin",
                "{ __type(name: \"Student\") { name } }",
                json!({}),
            ))
            .await,
    ] {
        let data = r.data.clone().into_json().unwrap();
        assert!(
            data.get("__schema").is_none_or(Value::is_null)
                && data.get("__type").is_none_or(Value::is_null),
            "{data}"
        );
        // async-graphql answers null, without an error.
        assert_eq!(codes(&r).len(), r.errors.len(), "{:?}", r.errors);
    }
    // The rest of the schema answers as before.
    let r = closed
        .execute(as_caller("guardian1", "{ me { displayName } }", json!({})))
        .await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    w.node.app.shutdown().await;
}
